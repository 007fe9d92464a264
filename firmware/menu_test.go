package firmware_test

import (
	"testing"
	"time"

	"github.com/aslcns/totem/hal"
)

// The menu pages turn with # (from the last back to the first) and *;
// every function key works from any page; * on the first page ends the
// session as D does.
func TestMenuPages(t *testing.T) {
	ctx := ctxT(t)
	l := startLocal(t, time.Minute)
	l.insert(ctx, testCard())
	for _, want := range []string{"5 Ristampa PIN/PUK", "8 Moduli da stampare", "0 Sospensione,", "1 Consensi FSE"} {
		l.panel.Press(hal.KeyOK)
		l.wait(ctx, want)
	}
	l.panel.Press(hal.KeyOK, hal.KeyOK)
	l.wait(ctx, "9 Guida")
	l.panel.Press(hal.KeyBack)
	l.wait(ctx, "6 Sblocco PIN (PUK)")
	l.panel.Press(hal.KeyBack)
	l.wait(ctx, "3 Cambio PIN")
	l.panel.Press('4') // a key of page 2 from page 1
	l.wait(ctx, "PIN:")
	l.panel.Press(hal.KeyBack)
	l.wait(ctx, "1 Consensi FSE")
	l.panel.Press(hal.KeyOK, '1') // a key of page 1 from page 2
	l.wait(ctx, "PIN:")
	l.panel.Press(hal.KeyBack)
	l.wait(ctx, "1 Consensi FSE")
	l.panel.Press(hal.KeyBack)
	l.wait(ctx, "Operazione annullata")
	if q, _ := l.box.Stats(); q.LastSeq != 0 {
		t.Fatalf("paging the menu queued something: %+v", q)
	}
}
