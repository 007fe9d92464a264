package totem_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDemoInTmux does what a person does with the demo: totemd on its
// terminal panel in a real terminal (tmux), the card inserted with 'i', the
// consent flow typed on the keyboard, the screen read back.
func TestDemoInTmux(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tmux missing (.ci/run installs it)")
		}
		t.Skip("tmux not installed")
	}
	bin := build(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	write(t, dir+"/hub.toml", fmt.Sprintf("state_dir = %q\n[broker]\nlisten = %q\ntls_listen = \"\"\n[fleet]\ncredentials_dir = %q\n[http]\nlisten = \"\"\n",
		dir+"/hub", addr, dir+"/creds"))
	write(t, dir+"/totemd.toml", fmt.Sprintf("state_dir = %q\n[broker]\nurl = %q\ncredentials_file = %q\nreconnect_min = \"100ms\"\nreconnect_max = \"1s\"\n",
		dir+"/totemd", "mqtt://"+addr, dir+"/creds/demo-01.json"))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hub := exec.CommandContext(ctx, bin+"/totemhub", "--config", dir+"/hub.toml")
	if err := hub.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { hub.Process.Signal(syscall.SIGTERM); hub.Wait() }()

	sock := filepath.Join(dir, "tmux.sock")
	tmux := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, "tmux", append([]string{"-S", sock}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v %s", args, err, out)
		}
		return string(out)
	}
	tmux("new-session", "-d", "-x", "80", "-y", "24", bin+"/totemd --config "+dir+"/totemd.toml --panel terminal")
	defer exec.Command("tmux", "-S", sock, "kill-server").Run()
	screen := func() string { return tmux("capture-pane", "-p") }
	waitFor := func(s string) string {
		t.Helper()
		var last string
		for ctx.Err() == nil {
			last = screen()
			if strings.Contains(last, s) {
				return last
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("the screen never showed %q; it shows:\n%s", s, last)
		return ""
	}
	keys := func(k ...string) { tmux(append([]string{"send-keys", "-t", "0"}, k...)...) }

	waitFor("Inserire la tessera")
	waitFor("Hub: in linea")
	keys("i")
	waitFor("1 Consensi FSE")
	keys("1")
	waitFor("PIN:")
	keys("1", "2", "3", "4", "5")
	waitFor("PIN: *****")
	keys("Enter")
	waitFor("Informativa FSE")
	keys("Enter")
	waitFor("Consenso 1 di 2")
	keys("1")
	waitFor("Consenso 2 di 2")
	keys("2")
	waitFor("Riepilogo")
	keys("Enter")
	s := waitFor("Accolta. Protocollo:")
	proto := regexp.MustCompile(`│(\d{15}) *│`).FindStringSubmatch(s)
	if proto == nil {
		t.Fatalf("no protocol number on screen:\n%s", s)
	}
	keys("r")
	waitFor("Inserire la tessera")
	if strings.Contains(screen(), proto[1]) {
		t.Fatal("protocol number left on screen after the card left")
	}
	keys("q")
	for ctx.Err() == nil && exec.Command("tmux", "-S", sock, "has-session").Run() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	receipts, _ := filepath.Glob(dir + "/totemd/receipts/*.txt")
	if len(receipts) != 1 {
		t.Fatalf("receipts %v", receipts)
	}
	b, _ := os.ReadFile(receipts[0])
	if !strings.Contains(string(b), "Protocollo: "+proto[1]) {
		t.Fatalf("receipt:\n%s", b)
	}
	// Personal data at rest is sealed: the outbox file never holds the CF.
	db, err := os.ReadFile(dir + "/totemd/outbox.db")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(db), "RSSMRA80A01H501U") || !strings.Contains(string(db), "consent") {
		t.Error("the outbox holds the CF in clear (or is not the outbox)")
	}
	logb, _ := os.ReadFile(dir + "/totemd/totemd.log")
	// The PIN as a word: a random hex id may contain the digits by chance.
	for _, secret := range []string{"RSSMRA80A01H501U", "ROSSI", "MARIO", `\b12345\b`} {
		if regexp.MustCompile(secret).Match(logb) {
			t.Errorf("%q in totemd.log", secret)
		}
	}
	if len(logb) == 0 {
		t.Error("totemd.log is empty: the log check above is vacuous")
	}
}
