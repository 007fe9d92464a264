//go:build cgo && pcsc

package pcsc_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/aslcns/totem/drivers/cns/vcard"
	"github.com/aslcns/totem/drivers/pcsc"
	"github.com/aslcns/totem/hal"
)

// daemon is a private pcscd for the tests: it listens on its own socket
// (systemd socket activation: the test binds the socket and passes it as
// fd 3 with LISTEN_FDS=1 and LISTEN_PID=<pcscd's pid>; clients find it
// through PCSCLITE_CSOCK_NAME) and loads only a vpcd reader on a free port
// (DEVICENAME /dev/null:PORT in a private reader.conf.d).
type daemon struct {
	dir  string
	sock *os.File
	port int
	cmd  *exec.Cmd
}

var pcscd *daemon

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if _, err := exec.LookPath("pcscd"); err != nil {
		fmt.Println("skipping: no pcscd")
		return 0
	}
	if _, err := os.Stat("/usr/lib/pcsc/drivers/serial/libifdvpcd.so"); err != nil {
		fmt.Println("skipping: no vpcd driver")
		return 0
	}
	d, err := newDaemon()
	if err != nil {
		fmt.Println("private pcscd:", err)
		return 1
	}
	if os.Getenv("PCSCD_TEST_KEEP") == "" {
		defer os.RemoveAll(d.dir)
	} else {
		fmt.Println("pcscd test dir:", d.dir)
	}
	if err := d.start(); err != nil {
		fmt.Println("private pcscd:", err)
		return 1
	}
	pcscd = d
	defer d.stop(false)
	return m.Run()
}

func freePort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1)); err == nil {
			l2.Close()
			return p, nil
		}
	}
	return 0, errors.New("no free port pair")
}

func newDaemon() (*daemon, error) {
	dir, err := os.MkdirTemp("", "pcscd-test-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "reader.conf.d")
	os.Mkdir(conf, 0o755)
	err = os.WriteFile(filepath.Join(conf, "vpcd"), fmt.Appendf(nil,
		"FRIENDLYNAME \"Virtual PCD\"\nDEVICENAME /dev/null:%d\nLIBPATH /usr/lib/pcsc/drivers/serial/libifdvpcd.so\nCHANNELID %d\n", port, port), 0o644)
	if err != nil {
		return nil, err
	}
	sockPath := filepath.Join(dir, "pcscd.comm")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sockPath, Net: "unix"})
	if err != nil {
		return nil, err
	}
	f, err := l.File()
	if err != nil {
		return nil, err
	}
	// libpcsclite reads the variable once per process, before any call.
	os.Setenv("PCSCLITE_CSOCK_NAME", sockPath)
	return &daemon{dir: dir, sock: f, port: port}, nil
}

func (d *daemon) addr() string { return fmt.Sprintf("127.0.0.1:%d", d.port) }

func (d *daemon) start() error {
	cmd := exec.Command("sh", "-c", `LISTEN_PID=$$ exec pcscd --foreground --debug --config "$1"`, "sh", filepath.Join(d.dir, "reader.conf.d"))
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1")
	cmd.ExtraFiles = []*os.File{d.sock}
	logf, err := os.OpenFile(filepath.Join(d.dir, "pcscd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	d.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := scard.EstablishContext(); err == nil {
			names, _ := c.ListReaders()
			c.Release()
			if len(names) >= 1 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.stop(true)
	return errors.New("pcscd did not come up")
}

func (d *daemon) stop(kill bool) {
	if d.cmd == nil {
		return
	}
	if kill {
		d.cmd.Process.Kill()
	} else {
		d.cmd.Process.Signal(os.Interrupt)
	}
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		d.cmd.Process.Kill()
		<-done
	}
	d.cmd = nil
}

const readerName = "Virtual PCD 00 00"

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

func insert(t *testing.T, vc *vcard.Card) {
	t.Helper()
	vc.SetAddr(pcscd.addr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		err := vc.Insert(ctx)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestProfiles reads every virtual profile through the real pcscd + vpcd.
func TestProfiles(t *testing.T) {
	r := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, p := range vcard.Profiles() {
		t.Run(p.Name, func(t *testing.T) {
			vc := vcard.New(p)
			insert(t, vc)
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
			case "malformed":
				if !errors.Is(err, hal.ErrCardData) {
					t.Errorf("malformed: %v", err)
				}
			case "cie":
				if !errors.Is(err, hal.ErrCardUnknown) || info.Class != hal.ClassCIE {
					t.Errorf("cie: %v %s", err, info.Class)
				}
			case "operator":
				if err != nil || info.Class != hal.ClassOperator {
					t.Errorf("operator: %v %s", err, info.Class)
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
	r := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, _ := vcard.Lookup("stincard")
	vc := vcard.New(p)
	insert(t, vc)
	defer vc.Remove()
	next(t, r, hal.CardInserted)
	card, err := r.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
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
	r := open(t)
	p, _ := vcard.Lookup("cns")
	vc := vcard.New(p)
	insert(t, vc)
	defer vc.Remove()
	next(t, r, hal.CardInserted)

	pcscd.stop(true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ev, err := r.Next(ctx)
	if err != nil || ev.Kind != hal.CardRemoved {
		t.Fatalf("after kill: %v %v", ev, err)
	}
	if _, err := r.Next(ctx); !errors.Is(err, hal.ErrNoReader) {
		t.Fatalf("after kill: %v", err)
	}
	if err := pcscd.start(); err != nil {
		t.Fatal(err)
	}
	vc.Remove()
	insert(t, vc)
	start := time.Now()
	next(t, r, hal.CardInserted)
	t.Logf("recovered %v after pcscd came back", time.Since(start).Round(time.Millisecond))
	card, err := r.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := card.Info(ctx); err != nil {
		t.Fatal(err)
	}
	card.Close()
	vc.Remove()
	next(t, r, hal.CardRemoved)
}

// TestRemovedMidRead pulls the card while EF.Dati_personali is read: the
// read aborts with ErrCardRemoved and the next insertion reads fine.
func TestRemovedMidRead(t *testing.T) {
	r := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, _ := vcard.Lookup("cns")
	vc := vcard.New(p)
	vc.OnAPDU(func(a []byte) bool { return len(a) > 5 && a[1] == 0xA4 && a[len(a)-2] == 0x02 && a[len(a)-3] == 0x11 })
	insert(t, vc)
	next(t, r, hal.CardInserted)
	card, err := r.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = card.Info(ctx)
	// vpcd reports a failed transaction rather than a removal.
	if !errors.Is(err, hal.ErrCardRemoved) && !errors.Is(err, hal.ErrNotResponding) || errors.Is(err, hal.ErrCardData) {
		t.Errorf("pulled mid-read: %v", err)
	}
	card.Close()
	next(t, r, hal.CardRemoved)
	if os.Getenv("VPCD_REINSERT") == "" {
		// Known vpcd limitation: after a connection dropped during a
		// transaction its polling thread no longer accepts a new card
		// (observed with vsmartcard-vpcd on pcscd 1.9.9). Set
		// VPCD_REINSERT=1 to check the re-insertion anyway.
		t.Log("re-insertion after a mid-transaction pull not checked (vpcd limitation)")
		return
	}
	vc2 := vcard.New(p)
	insert(t, vc2)
	next(t, r, hal.CardInserted)
	card, err = r.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := card.Info(ctx); err != nil || info.Surname != "ROSSI" {
		t.Fatal(err)
	}
	card.Close()
	vc2.Remove()
	next(t, r, hal.CardRemoved)
}
