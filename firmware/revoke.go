package firmware

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
)

// Revoca. Self-service, the card is named by its codice TEAM (typed: the
// card may be lost or stolen; read from the chip when it is in the
// reader) and the citizen proves the right to revoke it with the CIP of
// the activation form, which only the CMS checks. The revocation is
// online only and always combined with a request for a new card.
// Assisted mode builds its own cms.RevocationRequest (operator, document,
// delegate) and calls revoke with the reason from askRevokeReason.

var revokeKeys = map[hal.Key]string{'1': cms.ReasonTheft, '2': cms.ReasonLoss, '3': cms.ReasonMalfunction}

// revokeSelf is Revoca self-service. info is the card in the reader, or
// nil when the citizen came without one.
func (a *App) revokeSelf(ctx context.Context, info *hal.CardInfo) error {
	if !a.reachable(cms.KindRevocation) {
		return errUnavailable
	}
	req := cms.RevocationRequest{Channel: cms.SelfService}
	var ci hal.CardInfo
	if info != nil {
		// Nothing needs typing that the chip says: the TEAM code derives
		// from the serial, and the CMS checks the card's data too.
		ci, req.Card, req.TEAM = *info, cardRef(*info), cms.TEAM(info.Serial)
	}
	if req.TEAM == "" {
		team, err := a.enterTEAM(ctx)
		if err != nil {
			return err
		}
		req.TEAM = team
	}
	cip, err := a.enter(ctx, "revoke_cip", cms.CIPDigits, cms.CIPDigits, true)
	if err != nil {
		return err
	}
	defer wipe(cip)
	if req.Reason, err = a.askRevokeReason(ctx); err != nil {
		return err
	}
	k, err := a.ask(ctx, "revoke_confirm", "..."+req.TEAM[len(req.TEAM)-4:])
	if err != nil {
		return err
	}
	switch k {
	case hal.KeyBack:
		return errBack
	case hal.KeyCancel:
		a.show("cancelled")
		return errCancel
	}
	req.CIP = string(cip)
	return a.revoke(ctx, req, ci)
}

// enterTEAM reads a codice TEAM and checks its form and check digit
// before anything is sent: # after a bad one lets the citizen type it
// again.
func (a *App) enterTEAM(ctx context.Context) (string, error) {
	for {
		b, err := a.enter(ctx, "revoke_team", 20, 20, false)
		if err != nil {
			return "", err
		}
		if team := string(b); cms.ValidTEAM(team) {
			return team, nil
		}
		a.log.Info("team code refused", "reason", "check_digit")
		a.show("revoke_team_bad")
		k, err := a.key(ctx, "revoke_team_bad", func() { a.show("revoke_team_bad") })
		if err != nil {
			return "", err
		}
		switch k {
		case hal.KeyBack:
			return "", errBack
		case hal.KeyCancel:
			a.show("cancelled")
			return "", errCancel
		}
	}
}

// askRevokeReason asks why the card is revoked: theft, loss, malfunction.
func (a *App) askRevokeReason(ctx context.Context) (string, error) {
	k, err := a.ask(ctx, "revoke_reason")
	if err != nil {
		return "", err
	}
	if r, ok := revokeKeys[k]; ok {
		return r, nil
	}
	if k == hal.KeyBack {
		return "", errBack
	}
	a.show("cancelled")
	return "", errCancel
}

// revoke sends req to the CMS and waits for its answer (online only:
// offline nothing is queued), then prints the receipt or pages the CMS's
// reason for refusing. info is the card in the reader, if any; the
// receipt names the card by its masked TEAM code.
func (a *App) revoke(ctx context.Context, req cms.RevocationRequest, info hal.CardInfo) error {
	payload, err := json.Marshal(req)
	if err != nil {
		return err
	}
	e, err := a.submit(ctx, cms.KindRevocation, payload)
	clear(payload) // it holds the CIP
	if err != nil {
		return err
	}
	if rejected(e) {
		return a.showRejection(ctx, e)
	}
	var res cms.RevocationResult
	if err := json.Unmarshal(e.Result.Data, &res); err != nil || res.Reissue == "" {
		a.log.Error("revocation result", "op_id", e.ID, "err", err)
		a.show("unavailable")
		return errors.New("firmware: revocation result without its reissue request")
	}
	a.log.Info("card revoked", "op_id", e.ID, "reason", res.Reason)
	a.show("printing")
	doc := a.receipt(e, kindTitle(cms.KindRevocation), info, selfRevocationLines(req.TEAM, res))
	if perr := a.print(ctx, doc, e.ID); perr != nil {
		a.show("revoke_no_receipt", e.Result.Transport.Protocol, a.printerText(perr))
		return nil
	}
	a.show("revoke_done", e.Result.Transport.Protocol)
	return nil
}
