package totem_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemoInTmux does what a person does with the demo: totemd on its
// terminal panel in a real terminal (tmux), the card inserted with 'i', the
// consent flow typed on the keyboard, the screen read back.
func TestDemoInTmux(t *testing.T) {
	needTools(t, "tmux")
	d := newDemo(t, "reconnect_min = \"100ms\"\nreconnect_max = \"1s\"\n")
	dir := d.dir
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	defer d.startHub(t, ctx)()

	p := startPanel(t, ctx, dir, d.bin+"/totemd --config "+dir+"/totemd.toml --panel terminal")
	p.waitFor("Inserire la tessera")
	p.waitFor("Hub: in linea")
	p.keys("i")
	p.waitFor("1 Consensi FSE")
	p.keys("1")
	p.waitFor("PIN:")
	p.keys("1", "2", "3", "4", "5")
	p.waitFor("PIN: *****")
	p.keys("Enter")
	p.consents("2")
	s := p.waitFor("Accolta. Protocollo:")
	proto := protocolRE.FindStringSubmatch(s)
	if proto == nil {
		t.Fatalf("no protocol number on screen:\n%s", s)
	}
	p.keys("r")
	p.waitFor("Inserire la tessera")
	if strings.Contains(p.screen(), proto[1]) {
		t.Fatal("protocol number left on screen after the card left")
	}
	p.keys("q")
	p.waitExit()
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
	if logb := noSecrets(t, dir+"/totemd/totemd.log", demoSecrets...); len(logb) == 0 {
		t.Error("totemd.log is empty: the log check above is vacuous")
	}
}
