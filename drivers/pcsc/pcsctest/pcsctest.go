//go:build cgo && pcsc

// Package pcsctest runs a private pcscd for tests, so PC/SC code can be
// exercised against the real daemon and the vsmartcard vpcd reader driver
// without touching the machine's own pcscd or its readers.
//
// Each Daemon listens on a socket handed over by systemd-style socket
// activation (the test binds it and passes it as fd 3 with LISTEN_FDS=1 and
// LISTEN_PID=<pcscd's pid>) and loads only a vpcd reader on a free TCP port
// pair (DEVICENAME /dev/null:PORT in a private reader.conf.d): slot 0 is
// "Virtual PCD 00 00" on Port, slot 1 "Virtual PCD 00 01" on Port+1. Virtual
// cards (drivers/cns/vcard) are inserted by connecting to Addr(slot).
//
// # Order matters: call Init before any scard call
//
// libpcsclite reads PCSCLITE_CSOCK_NAME once per process, at its first
// call, and keeps that socket for the life of the process. Init sets it to a
// path private to the test binary; every Daemon of the process listens
// there, one at a time. A test binary in which anything may call scard
// before the first Start must therefore call Init from TestMain:
//
//	func TestMain(m *testing.M) {
//		if err := pcsctest.Init(); err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		os.Exit(m.Run())
//	}
//
// Start calls Init itself, which is enough when the kit's callers are the
// only users of PC/SC in the binary. Start notices when libpcsclite talks
// to another daemon (the variable was read too late) and fails the test
// rather than let it drive the machine's pcscd.
//
// Tests using a Daemon must not run in parallel with each other. Set
// PCSCD_TEST_KEEP=1 to keep each daemon's directory (its debug log is
// pcscd.log there); a failed test gets the tail of the log either way.
package pcsctest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/aslcns/totem/drivers/cns/vcard"
)

// VPCDDriver is the vsmartcard vpcd reader driver pcscd loads.
const VPCDDriver = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"

// Reader names of the two vpcd slots.
const (
	Reader0 = "Virtual PCD 00 00"
	Reader1 = "Virtual PCD 00 01"
)

// Available returns nil when pcscd and the vpcd driver are installed, or
// the reason the kit cannot run.
func Available() error {
	if _, err := exec.LookPath("pcscd"); err != nil {
		return fmt.Errorf("pcsctest: no pcscd: %w", err)
	}
	if _, err := os.Stat(VPCDDriver); err != nil {
		return fmt.Errorf("pcsctest: no vpcd driver: %w", err)
	}
	return nil
}

var (
	initOnce sync.Once
	sockPath string
	initErr  error

	runMu   sync.Mutex
	running *Daemon // at most one daemon per process
)

// Init points libpcsclite at this process's private socket
// (PCSCLITE_CSOCK_NAME). It must run before the process's first scard
// call; calling it again does nothing.
func Init() error {
	initOnce.Do(func() {
		sockPath = filepath.Join(os.TempDir(), fmt.Sprintf("pcsctest-%d.comm", os.Getpid()))
		initErr = os.Setenv("PCSCLITE_CSOCK_NAME", sockPath)
	})
	return initErr
}

// Socket returns the socket path Init chose ("" before Init).
func Socket() string { return sockPath }

// Daemon is a private pcscd.
type Daemon struct {
	// Dir holds reader.conf.d and pcscd.log.
	Dir string
	// Socket is the pcscd socket clients reach (PCSCLITE_CSOCK_NAME).
	Socket string
	// Port is vpcd's TCP port for slot 0; slot 1 listens on Port+1.
	Port int

	mu   sync.Mutex
	ln   *net.UnixListener
	sock *os.File // the listening socket passed to pcscd as fd 3
	cmd  *exec.Cmd
}

// Start starts a private pcscd and stops it when t ends. It skips t when
// pcscd or vpcd is not installed and fails it when the daemon does not
// come up.
func Start(t testing.TB) *Daemon {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip(err)
	}
	d, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pcscd log (%s), last lines:\n%s", d.Dir, d.LogTail(40))
		}
		d.Stop()
	})
	return d
}

