package flows

import (
	"context"

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
	result, tries, err := pinOnChip(ctx, dk, old, pc.ChangePIN)
	if err != nil {
		return err
	}
	switch result {
	case cms.PINWrong:
		// The chip took the old PIN a moment ago: only a card swapped
		// or changed meanwhile gets here; # starts over, as after a
		// wrong old PIN.
		dk.log.Info("pin change refused", "tries_left", tries)
		if err := dk.wrongPIN(ctx, tries); err != nil {
			return err
		}
		return ChangePIN(ctx, dk, card, info)
	case cms.PINBlocked:
		dk.show("pin_blocked")
	}
	payload, err := pinEvent(info, result)
	if err != nil {
		return err
	}
	e, err := dk.submit(ctx, cms.KindPINChange, payload)
	if err != nil || result != cms.PINOK {
		return err
	}
	return pinReceipt(ctx, dk, e, cms.KindPINChange, info)
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
		if err == nil {
			return old, nil
		}
		wipe(old)
		result, tries, err := chipAnswer(dk, err)
		switch {
		case err != nil:
			return nil, err
		case result == cms.PINBlocked:
			dk.log.Info("pin blocked")
			dk.show("pin_blocked")
			return nil, ErrCancel
		}
		dk.log.Info("pin refused", "tries_left", tries)
		if err := dk.wrongPIN(ctx, tries); err != nil {
			return nil, err
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
