//go:build cgo && pcsc

package pcsc_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/aslcns/totem/drivers/cns/vcard"
	"github.com/aslcns/totem/drivers/pcsc"
	"github.com/aslcns/totem/drivers/pcsc/pcsctest"
	"github.com/aslcns/totem/hal"
)

func TestMain(m *testing.M) {
	// Before any scard call: libpcsclite reads the socket path once.
	if err := pcsctest.Init(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

const readerName = pcsctest.Reader0

func open(t *testing.T) *pcsc.Reader {
	t.Helper()
	var log *slog.Logger
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r, err := pcsc.Open(context.Background(), pcsc.Options{Reader: readerName, Logger: log, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func next(t *testing.T, r *pcsc.Reader, want hal.CardEventKind) hal.CardEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		ev, err := r.Next(ctx)
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, hal.ErrNoReader) {
				continue
			}
			t.Fatalf("waiting for %v: %v", want, err)
		}
		if ev.Kind == want {
			return ev
		}
		t.Logf("skipping event %v", ev.Kind)
	}
}

func insert(t *testing.T, d *pcsctest.Daemon, vc *vcard.Card) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Insert(ctx, 0, vc); err != nil {
		t.Fatal(err)
	}
}

// profile is a new virtual card of the profile name.
func profile(name string) *vcard.Card {
	p, _ := vcard.Lookup(name)
	return vcard.New(p)
}

// connect waits for r to report a card inserted and connects to it.
func connect(t *testing.T, ctx context.Context, r *pcsc.Reader) (hal.Card, hal.CardEvent) {
	t.Helper()
	ev := next(t, r, hal.CardInserted)
	card, err := r.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return card, ev
}

// eject closes card, pulls vc and waits for r to report it.
func eject(t *testing.T, r *pcsc.Reader, card hal.Card, vc *vcard.Card) {
	t.Helper()
	card.Close()
	vc.Remove()
	next(t, r, hal.CardRemoved)
}

// TestProfiles reads every virtual profile through the real pcscd + vpcd.
func TestProfiles(t *testing.T) {
	d := pcsctest.Start(t)
	r := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, p := range vcard.Profiles() {
		t.Run(p.Name, func(t *testing.T) {
			vc := vcard.New(p)
			insert(t, d, vc)
			defer vc.Remove()
			start := time.Now()
			next(t, r, hal.CardInserted)
			card, err := r.Connect(ctx)
			if err != nil {
				t.Fatal(err)
			}
			info, err := card.Info(ctx)
			elapsed := time.Since(start)
			switch p.Name {
			case "expired":
				if !errors.Is(err, hal.ErrCardExpired) || info.CF == "" {
					t.Errorf("expired: %v", err)
				}
			case "malformed", "badcf":
				if !errors.Is(err, hal.ErrCardData) {
					t.Errorf("malformed: %v", err)
				}
			case "cie", "cie-nxp":
				if !errors.Is(err, hal.ErrCardCIE) || info.Class != hal.ClassCIE {
					t.Errorf("cie: %v %s", err, info.Class)
				}
			case "operator":
				if err != nil || info.Class != hal.ClassOperator {
					t.Errorf("operator: %v %s", err, info.Class)
				}
			case "minor", "issued": // the assisted-mode demo's citizens
				if err != nil || info.Class != hal.ClassCNS || info.Serial != p.Serial || info.Surname != "VERDI" {
					t.Errorf("%s: %v %+v", p.Name, err, info.Class)
				}
			default:
				if err != nil || info.CF != "RSSMRA80A01H501U" || info.Serial != vcard.DemoSerial {
					t.Errorf("%v %+v", err, info.Class)
				}
			}
			if p.Name == "blocked" {
				if err := card.VerifyPIN(ctx, []byte("12345")); !errors.Is(err, hal.ErrPINBlocked) {
					t.Errorf("blocked: %v", err)
				}
			}
			t.Logf("%-9s %2d APDUs, %v from insertion to CF", p.Name, card.(*pcsc.Card).APDUs(), elapsed.Round(time.Millisecond))
			if err := card.Close(); err != nil {
				t.Error(err)
			}
			vc.Remove()
			next(t, r, hal.CardRemoved)
		})
	}
}

