// Command totemhub is the central gateway the totems talk to: an embedded
// MQTT broker (or an external one with --broker), the ingest that applies
// every operation exactly once to the reference CMS, and the fleet's
// credentials.
//
//	totemhub [--config FILE] [--broker URL]    serve
//	totemhub provision [--config FILE] TOTEM  register a totem, write its credentials file
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
)

func main() { cli.Main(run) }

func run(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("totemhub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (default: embedded defaults)")
	ext := fs.String("broker", "", "use this external MQTT broker URL and run no embedded one")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.LoadTotemhub(*cfgPath)
	if err != nil {
		return err
	}
	loaded := *cfg // as in the file: what a reload compares with
	if *ext != "" {
		cfg.Broker.Embedded = false
		cfg.Broker.URL = *ext
	}
	log, level := sdnotify.Logger(stderr, cfg.Log.Level, cfg.Log.Format) // a reload sets level
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("totemhub: %w", err)
	}
	reg, err := broker.OpenRegistry(filepath.Join(cfg.StateDir, "fleet.db"))
	if err != nil {
		return err
	}
	defer reg.Close()

	switch fs.Arg(0) {
	case "provision":
		id := fs.Arg(1)
		if !protocol.ValidTotemID(id) {
			return errors.New("totemhub: provision needs a totem id ([A-Za-z0-9_-], up to 32)")
		}
		path := filepath.Join(cfg.Fleet.CredentialsDir, id+".json")
		if _, err := reg.Provision(id, creds.RoleTotem, path); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "totem %s provisioned: credentials in %s\n", id, path)
		return nil
	case "":
	default:
		return fmt.Errorf("totemhub: unknown command %q", fs.Arg(0))
	}

	// The demo console's signing key first: totemd reads the keys file
	// once its own credentials appear.
	if cfg.Fleet.Console != "" {
		if err := consoleKey(cfg, log); err != nil {
			return err
		}
	}
	for _, id := range cfg.Fleet.Provision {
		if _, err := reg.Provision(id, creds.RoleTotem, filepath.Join(cfg.Fleet.CredentialsDir, id+".json")); err != nil {
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
	if cfg.CMS.DemoCards {
		seed = cms.DemoCards()
	}
	store, err := refcms.Open(filepath.Join(cfg.StateDir, "cms.db"), &refcms.Options{Policy: pol, Seed: seed})
	if err != nil {
		return err
	}
	defer store.Close()

	var (
		url string
		me  creds.File
	)
	if cfg.Broker.Embedded {
		// The ingest's own credentials live only in memory for this run.
		me, err = creds.Generate("totemhub-"+cli.RandomID(4), creds.RoleHub)
		if err != nil {
			return err
		}
		users := broker.NewUsers(reg)
		if err := users.Add(me); err != nil {
			return err
		}
		srv, err := broker.Start(broker.Options{Listen: cfg.Broker.Listen, Auth: users,
			MaxPacket: cfg.Broker.MaxPacket, Logger: log.With("subsystem", "broker")})
		if err != nil {
			return err
		}
		defer srv.Close()
		url = srv.URL()
		log.Info("embedded broker listening", "addr", srv.Addr())
	} else {
		url = cfg.Broker.URL
		if me, err = creds.Load(cfg.Broker.CredentialsFile); err != nil {
			return err
		}
	}
	keys, err := cli.TrustedKeys(cfg.ConsoleKeys, cfg.ConsoleKeysFile)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		log.Warn("no console keys trusted: every console command to the hub will be refused")
	}
	rec, err := cmdsig.OpenRecord(filepath.Join(cfg.StateDir, "commands.db"), cmdsig.RecordOptions{})
	if err != nil {
		return err
	}
	defer rec.Close()
	h := hub.New(hub.Options{URL: url, ClientID: "totemhub-" + cli.RandomID(4), Username: me.Username,
		Password: me.Password, Backend: store, Logger: log.With("subsystem", "ingest"),
		Verifier: cmdsig.NewVerifier(cmdsig.HubTarget, keys, rec)})
	log.Info("totemhub running", "broker", url, "policy", pol.ID, "state_dir", cfg.StateDir)
	// The reference CMS retries FSE creations by itself (seed 002).
	fctx, stopFSE := context.WithCancel(ctx)
	fseDone := make(chan struct{})
	go func() {
		defer close(fseDone)
		store.RunFSERetries(fctx, time.Minute)
	}()
	serve(ctx, log, level, *cfgPath, &loaded)
	err = h.Run(ctx)
	stopFSE()
	<-fseDone
	return err
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