// New starts a private pcscd; Stop ends it. Most tests want Start.
func New() (*Daemon, error) {
	if err := Init(); err != nil {
		return nil, err
	}
	runMu.Lock()
	defer runMu.Unlock()
	if running != nil {
		return nil, errors.New("pcsctest: a private pcscd is already running in this process (tests using it cannot run in parallel)")
	}
	dir, err := os.MkdirTemp("", "pcscd-test-")
	if err != nil {
		return nil, err
	}
	d := &Daemon{Dir: dir, Socket: sockPath}
	if err := d.setup(); err != nil {
		d.cleanup()
		return nil, err
	}
	if err := d.start(); err != nil {
		d.cleanup()
		return nil, err
	}
	running = d
	return d, nil
}

func (d *Daemon) setup() error {
	port, err := freePorts()
	if err != nil {
		return err
	}
	d.Port = port
	conf := filepath.Join(d.Dir, "reader.conf.d")
	if err := os.Mkdir(conf, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(conf, "vpcd"), fmt.Appendf(nil,
		"FRIENDLYNAME \"Virtual PCD\"\nDEVICENAME /dev/null:%d\nLIBPATH %s\nCHANNELID %d\n",
		port, VPCDDriver, port), 0o644); err != nil {
		return err
	}
	os.Remove(d.Socket) // left by a crashed run of a process with our pid
	d.ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: d.Socket, Net: "unix"})
	if err != nil {
		return fmt.Errorf("pcsctest: %w", err)
	}
	d.sock, err = d.ln.File()
	return err
}

// freePorts returns a port p such that p and p+1 were both free.
func freePorts() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1))
		l.Close()
		if err == nil {
			l2.Close()
			return p, nil
		}
	}
	return 0, errors.New("pcsctest: no free port pair")
}

// Addr returns the address a virtual card of slot (0 or 1) connects to.
func (d *Daemon) Addr(slot int) string { return fmt.Sprintf("127.0.0.1:%d", d.Port+slot) }

// LogPath is pcscd's debug log.
func (d *Daemon) LogPath() string { return filepath.Join(d.Dir, "pcscd.log") }

// Log returns pcscd's debug output so far.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.LogPath())
	return string(b)
}

