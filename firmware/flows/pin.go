package flows

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/outbox"
)

// What Cambio PIN (pinchange.go) and Sblocco PIN (unblock.go) share: the
// new PIN typed twice and handed to the chip with the citizen's proof (the
// old PIN, the PUK), the chip's answer, and the audit event that records
// that answer and nothing typed.

// pinOnChip asks for the new PIN twice and hands it to the chip, with
// code (the old PIN for a change, the PUK for an unblock), through op.
// Both are wiped before it returns, whatever happens: they go from the
// keypad to the chip only. The chip's answer is sorted by chipAnswer; an
// error is the citizen leaving or a card fault (shown).
func pinOnChip(ctx context.Context, dk *Desk, code []byte, op func(ctx context.Context, code, newPIN []byte) error) (result string, tries int, err error) {
	defer wipe(code)
	nw, err := newPIN(ctx, dk)
	if err != nil {
		return "", 0, err
	}
	defer wipe(nw)
	err = op(ctx, code, nw)
	wipe(code)
	wipe(nw)
	return chipAnswer(dk, err)
}

// chipAnswer sorts what the chip answered to a PIN or a PUK into the
// result of a cms.PINEvent: cms.PINOK; cms.PINWrong, with the tries the
// chip says are left (-1: it does not say); cms.PINBlocked. Any other
// error is a card fault, shown and mapped by CardError.
func chipAnswer(dk *Desk, err error) (result string, tries int, _ error) {
	var pe *hal.PINError
	switch {
	case err == nil:
		return cms.PINOK, 0, nil
	case errors.As(err, &pe):
		return cms.PINWrong, pe.TriesLeft, nil
	case errors.Is(err, hal.ErrPINBlocked):
		return cms.PINBlocked, 0, nil
	}
	return "", 0, dk.CardError(err)
}

// pinEvent is the payload of the audit event of a PIN operation on info's
// card: the chip's answer (a cms.PIN* result), never a code.
func pinEvent(info hal.CardInfo, result string) ([]byte, error) {
	return json.Marshal(cms.PINEvent{Card: CardRef(info), Channel: cms.SelfService, Result: result})
}

// pinReceipt finishes the PIN operation of kind the chip accepted, whose
// event was submitted as e: its receipt, provisional until the hub
// answers.
func pinReceipt(ctx context.Context, dk *Desk, e outbox.Entry, kind string, info hal.CardInfo) error {
	return dk.finishKind(ctx, e, kind, info, dk.t.Frame().PINEvent(kind))
}

// newPIN asks for a new PIN twice until both agree (# after a mismatch
// tries again). The caller wipes the returned PIN.
func newPIN(ctx context.Context, dk *Desk) ([]byte, error) {
	for {
		nw, err := dk.enter(ctx, "pin_new", 5, 8, true)
		if err != nil {
			return nil, err
		}
		again, err := dk.enter(ctx, "pin_again", 5, 8, true)
		if err != nil {
			wipe(nw)
			return nil, err
		}
		same := subtle.ConstantTimeCompare(again, nw) == 1
		wipe(again)
		if same {
			return nw, nil
		}
		wipe(nw)
		dk.show("pin_mismatch")
		k, err := dk.key(ctx, "pin_mismatch", func() { dk.show("pin_mismatch") })
		if err != nil {
			return nil, err
		}
		if k != hal.KeyOK {
			dk.show("cancelled")
			return nil, ErrCancel
		}
	}
}
