package flows

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/aslcns/totem/cms"
	layout "github.com/aslcns/totem/firmware/receipts"
	"github.com/aslcns/totem/hal"
)

// ChangePIN is Cambio PIN, done on the chip: the old PIN, the new one
// twice. Only an audit event, with no PIN data, is queued.
func ChangePIN(ctx context.Context, dk *Desk, card hal.Card, info hal.CardInfo) error {
	pc, ok := card.(hal.PINChanger)
	if !ok {
		return dk.notAvailable(ctx)
	}
	old, err := dk.enter(ctx, "pin", 5, 8, true)
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
		dk.log.Info("pin change refused", "tries_left", pe.TriesLeft)
		screen := "pin_wrong"
		if pe.TriesLeft == 1 {
			screen = "pin_last"
		}
		dk.show(screen, pe.TriesLeft)
		dk.key(ctx, screen, func() { dk.show(screen, pe.TriesLeft) })
		return ErrCancel
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
	return dk.finishKind(ctx, e, cms.KindPINChange, info, layout.PINEvent(cms.KindPINChange))
}
