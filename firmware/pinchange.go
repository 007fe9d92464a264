package firmware

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
)

// changePIN is Cambio PIN, done on the chip: the old PIN, the new one
// twice. Only an audit event, with no PIN data, is queued.
func (a *App) changePIN(ctx context.Context, card hal.Card, info hal.CardInfo) error {
	pc, ok := card.(hal.PINChanger)
	if !ok {
		return a.notAvailable(ctx)
	}
	old, err := a.enter(ctx, "pin", 5, 8, true)
	if err != nil {
		return err
	}
	defer wipe(old)
	nw, err := a.newPIN(ctx)
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
		a.log.Info("pin change refused", "tries_left", pe.TriesLeft)
		screen := "pin_wrong"
		if pe.TriesLeft == 1 {
			screen = "pin_last"
		}
		a.show(screen, pe.TriesLeft)
		a.key(ctx, screen, func() { a.show(screen, pe.TriesLeft) })
		return errCancel
	case errors.Is(err, hal.ErrPINBlocked):
		a.show("pin_blocked")
		result = cms.PINBlocked
	default:
		return a.cardError(err)
	}
	payload, err := json.Marshal(cms.PINEvent{Card: cardRef(info), Channel: cms.SelfService, Result: result})
	if err != nil {
		return err
	}
	e, err := a.submit(ctx, cms.KindPINChange, payload)
	if err != nil || result != cms.PINOK {
		return err
	}
	return a.finishKind(ctx, e, cms.KindPINChange, info, pinEventLines(cms.KindPINChange))
}
