package flows

import (
	"context"
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
		payload, err := pinEvent(info, result)
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
			return pinReceipt(ctx, dk, e, cms.KindPINUnblock, info)
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
	result, tries, err = pinOnChip(ctx, dk, puk, pc.UnblockPIN)
	switch {
	case err != nil:
	case result == cms.PINOK:
		dk.log.Info("pin unblocked")
	case result == cms.PINWrong:
		dk.log.Info("puk refused", "tries_left", tries)
		tries = max(tries, -1)
	case result == cms.PINBlocked:
		dk.log.Info("puk blocked")
	}
	return result, tries, err
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
