package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/firmware"
)

// A --panel that is not a panel, or a stray word, is refused before
// anything starts (a typo used to start the daemon on the configured
// panel). The context is cancelled: were the daemon to start, it would
// stop at once and return without the refusal.
func TestRefusedArgs(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	t.Chdir(t.TempDir()) // the demo defaults' state directory, if it got that far
	for _, args := range [][]string{{"--panel", "bogus"}, {"--panel=Terminal"}, {"bogus"}, {"--panel", "none", "help"}} {
		var out, errb bytes.Buffer
		err := run(ctx, args, nil, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), "want one of auto, terminal, none, hardware") && !strings.Contains(err.Error(), "unknown command") {
			t.Errorf("%q: %v", args, err)
		}
	}
	for _, v := range panels {
		if err := checkPanelFlag(v); err != nil {
			t.Error(err)
		}
	}
}

// The configuration's timeouts and totem settings reach the App: the operator session with
// the slot empty ends after session.operator_idle_timeout (it was a fixed
// 5 minutes).
func TestFirmwareOptions(t *testing.T) {
	cfg, err := config.LoadTotemd(filepath.Join("..", "..", "deploy", "totemd.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Session.OperatorIdleTimeout.Duration = 45 * time.Second
	o := firmwareOptions(cfg)
	if o.OperatorTimeout != 45*time.Second || o.IdleTimeout != time.Minute || o.Totem != cfg.Totem.ID {
		t.Fatalf("options %+v", o)
	}
	// The options main's totemd set where it built the App come from the
	// configuration here too.
	cfg.Session.IdleWarning.Duration, cfg.Session.MaintenanceIdle.Duration = 20*time.Second, 7*time.Minute
	cfg.Totem.Town, cfg.Totem.ReceiptLink = "Lucca", "https://asl.example/e?p={protocollo}"
	o = firmwareOptions(cfg)
	if o.IdleWarning != 20*time.Second || o.MaintIdle != 7*time.Minute || o.Town != "Lucca" ||
		o.ReceiptLink != cfg.Totem.ReceiptLink || !o.Audit || o.Version != version {
		t.Fatalf("options %+v", o)
	}
	if firmware.DefaultOperatorTimeout >= 5*time.Minute {
		t.Fatalf("default operator timeout %v", firmware.DefaultOperatorTimeout)
	}
}
