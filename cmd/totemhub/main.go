// Command totemhub is the central gateway the totems talk to: an embedded
// MQTT broker (or an external one with --broker), the ingest that applies
// every operation exactly once to the reference CMS, and the fleet's
// credentials.
//
//	totemhub [--config FILE] [--broker URL]    serve
//	totemhub provision [--config FILE] TOTEM  register a totem, write its credentials file
//	totemhub user add NAME --role technician|ops  an ops console account (password on stdin, TOTP printed)
//	totemhub user list
//	totemhub migrate [--config FILE]          create or upgrade the PostgreSQL schema of [store] url
//
// With fleet.console set it also keeps that console's ops signing key and
// adds its public key to console_keys_file, which the demo totem reads.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/cmd/internal/sdnotify"
	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/techset"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

func main() { cli.Main(run) }

const usage = `usage:
  totemhub [--config FILE] [--broker URL]           serve: broker, ingest, fleet registry
  totemhub [--config FILE] provision TOTEM          register a totem, write its credentials file (hub stopped)
  totemhub [--config FILE] user add NAME --role technician|ops
                                                    an ops console account (password on stdin, TOTP printed)
  totemhub [--config FILE] user list|code NAME|uri NAME
  totemhub [--config FILE] migrate                  create or upgrade the PostgreSQL schema of [store] url
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("totemhub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (default: embedded defaults)")
	ext := fs.String("broker", "", "use this external MQTT broker URL and run no embedded one")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// The words first: a typo or "help" used to open the state and the
	// fleet registry before saying anything.
	switch fs.Arg(0) {
	case "":
		if fs.NArg() > 1 {
			return cli.Usagef(usage, "totemhub: unexpected %q", fs.Arg(1))
		}
	case "provision":
		if fs.NArg() != 2 {
			return cli.Usagef(usage, "totemhub: provision takes one totem id")
		}
	case "user": // its own words are userCommand's
	case "migrate":
		if fs.NArg() > 1 {
			return cli.Usagef(usage, "totemhub: migrate: unexpected %q", fs.Arg(1))
		}
	case "help":
		return cli.Usagef(usage, "totemhub: help: nothing started")
	default:
		return cli.Usagef(usage, "totemhub: unknown command %q", fs.Arg(0))
	}
	cfg, err := config.LoadTotemhub(*cfgPath)
	if err != nil {
		return err
	}
	loaded := *cfg // as in the file: what a reload compares with
	cli.SetMemoryLimit(cfg.MemoryLimitMiB)
	if *ext != "" {
		cfg.Broker.Embedded = false
		cfg.Broker.URL = *ext
	}
	switch {
	case fs.Arg(0) == "migrate":
		return migrate(ctx, cfg, stdout)
	case cfg.Store.URL != "":
		return errStoreNotWired
	}
	log, level := sdnotify.Logger(stderr, cfg.Log.Level, cfg.Log.Format) // a reload sets level
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("totemhub: %w", err)
	}
	if fs.Arg(0) == "user" {
		// Before the registry: accounts are added while the hub runs.
		return userCommand(cfg, fs.Args()[1:], stdin, stdout, stderr)
	}
	reg, err := openRegistry(cfg.StateDir)
	if err != nil {
		return err
	}
	defer reg.Close()
	reg.SetValidity(broker.Validity{First: cfg.Fleet.FirstValidity.Duration, Next: cfg.Fleet.Validity.Duration,
		RotateBefore: cfg.Fleet.RotateBefore.Duration})

	switch fs.Arg(0) {
	case "provision":
		path, err := provisionTotem(cfg, reg, fs.Arg(1))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "totem %s provisioned: credentials in %s\n", fs.Arg(1), path)
		return nil
	}

	// The broker's CA certificate (ca.pem in credentials_dir) and the
	// demo console's signing key first: totemd reads both once its own
	// credentials appear.
	var (
		serverTLS *tls.Config
		renew     func(context.Context)
	)
	if cfg.Broker.Embedded {
		if serverTLS, renew, err = brokerTLS(cfg, log.With("subsystem", "broker")); err != nil {
			return err
		}
	}
	if cfg.Fleet.Console != "" {
		if err := consoleKey(cfg, log); err != nil {
			return err
		}
	}
	techs, techKey, err := technicianSet(cfg, log)
	if err != nil {
		return err
	}
	for _, id := range cfg.Fleet.Provision {
		if _, err := provisionTotem(cfg, reg, id); err != nil {
			return err
		}
		log.Info("totem provisioned", "totem", id)
	}
	if cfg.Fleet.Console != "" {
		if _, err := reg.Provision(cfg.Fleet.Console, creds.RoleConsole, filepath.Join(cfg.Fleet.CredentialsDir, cfg.Fleet.Console+".json")); err != nil {
			return err
		}
	}
	pol, ok := cms.PolicyByID(cfg.CMS.Policy)
	if !ok {
		return fmt.Errorf("totemhub: unknown policy %q", cfg.CMS.Policy)
	}
	var seed []cms.Card
	var cips map[string]string
	if cfg.CMS.DemoCards {
		seed, cips = cms.DemoCards(), cms.DemoCIPs()
	}
	store, err := refcms.Open(filepath.Join(cfg.StateDir, "cms.db"), &refcms.Options{Policy: pol, Seed: seed, CIPs: cips,
		SendLogRetention: cfg.CMS.SendLogRetention.Duration, RefusalRetention: cfg.CMS.RefusalRetention.Duration,
		CitizenRetention: cfg.CMS.CitizenRetention.Duration,
		FSERetries:       cfg.CMS.FSERetries, FSERetryEvery: cfg.CMS.FSERetryInterval.Duration})
	if err != nil {
		return err
	}
	defer store.Close()

	var (
		bstats func() broker.Stats // the embedded broker's, for /metrics
		bconns func() int
		local  hub.Local // the embedded broker, for the ingest
	)
	var (
		url    string
		me     creds.File
		tlsCfg *tls.Config // the ingest's, to an external broker
		caFile string
	)
	if cfg.Broker.Embedded {
		// The ingest's own credentials live only in memory for this run.
		me, err = creds.Generate(hubClientPrefix+cli.RandomID(4), creds.RoleHub)
		if err != nil {
			return err
		}
		users := broker.NewUsers(reg)
		if err := users.Add(me); err != nil {
			return err
		}
		blog := log.With("subsystem", "broker")
		srv, err := broker.Start(broker.Options{Listen: cfg.Broker.Listen, Auth: users,
			MaxPacket: cfg.Broker.MaxPacket, Logger: blog, MaxConnections: cfg.Broker.MaxConnections,
			ConnectTimeout: cfg.Broker.ConnectTimeout.Duration, MaxConnectPacket: cfg.Broker.MaxConnectPacket,
			TLSListen: cfg.Broker.TLSListen, TLS: serverTLS, Enroll: true})
		if err != nil {
			return err
		}
		defer srv.Close()
		rctx, stopRenew := context.WithCancel(ctx)
		defer stopRenew()
		go renew(rctx)
		defer logBrokerStats(srv.Stats, blog, brokerStatsEvery)()
		url = srv.URL()
		bstats, bconns, local = srv.Stats, srv.Connections, srv
		log.Info("embedded broker listening", "addr", srv.Addr(), "tls_addr", srv.TLSAddr())
	} else {
		url = cfg.Broker.URL
		if tlsCfg, caFile, err = cli.BrokerTLS(url, cfg.Broker.TLSClient); err != nil {
			return err
		}
		if me, err = creds.Load(cfg.Broker.CredentialsFile); err != nil {
			return err
		}
	}
	keys, err := cli.TrustedKeys(cfg.ConsoleKeys, cfg.ConsoleKeysFile)
	if err != nil {
		return err
	}
	// The hub's own key signs technician sets for the totems; it is no
	// console of the hub.
	keys = slices.DeleteFunc(keys, func(k cmdsig.PublicKey) bool { return k.ID == hubKeyID })
	if len(keys) == 0 {
		log.Warn("no console keys trusted: every console command to the hub will be refused")
	}
	rec, err := cmdsig.OpenRecord(filepath.Join(cfg.StateDir, "commands.db"), cmdsig.RecordOptions{})
	if err != nil {
		return err
	}
	defer rec.Close()
	// The fleet registry (totemctl status): every totem ever provisioned,
	// its presence, backlog and devices, kept across restarts.
	fleet, err := hub.OpenFleet(filepath.Join(cfg.StateDir, "presence.db"), hub.FleetOptions{
		TelemetryInterval: cfg.Fleet.TelemetryInterval.Duration, Logger: log.With("subsystem", "fleet"),
		Counters: cfg.Fleet.ReissueCounters})
	if err != nil {
		return err
	}
	defer fleet.Close()
	totems, err := reg.Usernames(creds.RoleTotem)
	if err != nil {
		return err
	}
	fleet.Provisioned(totems...)
	// Locks and enrollment: only the embedded broker's users.
	var (
		accounts hub.Accounts
		enroller hub.Enroller
	)
	if cfg.Broker.Embedded {
		accounts, enroller = reg, reg
	}
	aud, stopAudit, err := openAudit(ctx, cfg, log.With("subsystem", "audit"))
	if err != nil {
		return err
	}
	defer stopAudit()
	jobs, stopJobs, err := startRollout(ctx, cfg, url, tlsCfg, me, keys, reg, log)
	if err != nil {
		return err
	}
	defer stopJobs()
	h := hub.New(hub.Options{Accounts: accounts, Enroller: enroller, EnrollValidity: cfg.Fleet.EnrollValidity.Duration, URL: url, TLS: tlsCfg, CAFile: caFile, ClientID: hubClientPrefix + cli.RandomID(4), Username: me.Username,
		Password: me.Password, Backend: store, Logger: log.With("subsystem", "ingest"),
		Verifier: cmdsig.NewVerifier(cmdsig.HubTarget, keys, rec), Fleet: fleet, Jobs: jobs, Audit: aud,
		Technicians: techs, TechKey: &techKey, Local: local})
	defer auditCredentials(reg, h, log)()
	if cfg.HTTP.Listen != "" {
		stopWeb, err := startWeb(ctx, cfg, log, webDeps{h: h, store: store, fleet: fleet, reg: reg, bstats: bstats, bconns: bconns, url: url, audit: aud})
		if err != nil {
			return err
		}
		defer stopWeb()
	}
	log.Info("totemhub running", "broker", url, "policy", pol.ID, "state_dir", cfg.StateDir)
	// The reference CMS retries FSE creations by itself (seed 002).
	fctx, stopFSE := context.WithCancel(ctx)
	fseDone := make(chan struct{})
	go func() {
		defer close(fseDone)
		store.RunFSERetries(fctx, 0) // every cms.fse_retry_interval
	}()
	pruneDone := make(chan struct{})
	go func() {
		defer close(pruneDone)
		if err := store.RunSendLogPrune(fctx, time.Hour); err != nil {
			log.Error("send log retention", "err", err)
		}
	}()
	citizenDone := make(chan struct{})
	go func() {
		defer close(citizenDone)
		store.RunCitizenPurge(fctx, time.Hour, func(rep refcms.PurgeReport, err error) {
			switch {
			case err != nil:
				log.Error("citizen data retention", "err", err)
			case rep != refcms.PurgeReport{}:
				log.Info("citizen data purged", "notifications", rep.Notifications, "results", rep.Results)
			}
		})
	}()
	serve(ctx, log, level, *cfgPath, &loaded)
	err = h.Run(ctx)
	stopFSE()
	<-fseDone
	<-pruneDone
	<-citizenDone
	return err
}

// brokerStatsEvery is how often the broker's counters are logged, when
// they changed.
const brokerStatsEvery = time.Minute

// logBrokerStats logs, every period and once more when the returned stop
// is called, the broker's non-zero counters in one line, if they changed
// since the last: abuse shows as figures, not as a line per refusal.
func logBrokerStats(stats func() broker.Stats, log *slog.Logger, every time.Duration) (stop func()) {
	var last string
	report := func() {
		if s := stats().String(); s != "" && s != last {
			log.Warn("broker counters", "stats", s)
			last = s
		}
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				report()
			case <-done:
				return
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		report()
	}
}

// registryWait is how long openRegistry waits for another process to let
// go of the registry before saying who holds it.
const registryWait = 500 * time.Millisecond

// openRegistry opens the fleet's registry in dir. bbolt allows one
// process at a time: while a totemhub runs, the registry is its own, and
// the bare "timeout" bbolt gives after waiting says nothing of that. The
// lock is tried first, briefly and read-only, so that the answer names the
// hub and what to do instead.
func openRegistry(dir string) (*broker.Registry, error) {
	path := filepath.Join(dir, "fleet.db")
	if db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: registryWait}); err == nil {
		db.Close()
	} else if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("totemhub: the registry %s is held by another process, most likely the totemhub "+
			"running on state_dir %s: stop that hub to provision with this command, or add the totem to "+
			"fleet.provision in its configuration and restart it (it provisions them at start)", path, dir)
	}
	return broker.OpenRegistry(path)
}

// provisionTotem registers totem id and makes sure its credentials file
// holds working credentials; it returns the file's path. The registry's
// Provision gives a name the role asked for, whatever it had: a console's
// name (fleet.console, or any user registered as console or hub) would
// silently become a totem and lose its console rights, so such a name is
// refused here, as are the names the hub gives its own clients.
func provisionTotem(cfg *config.Totemhub, reg *broker.Registry, id string) (string, error) {
	if !protocol.ValidTotemID(id) {
		return "", errors.New("totemhub: provision needs a totem id ([A-Za-z0-9_-], up to 32)")
	}
	if strings.HasPrefix(id, hubClientPrefix) {
		return "", fmt.Errorf("totemhub: %q: names starting with %q are the hub's own clients, not totems", id, hubClientPrefix)
	}
	if id == cfg.Fleet.Console {
		return "", fmt.Errorf("totemhub: %q is the console of fleet.console, not a totem: the hub provisions it at start", id)
	}
	u, ok, err := reg.Get(id)
	if err != nil {
		return "", err
	}
	if ok && u.Role != creds.RoleTotem {
		return "", fmt.Errorf("totemhub: %q is registered as a %s, not a totem: choose another name", id, u.Role)
	}
	path := filepath.Join(cfg.Fleet.CredentialsDir, id+".json")
	if _, err := reg.Provision(id, creds.RoleTotem, path); err != nil {
		return "", err
	}
	return path, nil
}

// hubClientPrefix begins the user name and client id of the hub's ingest.
const hubClientPrefix = "totemhub-"

// hubKeyID is the id of the hub's own signing key.
const hubKeyID = "totemhub"

// technicianSet opens the technician set (<state_dir>/technicians.json,
// 0600: TOTP secrets and the unlock master secret) and the hub's ops key
// that signs it for the totems (<state_dir>/totemhub.key, 0600, made at
// the first start). Totems trust that key like a console's: with
// fleet.console set (the demo) it is added to console_keys_file, which
// they read; otherwise ops add the public key logged here to the totems'
// console_keys.
func technicianSet(cfg *config.Totemhub, log *slog.Logger) (*techset.Store, cmdsig.PrivateKey, error) {
	st, err := techset.OpenStore(filepath.Join(cfg.StateDir, "technicians.json"))
	if err != nil {
		return nil, cmdsig.PrivateKey{}, err
	}
	path := filepath.Join(cfg.StateDir, hubKeyID+".key")
	k, err := cmdsig.LoadPrivate(path)
	if errors.Is(err, fs.ErrNotExist) {
		if k, err = cmdsig.Generate(hubKeyID, cmdsig.Ops); err == nil {
			err = cmdsig.SavePrivate(path, k)
		}
	}
	if err != nil {
		return nil, cmdsig.PrivateKey{}, err
	}
	e := k.Public().Entry()
	log.Info("technician sets signed with the hub's key: totems must trust it (console_keys)", "id", e.ID, "role", e.Role,
		"public_key", e.PublicKey)
	if cfg.Fleet.Console != "" {
		if err := cmdsig.AddTrusted(cfg.ConsoleKeysFile, k.Public()); err != nil {
			return nil, cmdsig.PrivateKey{}, err
		}
	}
	return st, k, nil
}

// consoleKey makes sure the provisioned console has an ops signing key
// (<credentials_dir>/<console>.key, 0600, kept across restarts) and that
// its public key is in the trusted keys file.
func consoleKey(cfg *config.Totemhub, log *slog.Logger) error {
	path := filepath.Join(cfg.Fleet.CredentialsDir, cfg.Fleet.Console+".key")
	k, err := cmdsig.LoadPrivate(path)
	if errors.Is(err, fs.ErrNotExist) {
		if k, err = cmdsig.Generate(cfg.Fleet.Console, cmdsig.Ops); err == nil {
			err = cmdsig.SavePrivate(path, k)
		}
		if err == nil {
			log.Info("console signing key created", "key", k.ID, "role", k.Role, "file", path)
		}
	}
	if err != nil {
		return err
	}
	return cmdsig.AddTrusted(cfg.ConsoleKeysFile, k.Public())
}
