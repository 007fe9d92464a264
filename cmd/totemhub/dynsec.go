package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/internal/clock"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/dynsec"
	"github.com/aslcns/totem/sync/hub"
)

// dynsecRetry is how often a Sync that failed at start (the broker not
// reachable yet) is tried again.
const dynsecRetry = 30 * time.Second

// overlapCheck is how often the hub looks for rotations whose old secret
// expired before the totem was seen with its new username
// (dynsec.Mirror.ExpireOverlaps).
const overlapCheck = time.Minute

// brokerUsers sets up who keeps the broker users besides the registry.
// With [broker] dynsec on an external mosquitto, the dynamic-security
// plugin: the registry is synchronised to it (at start, and again until it
// succeeds when the broker is not reachable yet) and accounts and
// enroller become the Mirror, so provisioning, enrollment, rotation, lock
// and unlock reach mosquitto. It also serves provisioning of hub
// identities to `totemhub provision --role hub` while the hub runs
// (hubident.go). stop ends both.
func brokerUsers(ctx context.Context, cfg *config.Totemhub, reg *broker.Registry, tlsCfg *tls.Config, caFile string,
	log *slog.Logger, accounts *hub.Accounts, enroller *hub.Enroller) (stop func(), err error) {
	var prov provisioner = reg
	stopSync := func() {}
	if cfg.Broker.DynSec && !cfg.Broker.Embedded {
		mir, stop, err := startDynSec(ctx, cfg, reg, tlsCfg, caFile, log.With("subsystem", "dynsec"))
		if err != nil {
			return nil, err
		}
		*accounts, *enroller, prov, stopSync = mir, mir, mir, stop
	} else if cfg.Broker.DynSec {
		log.Warn("broker.dynsec ignored: the embedded broker keeps its users itself")
	}
	stopAdmin, err := serveAdmin(ctx, cfg, reg, prov, log.With("subsystem", "admin"))
	if err != nil {
		stopSync()
		return nil, err
	}
	return func() { stopAdmin(); stopSync() }, nil
}

func startDynSec(ctx context.Context, cfg *config.Totemhub, reg *broker.Registry, tlsCfg *tls.Config, caFile string,
	log *slog.Logger) (*dynsec.Mirror, func(), error) {
	pw, err := readPasswordFile(cfg.Broker.DynSecPasswordFile)
	if err != nil {
		return nil, nil, err
	}
	c, err := dynsec.New(dynsec.Options{URL: cfg.Broker.URL, TLS: tlsCfg, CAFile: caFile, Username: cfg.Broker.DynSecUser, Password: pw})
	if err != nil {
		return nil, nil, err
	}
	mir := dynsec.NewMirror(reg, c, log)
	if mir.Given, err = dynsec.OpenGiven(filepath.Join(cfg.StateDir, "dynsec.db")); err != nil {
		c.Close()
		return nil, nil, err
	}
	sync := func() error { return syncDynSec(ctx, c, reg, cfg.Fleet.CredentialsDir, mir.Given, log) }
	err = sync()
	if errors.Is(err, dynsec.ErrAdminRefused) {
		c.Close()
		mir.Given.Close()
		return nil, nil, fmt.Errorf("totemhub: broker.dynsec_user: %w", err)
	}
	// Both loops end together (rctx), then each is waited for.
	rctx, cancel := context.WithCancel(ctx)
	stopRetry := func() {}
	if err != nil {
		log.Error("dynamic-security sync failed: retrying", "every", dynsecRetry, "err", err)
		stopRetry = clock.Go(rctx, func(ctx context.Context) {
			clock.Every(ctx, dynsecRetry, func() bool {
				err := sync()
				if err != nil {
					log.Error("dynamic-security sync failed: retrying", "every", dynsecRetry, "err", err)
				}
				return err == nil
			})
		})
	}
	stopExpiry := clock.Go(rctx, func(ctx context.Context) {
		clock.Every(ctx, overlapCheck, func() bool {
			if _, err := mir.ExpireOverlaps(time.Now()); err != nil {
				log.Error("rotations past their overlap not ended in mosquitto: tried again", "every", overlapCheck, "err", err)
			}
			return false
		})
	})
	return mir, func() {
		cancel()
		stopRetry()
		stopExpiry()
		mir.Wait()
		c.Close()
		mir.Given.Close()
	}, nil
}

// syncDynSec brings mosquitto's dynamic-security users to the registry's.
func syncDynSec(ctx context.Context, c *dynsec.Client, reg *broker.Registry, credDir string, given *dynsec.Given, log *slog.Logger) error {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	rep, err := dynsec.Sync(sctx, c, reg, credDir, given)
	if err != nil {
		return err
	}
	log.Info("broker users synchronised to mosquitto's dynamic-security plugin", "created", len(rep.Created),
		"updated", rep.Updated, "secrets_given", len(rep.Secrets), "disabled", len(rep.Disabled), "deleted", len(rep.Deleted))
	if len(rep.NoSecret) > 0 {
		log.Warn("users created in mosquitto without a secret (the registry keeps only hashes): provision or enroll them again",
			"users", strings.Join(rep.NoSecret, ","))
	}
	return nil
}

// readPasswordFile returns the first line of a file only its owner may
// read; errors never quote the content.
func readPasswordFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("totemhub: broker.dynsec_password_file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("totemhub: broker.dynsec_password_file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("totemhub: broker.dynsec_password_file %s: readable by group or others (mode %04o): chmod 600 %s",
			path, st.Mode().Perm(), path)
	}
	sc := bufio.NewScanner(f)
	if !sc.Scan() || strings.TrimSpace(sc.Text()) == "" {
		return "", fmt.Errorf("totemhub: broker.dynsec_password_file %s: no password on its first line", path)
	}
	return strings.TrimSpace(sc.Text()), nil
}
