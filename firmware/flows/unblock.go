package flows

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
)

// UnblockPIN is Sblocco PIN con PUK, done on the chip: the PUK, the new
// PIN twice. PUK and PIN go from the keypad to the chip only; what the
// chip answered (ok, wrong PUK, PUK blocked) is queued as an audit event
// without any code, and a successful unblock gets a receipt, provisional
// until the hub answers.
func UnblockPIN(ctx context.Context, dk *Desk, card hal.Card, info hal.CardInfo) error {
	pc, err := pinChanger(ctx, dk, card)
	if err != nil {
		return err
	}
	for {
		result, tries, err := unblockOnce(ctx, dk, pc)
		if err != nil {
			return err
		}
		payload, err := json.Marshal(cms.PINEvent{Card: CardRef(info), Channel: cms.SelfService, Result: result})
		if err != nil {
			return err
		}
		now := dk.now()
		switch result {
		case cms.PINOK:
			dk.show("saving")
			e, err := dk.submit(ctx, cms.KindPINUnblock, payload)
			if err != nil {
				return err
			}
			return dk.finishKind(ctx, e, cms.KindPINUnblock, info, dk.t.Frame().PINEvent(cms.KindPINUnblock))
		case cms.PINBlocked:
			if err := dk.audit(cms.KindPINUnblock, payload, now); err != nil {
				return err
			}
			if err := dk.Pages(ctx, hal.Wrap(dk.lang.Text("puk_blocked"), 20)); !errors.Is(err, ErrBack) {
				return err
			}
			dk.show("cancelled")
			return ErrCancel
		}
		// A wrong PUK: audited, then the citizen may try again (the chip
		// bounds the tries) or leave.
		if err := dk.audit(cms.KindPINUnblock, payload, now); err != nil {
			return err
		}
		if err := retry(ctx, dk, tries); err != nil {
			return err
		}
	}
}

// unblockOnce asks the PUK and a new PIN and hands them to the chip. It
// returns the chip's answer as a cms.PIN* result, with the PUK tries left
// after a wrong one (-1: the chip does not say); the digits are wiped
// before it returns.
func unblockOnce(ctx context.Context, dk *Desk, pc hal.PINChanger) (result string, tries int, err error) {
	puk, err := dk.enter(ctx, "puk", 5, 8, true)
	if err != nil {
		return "", 0, err
	}
	defer wipe(puk)
	nw, err := newPIN(ctx, dk)
	if err != nil {
		return "", 0, err
	}
	defer wipe(nw)
	err = pc.UnblockPIN(ctx, puk, nw)
	wipe(puk)
	wipe(nw)
	var pe *hal.PINError
	switch {
	case err == nil:
		dk.log.Info("pin unblocked")
		return cms.PINOK, 0, nil
	case errors.As(err, &pe):
		dk.log.Info("puk refused", "tries_left", pe.TriesLeft)
		return cms.PINWrong, max(pe.TriesLeft, -1), nil
	case errors.Is(err, hal.ErrPINBlocked):
		dk.log.Info("puk blocked")
		return cms.PINBlocked, 0, nil
	}
	return "", 0, dk.CardError(err)
}

// retry tells the citizen the PUK was wrong (with the tries left when the
// chip says): # tries again, * or D leave.
func retry(ctx context.Context, dk *Desk, tries int) error {
	screen, args := "puk_wrong_unknown", []any(nil)
	if tries >= 0 {
		screen, args = "puk_wrong", []any{tries}
	}
	k, err := dk.Ask(ctx, screen, args...)
	if err != nil {
		return err
	}
	switch k {
	case hal.KeyOK:
		return nil
	case hal.KeyBack:
		return ErrBack
	}
	dk.show("cancelled")
	return ErrCancel
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
