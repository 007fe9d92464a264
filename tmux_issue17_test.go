package totem_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
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
	needTools(t, "tmux")
	d := newDemo(t, "reconnect_min = \"100ms\"\nreconnect_max = \"500ms\"\n"+
		"[sync]\nresult_wait = \"1s\"\n[session]\nidle_timeout = \"2m\"\n")
	dir := d.dir
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	stopHub := d.startHub(t, ctx)
	defer func() { stopHub() }()

	p := startPanel(t, ctx, dir, d.bin+"/totemd --config "+dir+"/totemd.toml --panel terminal")
	waitFor, keys := p.waitFor, p.keys
	typePIN := func(pin string) {
		t.Helper()
		p.typeText(pin)
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
	p.typeText("20261206042")
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
	p.consents("2")
	waitFor("Accolta. Protocollo:")
	keys("Enter") // another one: no PIN asked this time
	waitFor("1 Consensi FSE")
	keys("1")
	waitFor("Informativa FSE")
	keys("Enter")
	waitFor("Consenso 1 di 2")
	if strings.Contains(p.screen(), "PIN") {
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
	p.consents("1")
	waitFor("arriverà appena")
	waitFor("#=Altra operazione")
	// The hub is back while the citizen is still there: the definitive
	// outcome replaces the provisional one, and its receipt is printed.
	stopHub = d.startHub(t, ctx)
	s = waitFor("Esito arrivato:")
	proto := protocolRE.FindStringSubmatch(s)
	if proto == nil {
		s = waitFor("Esito arrivato:")
		if proto = protocolRE.FindStringSubmatch(s); proto == nil {
			t.Fatalf("no protocol number on screen:\n%s", s)
		}
	}
	keys("Escape") // D: done
	waitFor("Ritirare la tessera")
	keys("r")
	waitFor("Inserire la tessera")
	keys("q")
	p.waitExit()
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
	noSecrets(t, dir+"/totemd/totemd.log", append(demoSecrets, `\b99999\b`)...)
}
