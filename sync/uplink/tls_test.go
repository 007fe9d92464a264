package uplink

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/pki"
	"github.com/aslcns/totem/sync/synctest"
)

// Over mqtts:// the uplink connects to a broker its CA vouches for; with
// another CA it never connects, and its log says so at error level,
// naming the CA file and the broker (at debug, as other connect
// failures, nobody would see why a totem stays offline).
func TestTLSUplink(t *testing.T) {
	r := newRig(t)
	dir := t.TempDir()
	now := time.Now()
	_, cert := synctest.ServerCert(t, dir, "test CA", now)
	srv, err := broker.Start(broker.Options{TLSListen: "127.0.0.1:0", TLS: cert.Config(), Auth: r.auth})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	other := t.TempDir()
	if _, err := pki.LoadOrCreateCA(other, "another CA", now); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, caFile string
		connects     bool
	}{{"right CA", filepath.Join(dir, pki.CACertFile), true}, {"another CA", filepath.Join(other, pki.CACertFile), false}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cfg, err := pki.Client{CAFile: tc.caFile}.Config(srv.TLSURL())
			if err != nil {
				t.Fatal(err)
			}
			var logs synctest.Log
			u := New(Options{Totem: totem, URL: srv.TLSURL(), TLS: cfg, CAFile: tc.caFile, Outbox: r.box,
				Username: r.totem.Username, Password: r.totem.Password, BackoffMin: 20 * time.Millisecond,
				BackoffMax: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			uctx, ucancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- u.Run(uctx) }()
			defer func() { ucancel(); <-done }()
			for !u.Connected() && !strings.Contains(logs.String(), "broker certificate refused") {
				if ctx.Err() != nil {
					t.Fatalf("neither connected nor refused; log:\n%s", logs.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			if u.Connected() != tc.connects {
				t.Fatalf("connected %v, want %v; log:\n%s", u.Connected(), tc.connects, logs.String())
			}
			if !tc.connects {
				l := logs.String()
				if !strings.Contains(l, "level=ERROR") || !strings.Contains(l, tc.caFile) || !strings.Contains(l, srv.TLSAddr()) {
					t.Errorf("log does not name the CA file and the broker at error level:\n%s", l)
				}
			}
		})
	}
}
