package broker

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/creds"
)

// childEnv, when set, makes the test binary a broker under a descriptor
// limit of 256 (see brokerChild) instead of running the tests.
const childEnv = "TOTEM_BROKER_TEST_CHILD"

func TestMain(m *testing.M) {
	if secret := os.Getenv(childEnv); secret != "" {
		os.Exit(brokerChild(secret))
	}
	os.Exit(m.Run())
}

// brokerChild runs a broker with totem A (password secret) under
// RLIMIT_NOFILE 256, prints its address, serves until its standard input
// ends, then prints its Stats.
func brokerChild(secret string) int {
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 256, Max: 256}); err != nil {
		fmt.Fprintln(os.Stderr, "setrlimit:", err)
		return 2
	}
	users := NewUsers(nil)
	if err := users.Add(creds.File{Username: "A", Role: creds.RoleTotem, Password: secret}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	srv, err := Start(Options{Listen: "127.0.0.1:0", Auth: users,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println(srv.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	fmt.Println("stats:", srv.Stats())
	srv.Close()
	return 0
}

// TestAcceptSurvivesDescriptorExhaustion: with 256 descriptors, 400 idle
// sockets make Accept fail with EMFILE. mochi's own accept loop returned
// on that error and the broker never accepted again; once the sockets are
// gone, a totem must connect and authenticate within 5 s.
func TestAcceptSurvivesDescriptorExhaustion(t *testing.T) {
	secret, err := creds.Generate("A", creds.RoleTotem)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+secret.Password)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := new(syncBuffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // the child we started, by its pid
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("child stderr:\n%s", stderr.String())
		}
	})
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var addr string
	select {
	case addr = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatal("the child broker did not start")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		t.Fatalf("child printed %q", addr)
	}

	const idle = 400
	conns := make([]net.Conn, 0, idle)
	for range idle {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	// Let the broker's accept run into the limit: it accepts as fast as
	// the sockets come, so 256 descriptors are gone well within this.
	time.Sleep(500 * time.Millisecond)
	for _, c := range conns {
		c.Close()
	}

	start := time.Now()
	if _, ca, err := dial(t, addr, "A", "A", secret.Password, nil); err != nil {
		t.Fatalf("totem refused after the descriptor exhaustion: CONNACK %+v, err %v", ca, err)
	}
	t.Logf("connected %v after the idle sockets closed", time.Since(start).Round(time.Millisecond))

	stdin.Close()
	select {
	case l := <-lines:
		t.Log(l)
		if !strings.Contains(l, "AcceptErrors=") {
			t.Errorf("the broker saw no failing Accept: the test did not exhaust its descriptors (%s)", l)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the child broker did not stop")
	}
}