// TestPIN: wrong PIN reports tries; the session closes with the card
// unpowered, so no verified state survives.
func TestPIN(t *testing.T) {
	d := pcsctest.Start(t)
	r := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	vc := profile("stincard")
	insert(t, d, vc)
	defer vc.Remove()
	card, _ := connect(t, ctx, r)
	var pe *hal.PINError
	if err := card.VerifyPIN(ctx, []byte("11111")); !errors.As(err, &pe) || pe.TriesLeft != 2 {
		t.Fatalf("wrong PIN: %v", err)
	}
	if err := card.VerifyPIN(ctx, []byte("12345")); err != nil {
		t.Fatal(err)
	}
	if !vc.Verified() {
		t.Fatal("not verified")
	}
	card.Close()
	deadline := time.Now().Add(2 * time.Second)
	for vc.Verified() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if vc.Verified() {
		t.Error("verified state left after Close")
	}
	vc.Remove()
	next(t, r, hal.CardRemoved)
}

// TestCancel: Next and a pending wait return promptly when ctx is done.
func TestCancel(t *testing.T) {
	pcsctest.Start(t)
	r := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.Next(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
	if _, err := r.Connect(context.Background()); !errors.Is(err, hal.ErrNoCard) {
		t.Fatalf("connect with no card: %v", err)
	}
}

// TestPcscdRestart kills pcscd while a card is watched: Next reports the
// card removed and the reader gone, then recovers on its own.
func TestPcscdRestart(t *testing.T) {
	d := pcsctest.Start(t)
	r := open(t)
	vc := profile("cns")
	insert(t, d, vc)
	defer vc.Remove()
	next(t, r, hal.CardInserted)

	d.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ev, err := r.Next(ctx)
	if err != nil || ev.Kind != hal.CardRemoved {
		t.Fatalf("after kill: %v %v", ev, err)
	}
	if _, err := r.Next(ctx); !errors.Is(err, hal.ErrNoReader) {
		t.Fatalf("after kill: %v", err)
	}
	if r.Healthy() {
		t.Fatal("Healthy with pcscd dead")
	}
	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	vc.Remove()
	insert(t, d, vc)
	start := time.Now()
	next(t, r, hal.CardInserted)
	t.Logf("recovered %v after pcscd came back", time.Since(start).Round(time.Millisecond))
	if !r.Healthy() {
		t.Fatal("not Healthy after recovery")
	}
	card, err := r.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := card.Info(ctx); err != nil {
		t.Fatal(err)
	}
	eject(t, r, card, vc)
}

// TestRemovedMidRead pulls the card while EF.Dati_personali is read: the
// read aborts with ErrCardRemoved and the next insertion reads fine.
//
// The new card goes in only once pcscd's polling thread has seen the slot
// empty (AwaitRemoval). The removal the driver reports comes first from
// SCardDisconnect: its power-down finds the card gone and marks the reader
// empty without bumping the event counter ("Error powering down card:
// SCARD_W_REMOVED_CARD" in pcscd's debug log, no "Card Removed From").
// A card connecting to vpcd before the next 400 ms presence poll is found
// "still present" by the polling thread, which then never announces it
// ("Got ATR" every 400 ms on the new connection, no "Card inserted into"):
// that, not vpcd refusing the connection, is what once made this check
// look impossible.
func TestRemovedMidRead(t *testing.T) {
	d := pcsctest.Start(t)
	r := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	vc := profile("cns")
	vc.OnAPDU(func(a []byte) bool { return len(a) > 5 && a[1] == 0xA4 && a[len(a)-2] == 0x02 && a[len(a)-3] == 0x11 })
	insert(t, d, vc)
	card, in := connect(t, ctx, r)
	_, err := card.Info(ctx)
	// vpcd reports a failed transaction rather than a removal.
	if !errors.Is(err, hal.ErrCardRemoved) && !errors.Is(err, hal.ErrNotResponding) || errors.Is(err, hal.ErrCardData) {
		t.Errorf("pulled mid-read: %v", err)
	}
	if err := card.Close(); err != nil {
		t.Errorf("close after the pull: %v", err)
	}
	next(t, r, hal.CardRemoved)
	if err := d.AwaitRemoval(ctx, readerName, in.Counter); err != nil {
		t.Fatal(err)
	}
	vc2 := profile("cns")
	insert(t, d, vc2)
	card, _ = connect(t, ctx, r)
	if info, err := card.Info(ctx); err != nil || info.Surname != "ROSSI" {
		t.Fatal(err)
	}
	eject(t, r, card, vc2)
}
