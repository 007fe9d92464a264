package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/firmware/maint"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/enroll"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/pki"
	"github.com/aslcns/totem/sync/stamp"
	"github.com/aslcns/totem/sync/uplink"
)

// maintGate is the door of maintenance mode at the panel: its state and
// the technician set live in the outbox's meta; the console keys known
// now verify the set kept (more come with the credentials: Trust).
func maintGate(cfg *config.Totemd, box *outbox.Outbox, clk *stamp.Source, log *slog.Logger) (*maint.Gate, error) {
	keys, err := cli.TrustedKeys(cfg.ConsoleKeys, cfg.ConsoleKeysFile)
	if err != nil {
		log.Warn("console keys not read yet: the technician set kept waits for them", "err", err)
		keys = nil
	}
	g, err := maint.New(maint.Options{Totem: cfg.Totem.ID, Keys: keys, Store: box,
		Synced: func() bool { return clk.Stamp().Synced }})
	if err != nil {
		return nil, fmt.Errorf("totemd: %w", err)
	}
	return g, nil
}

// adoptTechnicians is the uplink's OnTechnicians: a set that does not
// verify is refused with a line (no content: it holds secrets).
func adoptTechnicians(g *maint.Gate, b []byte, log *slog.Logger) {
	ok, err := g.SetTechnicians(b)
	switch {
	case err != nil:
		log.Warn("technician set refused", "err", err, "bytes", len(b))
	case ok:
		log.Info("technician set adopted", "technicians", g.Technicians())
	}
}

// diagnostics is the link and the clock for the maintenance menu.
func diagnostics(cfg *config.Totemd, up *uplink.Uplink, clk *stamp.Source) firmware.Diagnostics {
	d := firmware.Diagnostics{Synced: clk.Stamp().Synced}
	if u, err := url.Parse(cfg.Broker.URL); err == nil {
		d.Broker, d.TLS = u.Host, pki.TLSScheme(cfg.Broker.URL)
	}
	if up != nil {
		d.Connected, d.LastError = up.Connected(), up.LastError()
	} else {
		d.LastError = noCredentials
	}
	return d
}

// noCredentials: the totem waits for its credentials (enrollment).
const noCredentials = "nocreds"

// checkCredentials is Test credenziali from the panel, on the live link.
func checkCredentials(ctx context.Context, up *uplink.Uplink) string {
	if up == nil {
		return noCredentials
	}
	return up.CheckCredentials(ctx)
}

// enrollFromPanel exchanges an enrollment code typed at the panel, as
// totemd enroll does, and writes the credentials (0600, atomically).
func enrollFromPanel(ctx context.Context, cfg *config.Totemd, code string) error {
	code, err := enroll.ParseCode(code)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	f, _, err := exchange(ctx, cfg, code, nil)
	if err != nil {
		return err
	}
	return creds.Save(cfg.Broker.CredentialsFile, f)
}
