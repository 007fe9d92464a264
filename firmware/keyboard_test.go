package firmware_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/haltest"
	"github.com/aslcns/totem/hal/sim"
)

// typeOn types s on kb as a keyboard sends it: characters, and the
// keypad's keys for Enter (#), Backspace (*), Esc (D); '<' is ←.
func typeOn(kb *haltest.Keypad, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '#', '*':
			kb.Press(hal.Key(c))
		case '<':
			kb.Press(hal.KeyLeft)
		default:
			kb.Press(hal.Char(c))
		}
	}
}

// drained waits until the firmware has taken every key typed on kb.
func drained(t *testing.T, kb *haltest.Keypad) {
	t.Helper()
	haltest.Until(t, context.Background(), "the keyboard's keys read", func() bool { return kb.Pending() == 0 })
}

// In assisted mode the operator types the delegate's name and CF on a USB
// keyboard beside the keypad, and corrects a wrong CF letter where it is
// (←, Backspace, a keypad digit) instead of typing the CF again; the hint
// row shows what 0 and 1 type and the letter being cycled. Outside an
// operator session the keyboard counts for nothing.
func TestKeyboardAssisted(t *testing.T) {
	ctx := ctxT(t)
	kb := &haltest.Keypad{}
	lb, log := newLog()
	d := startDeskOpts(t, localOpts{online: func() bool { return true }, keyboard: kb, log: log})
	d.wait(ctx, "Inserire la tessera")
	typeOn(kb, "#") // Enter: the menu without a card, were it counted
	drained(t, kb)
	d.login(ctx)
	d.reader.Insert(sim.IssuedCard())
	d.wait(ctx, "1 Attivazione")
	typeOn(kb, "1")
	d.run(ctx, []step{{"informativa", "1"}, {"1 Diretta", "3"}}) // 3: tutore
	d.wait(ctx, "Cognome nome deleg.")
	if s := d.panel.Text(); !strings.Contains(s, "0=spazio 1=' -") {
		t.Errorf("no multi-tap hint:\n%s", s)
	}
	typeOn(kb, "d'angelo anna7")
	d.wait(ctx, "D'ANGELO ANNA_") // upper case; a digit is no part of a name
	typeOn(kb, "#")
	d.wait(ctx, "Cod. fiscale deleg.")
	typeOn(kb, "RSSMRA80A01H5O1U#") // O for 0: not a valid CF
	d.wait(ctx, "Codice fiscale")
	d.wait(ctx, "non valido")
	d.panel.Press(hal.KeyOK)
	d.wait(ctx, "RSSMRA80A01H5O1U_") // kept, to be corrected
	typeOn(kb, "<<*")
	d.wait(ctx, "RSSMRA80A01H5_1U")
	d.panel.Press('0')
	d.wait(ctx, "0: [0] C=avanti") // the key being cycled and its letter
	d.wait(ctx, "RSSMRA80A01H501U")
	typeOn(kb, "#")
	d.wait(ctx, "Documento:")
	d.panel.Press(hal.KeyCancel)
	d.wait(ctx, "annullata")
	if strings.Contains(lb.String(), "cardless session started") {
		t.Error("a key typed on the keyboard in self-service opened the menu")
	}
}
