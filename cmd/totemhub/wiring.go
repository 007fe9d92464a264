package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/pgshare"
	"github.com/aslcns/totem/sync/techset"
)

// server is the hub run serves: each step sets its part and pushes what
// undoes it on undo.
type server struct {
	cfg  *config.Totemhub
	reg  *broker.Registry
	log  *slog.Logger
	undo cli.Undo // what each step opened, closed when run returns

	techs   *techset.Store
	techKey cmdsig.PrivateKey
	pol     cms.Policy
	store   *refcms.Store
	pg      *pgstore.Store // with [store] url: the state hub processes share

	url    string
	me     creds.File  // the ingest's credentials
	tlsCfg *tls.Config // the ingest's, to an external broker
	caFile string
	bstats func() broker.Stats // the embedded broker's, for /metrics
	bconns func() int
	local  hub.Local // the embedded broker, for the ingest

	// enrollCA is the hub's CA (DER) when it issued the embedded broker's
	// certificate: handed to a totem enrolling with only its code.
	enrollCA []byte
}

// runHub wires the hub in order (keys and fleet, the CMS, the broker, the
// ingest and its hooks, the ops listener, the retention loops) and runs
// the ingest until ctx is done.
func (s *server) runHub(ctx context.Context, level *slog.LevelVar, cfgPath string, loaded *config.Totemhub) error {
	// The broker's CA certificate (ca.pem in credentials_dir) and the
	// demo console's signing key first: totemd reads both once its own
	// credentials appear.
	serverTLS, renew, err := s.prepareFleet()
	if err != nil {
		return err
	}
	if err := s.openCMS(ctx); err != nil {
		return err
	}
	if err := s.connectBroker(ctx, serverTLS, renew); err != nil {
		return err
	}
	h, err := s.newIngest(ctx)
	if err != nil {
		return err
	}
	s.log.Info("totemhub running", "broker", s.url, "policy", s.pol.ID, "state_dir", s.cfg.StateDir)
	stopRetention := s.startRetention(ctx)
	serve(ctx, s.log, level, cfgPath, loaded)
	err = h.Run(ctx)
	stopRetention()
	return err
}

// prepareFleet makes the broker's certificate (embedded broker), the
// demo console's key, the technician set and its key, and provisions
// fleet.provision and fleet.console.
func (s *server) prepareFleet() (*tls.Config, func(context.Context), error) {
	cfg, log := s.cfg, s.log
	var (
		serverTLS *tls.Config
		renew     func(context.Context)
		err       error
	)
	if cfg.Broker.Embedded {
		if serverTLS, renew, s.enrollCA, err = brokerTLS(cfg, log.With("subsystem", "broker")); err != nil {
			return nil, nil, err
		}
	}
	if cfg.Fleet.Console != "" {
		if err := consoleKey(cfg, log); err != nil {
			return nil, nil, err
		}
	}
	if s.techs, s.techKey, err = technicianSet(cfg, log); err != nil {
		return nil, nil, err
	}
	for _, id := range cfg.Fleet.Provision {
		if s.pg != nil && provisionedElsewhere(cfg, s.reg, id) {
			log.Info("totem provisioned by another hub: its credentials are in that hub's credentials_dir", "totem", id)
			continue
		}
		if _, err := provisionTotem(cfg, s.reg, id); err != nil {
			return nil, nil, err
		}
		log.Info("totem provisioned", "totem", id)
	}
	if cfg.Fleet.Console != "" {
		if _, err := s.reg.Provision(cfg.Fleet.Console, creds.RoleConsole, filepath.Join(cfg.Fleet.CredentialsDir, cfg.Fleet.Console+".json")); err != nil {
			return nil, nil, err
		}
	}
	return serverTLS, renew, nil
}

// provisionedElsewhere reports whether the shared registry has totem id
// although this hub's credentials_dir has no file of it: another hub
// process provisioned it. Provisioning it again would give it a new
// secret, and the totem holding the first would be refused.
func provisionedElsewhere(cfg *config.Totemhub, reg *broker.Registry, id string) bool {
	u, ok, err := reg.Get(id)
	if err != nil || !ok || u.Role != creds.RoleTotem {
		return false
	}
	_, err = os.Stat(filepath.Join(cfg.Fleet.CredentialsDir, id+".json"))
	return errors.Is(err, fs.ErrNotExist)
}

