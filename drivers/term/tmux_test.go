package term

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTmux runs internal/demo in a real terminal, a detached tmux session
// with its own server, types on it with send-keys and reads it with
// capture-pane.
func TestTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not on PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	dir := t.TempDir()
	demo := filepath.Join(dir, "demo")
	build := exec.CommandContext(ctx, "go", "build", "-o", demo, "github.com/aslcns/totem/drivers/term/internal/demo")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	env := []string{"TMUX_TMPDIR=" + dir} // the socket goes away with dir
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "TMUX") {
			env = append(env, e)
		}
	}
	if !strings.Contains(strings.ToUpper(os.Getenv("LC_ALL")+os.Getenv("LC_CTYPE")+os.Getenv("LANG")), "UTF-8") {
		env = append(env, "LC_ALL=C.UTF-8")
	}
	socket := fmt.Sprintf("totem-term-%d-%d", os.Getpid(), time.Now().UnixNano())
	tmux := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "tmux", append([]string{"-L", socket, "-f", "/dev/null"}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := tmux("new-session", "-d", "-s", "demo", "-x", "80", "-y", "24", "'"+demo+"'"); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	defer tmux("kill-server")

	// waitFor polls the pane until it shows every one of want.
	waitFor := func(want ...string) {
		t.Helper()
		var screen string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			out, err := tmux("capture-pane", "-p", "-t", "demo")
			if err != nil {
				t.Fatalf("tmux capture-pane: %v\n%s", err, out)
			}
			screen = out
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(screen, w)
			}
			if ok {
				return
			}
		}
		t.Fatalf("screen does not show %q:\n%s", want, screen)
	}
	send := func(keys ...string) {
		t.Helper()
		if out, err := tmux(append([]string{"send-keys", "-t", "demo"}, keys...)...); err != nil {
			t.Fatalf("tmux send-keys: %v\n%s", err, out)
		}
	}

	waitFor("Totem demo", "┌"+strings.Repeat("─", 20)+"┐", "│Premi un tasto      │", "└"+strings.Repeat("─", 20)+"┘", "i=inserisci")
	for i, step := range []struct{ send, key string }{
		{"7", "7"},
		{"Enter", "#"},
		{"BSpace", "*"},
		{"Escape", "D"},
		{"b", "B"},
		{"#", "#"},
	} {
		send(step.send)
		waitFor(fmt.Sprintf("│Ultimo tasto: %s     │", step.key), fmt.Sprintf("│Tasti: %-13d│", i+1))
	}
	// An arrow gives no key: the next key pressed is the 7th.
	send("Up")
	send("Left")
	send("0")
	waitFor("│Ultimo tasto: 0     │", "│Tasti: 7            │")

	send("i")
	waitFor("Carta inserita")
	send("r")
	waitFor("Carta rimossa")

	send("q")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := tmux("has-session", "-t", "demo"); err != nil {
			break // the demo quit and its session with it
		}
		if time.Now().After(deadline) {
			out, _ := tmux("capture-pane", "-p", "-t", "demo")
			t.Fatalf("demo did not quit on 'q':\n%s", out)
		}
	}
}
