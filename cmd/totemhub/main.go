// Command totemhub is the central gateway the totems talk to: an embedded
// MQTT broker (or an external one with --broker), the ingest that applies
// every operation exactly once to the reference CMS, and the fleet's
// credentials.
//
//	totemhub [--config FILE] [--broker URL]    serve
//	totemhub provision [--config FILE] TOTEM  register a totem, write its credentials file
//	totemhub provision --role hub NAME        a hub identity for another hub process (via the running hub)
//	totemhub user add NAME --role technician|ops  an ops console account (password on stdin, TOTP printed)
//	totemhub user list
//	totemhub migrate [--config FILE]          create or upgrade the PostgreSQL schema of [store] url
//	totemhub migrate --from-bbolt CMS.DB      and move a stopped bbolt hub's CMS there
//
// With fleet.console set it also keeps that console's ops signing key and
// adds its public key to console_keys_file, which the demo totem reads.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/cmd/internal/sdnotify"
	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/internal/clock"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/pgshare"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/techset"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

func main() { cli.Main(run) }

const usage = `usage:
  totemhub [--config FILE] [--broker URL]           serve: broker, ingest, fleet registry
  totemhub [--config FILE] provision TOTEM          register a totem, write its credentials file
                                                    (hub stopped; with [store] url also while hubs run)
  totemhub [--config FILE] provision --role hub NAME
                                                    a hub identity: NAME.json for another hub's [broker] credentials_file
  totemhub [--config FILE] user add NAME --role technician|ops
                                                    an ops console account (password on stdin, TOTP printed)
  totemhub [--config FILE] user list|code NAME|uri NAME
  totemhub [--config FILE] migrate                  create or upgrade the PostgreSQL schema of [store] url
  totemhub [--config FILE] migrate --from-bbolt CMS.DB
                                                    and move a stopped bbolt hub's CMS (cms.db) there
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := cli.Flags("totemhub", stderr)
	cfgPath := fs.String("config", "", "configuration file (default: embedded defaults)")
	ext := fs.String("broker", "", "use this external MQTT broker URL and run no embedded one")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkWords(fs); err != nil {
		return err
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
	if fs.Arg(0) == "migrate" {
		return migrate(ctx, cfg, fs.Arg(2), stdout)
	}
	log, level := sdnotify.Logger(stderr, cfg.Log.Level, cfg.Log.Format) // a reload sets level
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("totemhub: %w", err)
	}
	if fs.Arg(0) == "user" {
		// Before the registry: accounts are added while the hub runs.
		return userCommand(cfg, fs.Args()[1:], stdin, stdout, stderr)
	}
	if fs.Arg(0) == "provision" && fs.NArg() == 4 { // --role hub NAME: through the running hub if one runs
		return provisionRoleCommand(ctx, cfg, fs.Args()[1:], stdout)
	}
	reg, pg, err := openFleetRegistry(ctx, cfg)
	if err != nil {
		return err
	}
	defer reg.Close()
	if pg != nil {
		defer pg.Close() // the CMS closes it too: a second Close does nothing
	}
	reg.SetValidity(broker.Validity{First: cfg.Fleet.FirstValidity.Duration, Next: cfg.Fleet.Validity.Duration,
		RotateBefore: cfg.Fleet.RotateBefore.Duration})
	if fs.Arg(0) == "provision" {
		path, err := provisionTotem(cfg, reg, fs.Arg(1))
		if err != nil {
			return err
		}
		if pg != nil {
			// The running hubs list it within a second, as never seen
			// (an entry the registry has already is left as it is).
			if err := pgshare.Presence(pg).Save([]hub.TotemStatus{{Totem: fs.Arg(1), Status: hub.NeverSeen}}); err != nil {
				return fmt.Errorf("totemhub: provisioned, but not added to the fleet registry: %w", err)
			}
		}
		fmt.Fprintf(stdout, "totem %s provisioned: credentials in %s\n", fs.Arg(1), path)
		return nil
	}
	s := &server{cfg: cfg, reg: reg, pg: pg, log: log}
	defer s.undo.Run()
	return s.runHub(ctx, level, *cfgPath, &loaded)
}

// checkWords checks the command's words before anything is opened: a
// typo or "help" used to open the state and the fleet registry before
// saying anything.
func checkWords(fs *flag.FlagSet) error {
	switch fs.Arg(0) {
	case "":
		if fs.NArg() > 1 {
			return cli.Usagef(usage, "totemhub: unexpected %q", fs.Arg(1))
		}
	case "provision":
		if fs.NArg() != 2 && (fs.NArg() != 4 || fs.Arg(1) != "--role") {
			return cli.Usagef(usage, "totemhub: provision takes one totem id")
		}
	case "user": // its own words are userCommand's
	case "migrate":
		if fs.NArg() > 1 && (fs.NArg() != 3 || fs.Arg(1) != "--from-bbolt") {
			return cli.Usagef(usage, "totemhub: migrate: unexpected %q", fs.Arg(1))
		}
	case "help":
		return cli.Usagef(usage, "totemhub: help: nothing started")
	default:
		return cli.Usagef(usage, "totemhub: unknown command %q", fs.Arg(0))
	}
	return nil
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
	stopTicks := clock.Go(context.Background(), func(ctx context.Context) {
		clock.Every(ctx, every, func() bool { report(); return false })
	})
	return func() {
		stopTicks()
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

// openFleetRegistry opens the fleet's registry of broker users: in
// state_dir's fleet.db, or with [store] url in the PostgreSQL database
// every hub process shares (sync/pgshare), which is then returned open
// too, for the CMS and the fleet's presence.
func openFleetRegistry(ctx context.Context, cfg *config.Totemhub) (*broker.Registry, *pgstore.Store, error) {
	if cfg.Store.URL == "" {
		reg, err := openRegistry(cfg.StateDir)
		return reg, nil, err
	}
	pg, err := openStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return pgshare.Registry(pg), pg, nil
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
	return provisionAs(cfg, reg, reg, id, creds.RoleTotem)
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