// openCMS opens the reference CMS on the configured policy: in state_dir, or on PostgreSQL with [store] url.
func (s *server) openCMS(ctx context.Context) error {
	cfg := s.cfg
	pol, ok := cms.PolicyByID(cfg.CMS.Policy)
	if !ok {
		return fmt.Errorf("totemhub: unknown policy %q", cfg.CMS.Policy)
	}
	var seed []cms.Card
	var cips map[string]string
	if cfg.CMS.DemoCards {
		seed, cips = cms.DemoCards(), cms.DemoCIPs()
	}
	store, pg, err := openCMS(ctx, cfg, s.pg, &refcms.Options{Policy: pol, Seed: seed, CIPs: cips,
		SendLogRetention: cfg.CMS.SendLogRetention.Duration, RefusalRetention: cfg.CMS.RefusalRetention.Duration,
		CitizenRetention: cfg.CMS.CitizenRetention.Duration,
		FSERetries:       cfg.CMS.FSERetries, FSERetryEvery: cfg.CMS.FSERetryInterval.Duration})
	if err != nil {
		return err
	}
	s.undo.Push(func() { store.Close() })
	s.pol, s.store, s.pg = pol, store, pg
	return nil
}

// connectBroker starts the embedded broker, with the ingest's own
// credentials in memory for this run, or takes the external broker's
// URL, TLS and the ingest's credentials file.
func (s *server) connectBroker(ctx context.Context, serverTLS *tls.Config, renew func(context.Context)) error {
	cfg, log := s.cfg, s.log
	var err error
	if !cfg.Broker.Embedded {
		s.url = cfg.Broker.URL
		if s.tlsCfg, s.caFile, err = cli.BrokerTLS(s.url, cfg.Broker.TLSClient); err != nil {
			return err
		}
		s.me, err = creds.Load(cfg.Broker.CredentialsFile)
		return err
	}
	if s.me, err = creds.Generate(hubClientPrefix+cli.RandomID(4), creds.RoleHub); err != nil {
		return err
	}
	users := broker.NewUsers(s.reg)
	if err := users.Add(s.me); err != nil {
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
	s.undo.Push(func() { srv.Close() })
	rctx, stopRenew := context.WithCancel(ctx)
	s.undo.Push(stopRenew)
	go renew(rctx)
	s.undo.Push(logBrokerStats(srv.Stats, blog, brokerStatsEvery))
	s.url = srv.URL()
	s.bstats, s.bconns, s.local = srv.Stats, srv.Connections, srv
	log.Info("embedded broker listening", "addr", srv.Addr(), "tls_addr", srv.TLSAddr())
	return nil
}

// newIngest makes the ingest with its hooks: the console keys and the
// record of their commands, the fleet registry, locks and enrollment,
// the audit, the update jobs; and starts the ops listener.
func (s *server) newIngest(ctx context.Context) (*hub.Hub, error) {
	cfg, log, reg := s.cfg, s.log, s.reg
	keys, rec, err := s.consoleVerifier()
	if err != nil {
		return nil, err
	}
	fleet, err := s.openFleet()
	if err != nil {
		return nil, err
	}
	// Locks and enrollment: only the embedded broker's users.
	var (
		accounts hub.Accounts
		enroller hub.Enroller
	)
	if cfg.Broker.Embedded {
		accounts, enroller = reg, reg
	}
	stopUsers, err := brokerUsers(ctx, cfg, reg, s.tlsCfg, s.caFile, log, &accounts, &enroller) // dynsec.go
	if err != nil {
		return nil, err
	}
	s.undo.Push(stopUsers)
	aud, stopAudit, err := openAudit(ctx, cfg, log.With("subsystem", "audit"))
	if err != nil {
		return nil, err
	}
	s.undo.Push(stopAudit)
	jobs, stopJobs, err := startRollout(ctx, cfg, s.url, s.tlsCfg, s.me, keys, reg, fleet, log)
	if err != nil {
		return nil, err
	}
	s.undo.Push(stopJobs)
	h := hub.New(hub.Options{Accounts: accounts, Enroller: enroller, EnrollValidity: cfg.Fleet.EnrollValidity.Duration, URL: s.url, TLS: s.tlsCfg, CAFile: s.caFile, ClientID: hubClientPrefix + cli.RandomID(4), Username: s.me.Username,
		Password: s.me.Password, Backend: s.store, Logger: log.With("subsystem", "ingest"),
		Verifier: cmdsig.NewVerifier(cmdsig.HubTarget, keys, rec), Fleet: fleet, Jobs: jobs, Audit: aud,
		Technicians: s.techs, TechKey: &s.techKey, Local: s.local, Partition: s.partition()})
	if enroller != nil && s.enrollCA != nil {
		h.SetEnrollCA(s.enrollCA)
	}
	s.undo.Push(auditCredentials(reg, h, log))
	if cfg.HTTP.Listen != "" {
		stopWeb, err := startWeb(ctx, cfg, log, webDeps{h: h, store: s.store, fleet: fleet, reg: reg, bstats: s.bstats, bconns: s.bconns, url: s.url, audit: aud})
		if err != nil {
			return nil, err
		}
		s.undo.Push(stopWeb)
	}
	return h, nil
}

// partition is the hub's share of the totems with [store] partition on
// an external broker (cms/pgstore leases, closed with the store); nil
// otherwise: the hubs share the subscription.
func (s *server) partition() hub.Partition {
	if !s.cfg.Store.Partition || s.pg == nil {
		return nil
	}
	if s.local != nil {
		s.log.Warn("[store] partition ignored on the embedded broker: one hub takes every operation")
		return nil
	}
	return s.pg.Leases()
}

// consoleVerifier returns the console keys the hub trusts and the record
// of the commands it executed.
func (s *server) consoleVerifier() ([]cmdsig.PublicKey, cmdsig.Replay, error) {
	keys, err := cli.TrustedKeys(s.cfg.ConsoleKeys, s.cfg.ConsoleKeysFile)
	if err != nil {
		return nil, nil, err
	}
	// The hub's own key signs technician sets for the totems; it is no
	// console of the hub.
	keys = slices.DeleteFunc(keys, func(k cmdsig.PublicKey) bool { return k.ID == hubKeyID })
	if len(keys) == 0 {
		s.log.Warn("no console keys trusted: every console command to the hub will be refused")
	}
	if s.pg != nil {
		// One record for every hub process on the database: a command
		// replayed to another instance is refused.
		return keys, &hub.SharedNonces{Record: s.pg.AdmitNonce}, nil
	}
	rec, err := cmdsig.OpenRecord(filepath.Join(s.cfg.StateDir, "commands.db"), cmdsig.RecordOptions{})
	if err != nil {
		return nil, nil, err
	}
	s.undo.Push(func() { rec.Close() })
	return keys, rec, nil
}

// openFleet opens the fleet registry (totemctl status): every totem ever
// provisioned, its presence, backlog and devices, kept across restarts:
// in state_dir's presence.db, or with [store] url in the database every
// hub process shares (no presence.db: any hub lists every totem).
func (s *server) openFleet() (*hub.Fleet, error) {
	cfg := s.cfg
	o := hub.FleetOptions{TelemetryInterval: cfg.Fleet.TelemetryInterval.Duration, Logger: s.log.With("subsystem", "fleet"),
		Counters: cfg.Fleet.ReissueCounters}
	var (
		fleet *hub.Fleet
		err   error
	)
	if s.pg != nil {
		fleet, err = hub.NewFleet(pgshare.Presence(s.pg), o)
	} else {
		fleet, err = hub.OpenFleet(filepath.Join(cfg.StateDir, "presence.db"), o)
	}
	if err != nil {
		return nil, err
	}
	s.undo.Push(func() { fleet.Close() })
	totems, err := s.reg.Usernames(creds.RoleTotem)
	if err != nil {
		return nil, err
	}
	fleet.Provisioned(totems...)
	return fleet, nil
}

// startRetention runs the CMS's own loops until the returned stop: the
// FSE retries (seed 002), the send log's and the citizens' data
// retention.
func (s *server) startRetention(ctx context.Context) (stop func()) {
	store, log := s.store, s.log
	fctx, stopFSE := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		store.RunFSERetries(fctx, 0) // every cms.fse_retry_interval
	})
	wg.Go(func() {
		if err := store.RunSendLogPrune(fctx, time.Hour); err != nil {
			log.Error("send log retention", "err", err)
		}
	})
	wg.Go(func() {
		store.RunCitizenPurge(fctx, time.Hour, func(rep refcms.PurgeReport, err error) {
			switch {
			case err != nil:
				log.Error("citizen data retention", "err", err)
			case rep != refcms.PurgeReport{}:
				log.Info("citizen data purged", "notifications", rep.Notifications, "results", rep.Results)
			}
		})
	})
	return func() { stopFSE(); wg.Wait() }
}
