package main

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/update"
	"github.com/aslcns/totem/sync/update/agent"
)

// payloadSource serves a payload's chunks to the agent.
type payloadSource struct {
	m       *update.Manifest
	payload []byte
}

func (s payloadSource) Chunk(_ context.Context, _ string, i int) ([]byte, error) {
	return s.m.Chunk(s.payload, i), nil
}

// recordInstaller stands in for dpkg: it records what it is asked.
type recordInstaller struct {
	mu    sync.Mutex
	calls []string
}

func (r *recordInstaller) record(s string) {
	r.mu.Lock()
	r.calls = append(r.calls, s)
	r.mu.Unlock()
}
func (r *recordInstaller) Running() (string, error) { return "1.0.0", nil }
func (r *recordInstaller) Install(_ context.Context, _ string, m *update.Manifest) error {
	r.record("install " + m.Version)
	return nil
}
func (r *recordInstaller) Rollback(context.Context) error { r.record("rollback"); return nil }
func (r *recordInstaller) Commit(context.Context) error   { r.record("commit"); return nil }

type healthy struct{}

func (healthy) Healthy(context.Context, string) (bool, string) { return true, "" }

// The supervisor installs a downloaded update only when totemd asked for
// it (the apply request, made while totemd holds the totem quiet): started
// without one — at boot, where the unit resumes probations, or by hand —
// it leaves the update to totemd instead of restarting a totem that may
// be serving a citizen.
func TestSupervisorInstallsOnlyOnRequest(t *testing.T) {
	ops, err := cmdsig.Generate("ops1", cmdsig.Ops)
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 2*update.MinChunk+7)
	rand.Read(payload)
	m, err := update.Build("totemd", "2.0.0", "amd64", payload, update.MinChunk)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sign(ops); err != nil {
		t.Fatal(err)
	}
	manifest, _ := m.Marshal()
	dir := t.TempDir()
	in := &recordInstaller{}
	a := agent.New(agent.Options{Dir: dir, Trusted: []cmdsig.PublicKey{ops.Public()}, Arch: "amd64",
		Source: payloadSource{m, payload}, Installer: in, Health: healthy{}, Quiet: heldByTotemd{},
		Poll: time.Millisecond})
	if err := a.Offer("job1", manifest); err != nil {
		t.Fatal(err)
	}
	if err := a.Download(context.Background()); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)

	if err := supervise(context.Background(), a, dir, log); err != nil {
		t.Fatal(err)
	}
	if len(in.calls) != 0 {
		t.Fatalf("the supervisor installed without totemd's request: %v", in.calls)
	}
	if s, _ := a.Status(); s == nil || s.State != update.StateDownloading || s.Chunk != s.Chunks {
		t.Fatalf("status without a request: %+v", s)
	}

	// A request from an earlier boot (the board lost power between the
	// request and the supervisor) is not totemd's now: ignored, taken.
	if err := os.WriteFile(filepath.Join(dir, "apply"), []byte("an-earlier-boot\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := supervise(context.Background(), a, dir, log); err != nil {
		t.Fatal(err)
	}
	if len(in.calls) != 0 {
		t.Fatalf("the supervisor installed on an earlier boot's request: %v", in.calls)
	}
	if _, err := os.Stat(filepath.Join(dir, "apply")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the stale request was not taken: %v", err)
	}

	if err := os.WriteFile(filepath.Join(dir, "apply"), []byte(bootID()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := supervise(context.Background(), a, dir, log); err != nil {
		t.Fatal(err)
	}
	if len(in.calls) != 2 || in.calls[0] != "install 2.0.0" || in.calls[1] != "commit" {
		t.Fatalf("calls on request: %v", in.calls)
	}
	if _, err := os.Stat(filepath.Join(dir, "apply")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the request was not taken: %v", err)
	}
}

// A totemd that starts holds nothing: a request an earlier one left (it
// died between asking and the supervisor taking the request) is
// withdrawn before the totem serves, or the path unit would install while
// a citizen is served.
func TestLeftRequestWithdrawnAtStart(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	if withdrawLeftRequest(dir, log) {
		t.Fatal("withdrew a request that was not there")
	}
	if err := os.WriteFile(filepath.Join(dir, "apply"), []byte(bootID()), 0o600); err != nil {
		t.Fatal(err)
	}
	if !withdrawLeftRequest(dir, log) {
		t.Fatal("the left request was not withdrawn")
	}
	if _, err := os.Stat(filepath.Join(dir, "apply")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("request still there: %v", err)
	}
}

// cardReader hands the test's card events to totemd's gated reader.
type cardReader struct{ events chan hal.CardEvent }

func (r cardReader) Next(ctx context.Context) (hal.CardEvent, error) {
	select {
	case ev := <-r.events:
		return ev, nil
	case <-ctx.Done():
		return hal.CardEvent{}, ctx.Err()
	}
}
func (cardReader) Connect(context.Context) (hal.Card, error) { return nil, hal.ErrNoCard }

// No update interrupts a citizen, through totemd's own parts: the
// devices gated as main gates them and the updater's apply. While a card
// is in the slot the supervisor is not asked; once the totem is quiet it
// is, and a card inserted meanwhile is kept from the session loop. A
// supervisor that never comes has the request withdrawn before the totem
// is given back, so it cannot install later while a citizen is served.
func TestUpdateWaitsForTheCitizen(t *testing.T) {
	cfg := config.DefaultTotemd()
	cfg.StateDir = t.TempDir()
	cfg.Update.Enabled = true
	cfg.Update.Quiet.Duration = 100 * time.Millisecond
	cfg.Update.HealthWindow.Duration = 3 * time.Second
	if err := os.MkdirAll(updateDir(cfg), 0o700); err != nil {
		t.Fatal(err)
	}
	request := filepath.Join(updateDir(cfg), "apply")
	reader := cardReader{events: make(chan hal.CardEvent)}
	dev, u := gateDevices(cfg, firmware.Devices{Reader: reader})
	if u == nil {
		t.Fatal("no updater with updates enabled")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The session loop: it takes the reader's events.
	seen := make(chan hal.CardEvent, 4)
	go func() {
		for {
			ev, err := dev.Reader.Next(ctx)
			if err != nil {
				return
			}
			seen <- ev
		}
	}()
	card := func(kind hal.CardEventKind) {
		t.Helper()
		select {
		case reader.events <- hal.CardEvent{Kind: kind}:
		case <-time.After(10 * time.Second):
			t.Fatalf("card %v: the reader was not read", kind)
		}
	}
	card(hal.CardInserted)
	if ev := <-seen; ev.Kind != hal.CardInserted {
		t.Fatalf("event %v", ev.Kind)
	}

	applied := make(chan error, 1)
	go func() { applied <- u.apply(ctx, slog.New(slog.DiscardHandler)) }()
	// Two of apply's looks (it looks at once, then every 2 s) with the
	// card in: no request. Bounded by the looks, not a timing.
	for range 25 {
		if _, err := os.Stat(request); err == nil {
			t.Fatal("the supervisor was asked with a card in the slot")
		}
		time.Sleep(100 * time.Millisecond)
	}
	card(hal.CardRemoved)
	<-seen
	asked := false
	for range 100 { // 10 s at most
		if _, err := os.Stat(request); err == nil {
			asked = true
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !asked {
		t.Fatal("the supervisor was never asked once the totem was quiet")
	}
	// Held: a citizen's card does not reach the session loop.
	go func() {
		select {
		case reader.events <- hal.CardEvent{Kind: hal.CardInserted}:
		case <-ctx.Done():
		}
	}()
	select {
	case ev := <-seen:
		t.Fatalf("card %v passed while the totem was held for the update", ev.Kind)
	case <-time.After(300 * time.Millisecond):
	}
	// No supervisor: after the health window the request is withdrawn
	// and the card goes through.
	select {
	case err := <-applied:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("apply still holding the totem after its window")
	}
	if _, err := os.Stat(request); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the request outlived the hold: %v", err)
	}
	select {
	case ev := <-seen:
		if ev.Kind != hal.CardInserted {
			t.Fatalf("event %v", ev.Kind)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the card held back never reached the session loop")
	}
}
