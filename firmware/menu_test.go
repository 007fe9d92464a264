package firmware_test

import (
	"testing"

	"github.com/aslcns/totem/hal"
)

// The menu pages turn with # (from the last back to the first) and *;
// every function key works from any page; * on the first page ends the
// session as D does.
func TestMenuPages(t *testing.T) {
	ctx, l := startWithCard(t)
	l.wait(ctx, "1 Consensi FSE")
	for _, want := range []string{"5 Ristampa PIN/PUK", "8 Moduli da stampare", "0 Sospensione,", "1 Consensi FSE"} {
		l.panel.Press(hal.KeyOK)
		l.wait(ctx, want)
	}
	l.panel.Press(hal.KeyOK, hal.KeyOK)
	l.run(ctx, []step{{"9 Guida", "*"}, {"6 Sblocco PIN (PUK)", "*"},
		{"3 Cambio PIN", "4"}, // a key of page 2 from page 1
		{"PIN:", "*"},
		{"1 Consensi FSE", "#1"}, // a key of page 1 from page 2
		{"PIN:", "*"}, {"1 Consensi FSE", "*"}})
	l.wait(ctx, "Operazione annullata")
	if q, _ := l.box.Stats(); q.LastSeq != 0 {
		t.Fatalf("paging the menu queued something: %+v", q)
	}
}
