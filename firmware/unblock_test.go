package firmware_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/sim"
)

// chipReader is the simulated reader whose cards answer UnblockPIN with
// err when it is set, as a chip that counts PUK tries does.
type chipReader struct {
	*sim.Reader
	err error
}

func (r *chipReader) Connect(ctx context.Context) (hal.Card, error) {
	c, err := r.Reader.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &chipCard{Card: c, pc: c.(hal.PINChanger), err: r.err}, nil
}

type chipCard struct {
	hal.Card
	pc  hal.PINChanger
	err error
}

func (c *chipCard) ChangePIN(ctx context.Context, o, n []byte) error {
	return c.pc.ChangePIN(ctx, o, n)
}

func (c *chipCard) UnblockPIN(ctx context.Context, puk, n []byte) error {
	if c.err != nil {
		return c.err
	}
	return c.pc.UnblockPIN(ctx, puk, n)
}

// Sblocco PIN con PUK: the PUK and the new PIN go to the chip only; the
// chip's answer is audited without any code; a receipt only for a done
// unblock, provisional while the hub is unreachable (queueable).
func TestUnblockPIN(t *testing.T) {
	const puk, newPIN = "73924061", "86420975" // distinctive: not in the serial
	for _, tc := range []struct {
		name   string
		chip   error  // the chip's answer; nil: the simulated card decides
		puk    string // typed
		screen []string
		result string // audited; "" none
		pin    string // the card's PIN after
	}{
		{"unblocked", nil, puk, []string{"Salvata: l'esito"}, cms.PINOK, newPIN},
		{"wrong PUK, tries unknown", nil, "40617392", []string{"PUK errato", "#=Riprova"}, cms.PINWrong, testPIN},
		{"wrong PUK, 2 tries left", &hal.PINError{TriesLeft: 2}, puk, []string{"PUK errato", "Restano 2 tentativi"}, cms.PINWrong, testPIN},
		{"PUK blocked", hal.ErrPINBlocked, puk, []string{"PUK bloccato"}, cms.PINBlocked, testPIN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			lb, log := newLog()
			l := startLocalOpts(t, localOpts{log: log, online: offline,
				reader: func(r *sim.Reader) hal.CardReader { return &chipReader{Reader: r, err: tc.chip} }})
			card := testCard()
			card.Tries, card.PUK = 0, puk // the PIN is blocked
			l.reader.Insert(card)
			l.run(ctx, []step{{"1 Consensi FSE", "#"}, {"6 Sblocco PIN (PUK)", "6"}, {"Sblocco PIN: PUK", tc.puk},
				{"PUK: ********", "#"}, {"Nuovo PIN", newPIN + "#"}, {"Ripetere", newPIN + "#"}})
			for _, s := range tc.screen {
				l.wait(ctx, s)
			}
			if card.PIN != tc.pin {
				t.Fatalf("the chip's PIN is %q, want %q", card.PIN, tc.pin)
			}
			pend, _ := l.box.Pending(0, 10)
			if len(pend) != 1 || pend[0].Kind != cms.KindPINUnblock {
				t.Fatalf("pending %+v", pend)
			}
			var ev cms.PINEvent
			if err := json.Unmarshal(pend[0].Payload, &ev); err != nil || ev.Result != tc.result ||
				ev.Channel != cms.SelfService || ev.Card.Serial != card.Info.Serial {
				t.Fatalf("audit event %+v, %v", ev, err)
			}
			if rs := cms.CheckNoPIN(pend[0].Payload); rs != nil {
				t.Fatalf("the hub would refuse the audit event: %v", rs)
			}
			if tc.result == cms.PINOK {
				mustContain(t, "receipt", flat(l.receipts(ctx, 1)[0]), "Sblocco PIN con PUK", "sbloccato con il PUK", "RICEVUTA PROVVISORIA")
			} else {
				l.noReceiptQueued("for a refused unblock") // the refusal waits for the citizen
				if n := len(l.printer.Receipts()); n != 0 {
					t.Fatalf("%d receipts for a refused unblock", n)
				}
			}
			for _, secret := range []string{tc.puk, newPIN, testPIN} {
				if strings.Contains(string(pend[0].Payload), secret) || strings.Contains(lb.String(), secret) {
					t.Errorf("%s left the chip path", secret)
				}
				for _, rc := range l.printer.Receipts() {
					if strings.Contains(rc, secret) {
						t.Errorf("%s on a receipt", secret)
					}
				}
			}
			if tc.result == cms.PINWrong { // # tries again from the PUK
				l.panel.Press(hal.KeyOK)
				l.run(ctx, []step{{"Sblocco PIN: PUK", "D"}})
				l.wait(ctx, "Operazione annullata")
			}
		})
	}
}
