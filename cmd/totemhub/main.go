// Command totemhub is the central gateway the totems talk to: an embedded
// MQTT broker (or an external one with --broker), the ingest that applies
// every operation exactly once to the reference CMS, and the fleet's
// credentials.
//
//	totemhub [--config FILE] [--broker URL]    serve
//	totemhub provision [--config FILE] TOTEM  register a totem, write its credentials file
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/broker"
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
	if *ext != "" {
		cfg.Broker.Embedded = false
		cfg.Broker.URL = *ext
	}
	log := cli.Logger(stderr, cfg.Log.Level, cfg.Log.Format)
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
	h := hub.New(hub.Options{URL: url, ClientID: "totemhub-" + cli.RandomID(4), Username: me.Username,
		Password: me.Password, Backend: store, Logger: log.With("subsystem", "ingest")})
	log.Info("totemhub running", "broker", url, "policy", pol.ID, "state_dir", cfg.StateDir)
	// The reference CMS retries FSE creations by itself (seed 002).
	fctx, stopFSE := context.WithCancel(ctx)
	fseDone := make(chan struct{})
	go func() {
		defer close(fseDone)
		store.RunFSERetries(fctx, time.Minute)
	}()
	err = h.Run(ctx)
	stopFSE()
	<-fseDone
	return err
}
