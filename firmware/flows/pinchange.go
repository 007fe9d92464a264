package flows

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
)

// ChangePIN is Cambio PIN, done on the chip: the old PIN, verified on the
// chip before the new one is asked for (a wrong one is told at once, not
// after the new PIN was typed twice), then the new one twice. Only an
// audit event, with no PIN data, is queued.
func ChangePIN(ctx context.Context, dk *Desk, card hal.Card, info hal.CardInfo) error {
	pc, err := pinChanger(ctx, dk, card)
	if err != nil {
		return err
	}
	dk.verified = false // a wrong old PIN resets the chip's verification
	old, err := dk.oldPIN(ctx, card)
	if err != nil {
		return err
	}
	defer wipe(old)
	nw, err := newPIN(ctx, dk)
	if err != nil {
		return err
	}
	defer wipe(nw)
	err = pc.ChangePIN(ctx, old, nw)
	wipe(old)
	wipe(nw)
	result := cms.PINOK
	var pe *hal.PINError
	switch {
	case err == nil:
	case errors.As(err, &pe):
		// The chip took the old PIN a moment ago: only a card swapped
		// or changed meanwhile gets here; # starts over, as after a
		// wrong old PIN.
		dk.log.Info("pin change refused", "tries_left", pe.TriesLeft)
		if err := dk.wrongPIN(ctx, pe.TriesLeft); err != nil {
			return err
		}
		return ChangePIN(ctx, dk, card, info)
	case errors.Is(err, hal.ErrPINBlocked):
		dk.show("pin_blocked")
		result = cms.PINBlocked
	default:
		return dk.CardError(err)
	}
	payload, err := json.Marshal(cms.PINEvent{Card: CardRef(info), Channel: cms.SelfService, Result: result})
	if err != nil {
		return err
	}
	e, err := dk.submit(ctx, cms.KindPINChange, payload)
	if err != nil || result != cms.PINOK {
		return err
	}
	return dk.finishKind(ctx, e, cms.KindPINChange, info, dk.t.Frame().PINEvent(cms.KindPINChange))
}

// oldPIN reads the current PIN and verifies it on the chip, asking again
// after a wrong one (# retries, * or D go back to the menu). The verified
// PIN is returned for the change; the caller wipes it.
func (dk *Desk) oldPIN(ctx context.Context, card hal.Card) ([]byte, error) {
	for {
		old, err := dk.enter(ctx, "pin", 5, 8, true)
		if err != nil {
			return nil, err
		}
		err = card.VerifyPIN(ctx, old)
		var pe *hal.PINError
		switch {
		case err == nil:
			return old, nil
		case errors.As(err, &pe):
			wipe(old)
			dk.log.Info("pin refused", "tries_left", pe.TriesLeft)
			if err := dk.wrongPIN(ctx, pe.TriesLeft); err != nil {
				return nil, err
			}
		case errors.Is(err, hal.ErrPINBlocked):
			wipe(old)
			dk.log.Info("pin blocked")
			dk.show("pin_blocked")
			return nil, ErrCancel
		default:
			wipe(old)
			return nil, dk.CardError(err)
		}
	}
}

// wrongPIN says the PIN was wrong and how many tries are left (the last
// one announced before it is used): nil for # (try again), ErrBack for *
// and D, which leave Cambio PIN for the menu with the session open.
func (dk *Desk) wrongPIN(ctx context.Context, triesLeft int) error {
	screen := "pin_wrong"
	if triesLeft == 1 {
		screen = "pin_last"
	}
	k, err := dk.Ask(ctx, screen, triesLeft)
	if err != nil {
		return err
	}
	if k == hal.KeyOK {
		return nil
	}
	return ErrBack
}
