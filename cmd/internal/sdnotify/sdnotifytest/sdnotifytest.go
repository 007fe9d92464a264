// Package sdnotifytest runs a program under a fake systemd, for the tests
// of totemd and totemhub: a NOTIFY_SOCKET the test listens on, and the
// program's stderr read line by line (and copied to the test's log).
package sdnotifytest

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Notice is one datagram the program sent to NOTIFY_SOCKET.
type Notice struct {
	State string
	At    time.Time
}

// Process is a program running under the fake systemd.
type Process struct {
	Cmd     *exec.Cmd
	Notices chan Notice   // the notices, in order (the socket closed: closed)
	Lines   chan string   // stderr's lines (dropped when 1024 wait)
	Done    chan struct{} // closed at the end of stderr

	t    testing.TB
	name string
	seen []string // the notices Await read
}

// Start runs bin with args, env added to the test's environment and
// NOTIFY_SOCKET set to a socket of its own; a program still running at
// the test's end is killed.
func Start(t testing.TB, env []string, bin string, args ...string) *Process {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	p := &Process{Cmd: exec.Command(bin, args...), Notices: make(chan Notice, 256), Lines: make(chan string, 1024),
		Done: make(chan struct{}), t: t, name: filepath.Base(bin)}
	p.Cmd.Env = append(append(os.Environ(), env...), "NOTIFY_SOCKET="+sock)
	stderr, err := p.Cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Start(); err != nil {
		conn.Close()
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(p.Notices)
				return
			}
			p.Notices <- Notice{State: string(buf[:n]), At: time.Now()}
		}
	}()
	go func() {
		defer close(p.Done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Log(p.name + ": " + sc.Text())
			select {
			case p.Lines <- sc.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() {
		if p.Cmd.ProcessState == nil {
			p.Cmd.Process.Kill()
			<-p.Done
			p.Cmd.Wait()
		}
		conn.Close()
	})
	return p
}

// Await returns the first notice containing state, failing after limit.
func (p *Process) Await(state string, limit time.Duration) Notice {
	p.t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case n, ok := <-p.Notices:
			if !ok {
				p.t.Fatalf("notify socket closed before %q (got %q)", state, p.seen)
			}
			p.seen = append(p.seen, n.State)
			if strings.Contains(n.State, state) {
				return n
			}
		case <-timer.C:
			p.t.Fatalf("no %q from %s within %v (got %q)", state, p.name, limit, p.seen)
		}
	}
}

// AwaitLine waits for a stderr line containing every one of subs.
func (p *Process) AwaitLine(limit time.Duration, subs ...string) string {
	p.t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case l := <-p.Lines:
			ok := true
			for _, s := range subs {
				ok = ok && strings.Contains(l, s)
			}
			if ok {
				return l
			}
		case <-timer.C:
			p.t.Fatalf("%s never logged %q within %v", p.name, subs, limit)
		}
	}
}

// Wait waits for the program to end (after its stderr) and returns its
// exit error.
func (p *Process) Wait() error {
	<-p.Done
	return p.Cmd.Wait()
}
