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

// TestDemoCitizenInTmux plays issue 17's citizen defects on the demo as a
// person would — hub and totemd built and started as deploy/demo.sh does
// (on free ports, without the script: its ports are fixed), totemd on its
// terminal panel in tmux, keys typed, the screen read back:
//
//   - 1: Cambio PIN with a wrong old PIN says so at once and # retries;
//   - 4: Richiesta lettore shows the number and # sends it;
//   - 8: after an outcome # offers another operation, and the PIN
//     verified once is not asked again;
//   - 5: an online-only operation refused offline goes back to the menu,
//     where a consent still works (provisional), and the definitive
//     outcome, arrived when the hub is back, is shown and printed while
//     the citizen is still there.
func TestDemoCitizenInTmux(t *testing.T) {
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
	write(t, dir+"/totemd.toml", fmt.Sprintf("state_dir = %q\n[broker]\nurl = %q\ncredentials_file = %q\nreconnect_min = \"100ms\"\nreconnect_max = \"500ms\"\n"+
		"[sync]\nresult_wait = \"1s\"\n[session]\nidle_timeout = \"2m\"\n",
		dir+"/totemd", "mqtt://"+addr, dir+"/creds/demo-01.json"))

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var hub *exec.Cmd
	startHub := func() {
		t.Helper()
		hub = exec.CommandContext(ctx, bin+"/totemhub", "--config", dir+"/hub.toml")
		if err := hub.Start(); err != nil {
			t.Fatal(err)
		}
	}
	stopHub := func() {
		if hub != nil {
			hub.Process.Signal(syscall.SIGTERM)
			hub.Wait()
			hub = nil
		}
	}
	startHub()
	defer stopHub()

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
	typePIN := func(pin string) {
		t.Helper()
		for _, c := range pin {
			keys(string(c))
		}
		waitFor("PIN: " + strings.Repeat("*", len(pin)))
		keys("Enter")
	}

	waitFor("Inserire la tessera")
	waitFor("Hub: in linea")
	keys("i")
	waitFor("1 Consensi FSE")

	// 1: Cambio PIN, a wrong old PIN: said at once, # retries.
	keys("3")
	waitFor("Digitare il PIN")
	typePIN("99999")
	waitFor("Restano 2 tentativi")
	keys("Enter") // #=Riprova
	waitFor("Digitare il PIN")
	typePIN("12345") // the old PIN, right this time: the new one is asked
	waitFor("Nuovo PIN")
	keys("Escape")
	waitFor("Operazione annullata")
	keys("r")
	waitFor("Inserire la tessera")
	keys("i")
	waitFor("1 Consensi FSE")

	// 4: Richiesta lettore, the number shown and # to send it.
	keys("2")
	waitFor("n. ricevuta")
	for _, c := range "20261206042" {
		keys(string(c))
	}
	waitFor("20261206042")
	keys("Enter")
	s := waitFor("#=Conferma D=Annulla")
	if !strings.Contains(s, "20261206042") {
		t.Fatalf("the summary lacks the number:\n%s", s)
	}
	keys("Enter")
	waitFor("Accolta. Protocollo:")

	// 8: another operation, same card: the menu, the PIN once.
	waitFor("#=Altra operazione")
	keys("Enter")
	waitFor("1 Consensi FSE")
	keys("1")
	waitFor("Digitare il PIN")
	typePIN("12345")
	waitFor("Informativa FSE")
	keys("Enter")
	waitFor("Consenso 1 di 2")
	keys("1")
	waitFor("Consenso 2 di 2")
	keys("2")
	waitFor("Riepilogo")
	keys("Enter")
	waitFor("Accolta. Protocollo:")
	keys("Enter") // another one: no PIN asked this time
	waitFor("1 Consensi FSE")
	keys("1")
	waitFor("Informativa FSE")
	keys("Enter")
	waitFor("Consenso 1 di 2")
	if strings.Contains(screen(), "PIN") {
		t.Fatal("the PIN was asked again in the same session")
	}
	keys("Escape")
	waitFor("Operazione annullata")
	keys("r")
	waitFor("Inserire la tessera")

	// 5: the hub goes away. An online-only operation is refused and any
	// key goes back to the menu, where a consent still works.
	stopHub()
	waitFor("Hub: fuori linea")
	keys("i")
	waitFor("1 Consensi FSE")
	keys("Enter") // the menu's next page
	waitFor("4 Storico")
	keys("4")
	waitFor("Servizio non")
	keys("Enter")
	waitFor("1 Consensi FSE")
	keys("1")
	waitFor("Digitare il PIN")
	typePIN("12345")
	waitFor("Informativa FSE")
	keys("Enter")
	waitFor("Consenso 1 di 2")
	keys("1")
	waitFor("Consenso 2 di 2")
	keys("1")
	waitFor("Riepilogo")
	keys("Enter")
	waitFor("arriverà appena")
	waitFor("#=Altra operazione")
	// The hub is back while the citizen is still there: the definitive
	// outcome replaces the provisional one, and its receipt is printed.
	startHub()
	s = waitFor("Esito arrivato:")
	proto := regexp.MustCompile(`│(\d{15}) *│`).FindStringSubmatch(s)
	if proto == nil {
		s = waitFor("Esito arrivato:")
		if proto = regexp.MustCompile(`│(\d{15}) *│`).FindStringSubmatch(s); proto == nil {
			t.Fatalf("no protocol number on screen:\n%s", s)
		}
	}
	keys("Escape") // D: done
	waitFor("Ritirare la tessera")
	keys("r")
	waitFor("Inserire la tessera")
	keys("q")
	for ctx.Err() == nil && exec.Command("tmux", "-S", sock, "has-session").Run() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	var found bool
	receipts, _ := filepath.Glob(dir + "/totemd/receipts/*.txt")
	for _, r := range receipts {
		b, _ := os.ReadFile(r)
		if strings.Contains(string(b), "Protocollo: "+proto[1]) && strings.Contains(string(b), "Consensi FSE") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no receipt with the definitive protocol %s among %v", proto[1], receipts)
	}
	logb, _ := os.ReadFile(dir + "/totemd/totemd.log")
	for _, secret := range []string{"RSSMRA80A01H501U", "ROSSI", "MARIO", `\b12345\b`, `\b99999\b`} {
		if regexp.MustCompile(secret).Match(logb) {
			t.Errorf("%q in totemd.log", secret)
		}
	}
}