// LogTail returns the last n lines of pcscd's debug output.
func (d *Daemon) LogTail(n int) string {
	lines := strings.Split(strings.TrimRight(d.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// start runs pcscd on the socket and waits until its vpcd readers are up.
func (d *Daemon) start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	logf, err := os.OpenFile(d.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	before, _ := logf.Seek(0, 2)
	// LISTEN_PID must be pcscd's own pid: the shell sets it and execs.
	cmd := exec.Command("sh", "-c", `LISTEN_PID=$$ exec pcscd --foreground --debug --config "$1"`,
		"sh", filepath.Join(d.Dir, "reader.conf.d"))
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1")
	cmd.ExtraFiles = []*os.File{d.sock}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pcsctest: %w", err)
	}
	d.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := scard.EstablishContext(); err == nil {
			names, _ := c.ListReaders()
			c.Release()
			if len(names) >= 1 {
				if !d.servedSince(before) {
					d.kill()
					return fmt.Errorf("pcsctest: libpcsclite reached another pcscd than %s: "+
						"PCSCLITE_CSOCK_NAME was read before pcsctest.Init (call it from TestMain)", d.Socket)
				}
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.kill()
	return errors.New("pcsctest: pcscd did not come up")
}

// servedSince reports whether the daemon's log shows a client context
// established after offset before: the readiness probe was served by it.
func (d *Daemon) servedSince(before int64) bool {
	for range 20 {
		b, _ := os.ReadFile(d.LogPath())
		if int64(len(b)) > before && bytes.Contains(b[before:], []byte("ESTABLISH_CONTEXT")) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// stopLocked sends SIGKILL (SIGTERM when graceful) and waits; d.mu is held.
func (d *Daemon) stopLocked(graceful bool) {
	if d.cmd == nil {
		return
	}
	sig := syscall.SIGKILL
	if graceful {
		sig = syscall.SIGTERM
	}
	d.cmd.Process.Signal(sig)
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

func (d *Daemon) kill() { d.stopLocked(false) }

// Kill kills pcscd with SIGKILL, as a crash would, and waits for it. The
// socket stays bound (as systemd keeps it): clients get errors until
// Restart.
func (d *Daemon) Kill() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.kill()
}

// Restart kills pcscd with SIGKILL if it runs and starts it again on the
// same socket and vpcd ports.
func (d *Daemon) Restart() error {
	d.Kill()
	return d.start()
}

// Stop stops pcscd (SIGTERM, then SIGKILL after 5 s), closes the socket and
// removes Dir unless PCSCD_TEST_KEEP is set. It may be called more than
// once.
func (d *Daemon) Stop() {
	d.mu.Lock()
	d.stopLocked(true)
	d.mu.Unlock()
	d.cleanup()
	runMu.Lock()
	if running == d {
		running = nil
	}
	runMu.Unlock()
}

func (d *Daemon) cleanup() {
	if d.sock != nil {
		d.sock.Close()
		d.sock = nil
	}
	if d.ln != nil {
		d.ln.Close() // unlinks the socket file
		d.ln = nil
	}
	if os.Getenv("PCSCD_TEST_KEEP") == "" {
		os.RemoveAll(d.Dir)
	}
}

// Insert inserts vc into slot's reader, retrying while vpcd is not
// listening yet, until ctx is done.
func (d *Daemon) Insert(ctx context.Context, slot int, vc *vcard.Card) error {
	vc.SetAddr(d.Addr(slot))
	for {
		err := vc.Insert(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pcsctest: insert: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// AwaitPresent waits until pcscd reports a card in reader and returns the
// reader's event counter then, for AwaitRemoval.
func (d *Daemon) AwaitPresent(ctx context.Context, reader string) (int, error) {
	es, err := awaitState(ctx, reader, "await card", fmt.Sprintf("await a card in %s", reader),
		func(es scard.StateFlag) bool { return es&scard.StatePresent != 0 })
	if err != nil {
		return 0, err
	}
	return int(uint32(es)>>16) & 0xFFFF, nil
}

// awaitState polls reader's state until done accepts it and returns it.
// pcscd's errors are reported as op's, the end of ctx as ended's.
func awaitState(ctx context.Context, reader, op, ended string, done func(scard.StateFlag) bool) (scard.StateFlag, error) {
	c, err := scard.EstablishContext()
	if err != nil {
		return 0, fmt.Errorf("pcsctest: %s: %w", op, err)
	}
	defer c.Release()
	rs := []scard.ReaderState{{Reader: reader, CurrentState: scard.StateUnaware}}
	for {
		// Short waits instead of Cancel: ctx is checked between them.
		switch err := c.GetStatusChange(rs, 100*time.Millisecond); err {
		case nil:
			es := rs[0].EventState
			if done(es) {
				return es, nil
			}
			rs[0].CurrentState = es &^ scard.StateChanged
		case scard.ErrTimeout:
		default:
			return 0, fmt.Errorf("pcsctest: %s: %w", op, err)
		}
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("pcsctest: %s: %w", ended, err)
		}
	}
}

// AwaitRemoval waits until pcscd's own polling thread has seen reader's
// slot empty after the insertion reported with event counter inserted
// (hal.CardEvent.Counter): the slot is empty and the counter moved on.
//
// A virtual card inserted before that is never announced. When a card
// leaves during a transaction, SCardDisconnect's power-down finds it gone
// and marks the reader empty for clients without bumping the event
// counter; pcscd's polling thread (a vpcd presence check every 400 ms)
// has not looked yet. If a card connects to vpcd before its next poll,
// the thread finds a card present, as it last did, and announces nothing:
// clients see an empty slot until that card leaves. A hand is slower than
// 400 ms; a test must wait with this.
func (d *Daemon) AwaitRemoval(ctx context.Context, reader string, inserted int) error {
	_, err := awaitState(ctx, reader, "await removal", fmt.Sprintf("await removal of the card in %s (counter %d)", reader, inserted),
		func(es scard.StateFlag) bool {
			return es&scard.StateEmpty != 0 && int(uint32(es)>>16)&0xFFFF != inserted
		})
	return err
}
