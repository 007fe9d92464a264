package firmware

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
)

// unblockPIN is Sblocco PIN con PUK, done on the chip: the PUK, the new
// PIN twice. PUK and PIN go from the keypad to the chip only; what the
// chip answered (ok, wrong PUK, PUK blocked) is queued as an audit event
// without any code, and a successful unblock gets a receipt, provisional
// until the hub answers.
func (a *App) unblockPIN(ctx context.Context, card hal.Card, info hal.CardInfo) error {
	pc, ok := card.(hal.PINChanger)
	if !ok {
		return a.notAvailable(ctx)
	}
	for {
		result, tries, err := a.unblockOnce(ctx, pc)
		if err != nil {
			return err
		}
		payload, err := json.Marshal(cms.PINEvent{Card: cardRef(info), Channel: cms.SelfService, Result: result})
		if err != nil {
			return err
		}
		now := time.Now()
		switch result {
		case cms.PINOK:
			a.show("saving")
			e, err := a.submit(ctx, cms.KindPINUnblock, payload)
			if err != nil {
				return err
			}
			return a.finishKind(ctx, e, cms.KindPINUnblock, info, pinEventLines(cms.KindPINUnblock))
		case cms.PINBlocked:
			if err := a.audit(cms.KindPINUnblock, payload, now); err != nil {
				return err
			}
			if err := a.pages(ctx, hal.Wrap(a.o.Lang.Text("puk_blocked"), 20)); !errors.Is(err, errBack) {
				return err
			}
			a.show("cancelled")
			return errCancel
		}
		// A wrong PUK: audited, then the citizen may try again (the chip
		// bounds the tries) or leave.
		if err := a.audit(cms.KindPINUnblock, payload, now); err != nil {
			return err
		}
		if err := a.retry(ctx, tries); err != nil {
			return err
		}
	}
}

// unblockOnce asks the PUK and a new PIN and hands them to the chip. It
// returns the chip's answer as a cms.PIN* result, with the PUK tries left
// after a wrong one (-1: the chip does not say); the digits are wiped
// before it returns.
func (a *App) unblockOnce(ctx context.Context, pc hal.PINChanger) (result string, tries int, err error) {
	puk, err := a.enter(ctx, "puk", 5, 8, true)
	if err != nil {
		return "", 0, err
	}
	defer wipe(puk)
	nw, err := a.newPIN(ctx)
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
		a.log.Info("pin unblocked")
		return cms.PINOK, 0, nil
	case errors.As(err, &pe):
		a.log.Info("puk refused", "tries_left", pe.TriesLeft)
		return cms.PINWrong, max(pe.TriesLeft, -1), nil
	case errors.Is(err, hal.ErrPINBlocked):
		a.log.Info("puk blocked")
		return cms.PINBlocked, 0, nil
	}
	return "", 0, a.cardError(err)
}

// retry tells the citizen the PUK was wrong (with the tries left when the
// chip says): # tries again, * or D leave.
func (a *App) retry(ctx context.Context, tries int) error {
	screen, args := "puk_wrong_unknown", []any(nil)
	if tries >= 0 {
		screen, args = "puk_wrong", []any{tries}
	}
	k, err := a.ask(ctx, screen, args...)
	if err != nil {
		return err
	}
	switch k {
	case hal.KeyOK:
		return nil
	case hal.KeyBack:
		return errBack
	}
	a.show("cancelled")
	return errCancel
}

// audit queues an audit event nobody waits for.
func (a *App) audit(kind string, payload []byte, now time.Time) error {
	_, _, done, err := a.enqueue(kind, payload, now, now.Add(a.o.QueuedTTL))
	if err != nil {
		return err
	}
	done()
	return nil
}

// newPIN asks for a new PIN twice until both agree (# after a mismatch
// tries again). The caller wipes the returned PIN.
func (a *App) newPIN(ctx context.Context) ([]byte, error) {
	for {
		nw, err := a.enter(ctx, "pin_new", 5, 8, true)
		if err != nil {
			return nil, err
		}
		again, err := a.enter(ctx, "pin_again", 5, 8, true)
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
		a.show("pin_mismatch")
		k, err := a.key(ctx, "pin_mismatch", func() { a.show("pin_mismatch") })
		if err != nil {
			return nil, err
		}
		if k != hal.KeyOK {
			a.show("cancelled")
			return nil, errCancel
		}
	}
}
