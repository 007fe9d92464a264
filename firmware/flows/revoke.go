package flows

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

// RevokeSelf is Revoca self-service. info is the card in the reader, or
// nil when the citizen came without one.
//
// The steps: the TEAM code (without the card), the reason, the summary,
// then the CIP, sent as soon as it is typed (issue 17: it was asked
// before the reason and the summary, and a wrong one, found only by the
// CMS, sent the citizen through them all again). A wrong CIP is said
// with the tries left and # asks for it again; * from any step goes back
// to the one before with what was typed there (the TEAM code is kept).
func RevokeSelf(ctx context.Context, dk *Desk, info *hal.CardInfo) error {
	if err := dk.Reachable(ctx, cms.KindRevocation); err != nil {
		return err
	}
	req := cms.RevocationRequest{Attendance: cms.Attendance{Channel: cms.SelfService}}
	var ci hal.CardInfo
	if info != nil {
		// Nothing needs typing that the chip says: the TEAM code derives
		// from the serial, and the CMS checks the card's data too.
		ci, req.Card, req.TEAM = *info, CardRef(*info), cms.TEAM(info.Serial)
	}
	fixed := req.TEAM != ""
	return steps(func() error {
		if fixed {
			return errSkip
		}
		team, err := enterTEAM(ctx, dk, req.TEAM)
		req.TEAM = team
		return err
	}, func() (err error) {
		req.Reason, err = askRevokeReason(ctx, dk)
		return err
	}, func() error {
		_, err := dk.choose(ctx, "revoke_confirm", "..."+req.TEAM[len(req.TEAM)-4:])
		return err
	}, func() error {
		for {
			cip, err := dk.enter(ctx, "revoke_cip", cms.CIPDigits, cms.CIPDigits, true)
			if err != nil {
				return err
			}
			req.CIP = string(cip)
			wipe(cip)
			err = revoke(ctx, dk, req, ci)
			req.CIP = ""
			var wrong cipWrong
			if !errors.As(err, &wrong) {
				return err
			}
			rows := append(hal.Wrap(string(wrong), 20), "", "", "")
			if k, err := dk.Ask(ctx, "retry_page", rows[0], rows[1], rows[2]); err != nil {
				return err
			} else if k == hal.KeyCancel {
				dk.show("cancelled")
				return ErrCancel
			}
		}
	})
}

// cipWrong is the CMS's refusal of a wrong CIP (its message says the
// tries left): the CIP is asked again.
type cipWrong string

func (c cipWrong) Error() string { return "firmware: " + string(c) }

// enterTEAM reads a codice TEAM, typed starts with, and checks its form
// and check digit before anything is sent: # after a bad one lets the
// citizen type it again.
func enterTEAM(ctx context.Context, dk *Desk, typed string) (string, error) {
	for {
		b, err := dk.enterFrom(ctx, "revoke_team", 20, 20, false, []byte(typed))
		if err != nil {
			return "", err
		}
		if team := string(b); cms.ValidTEAM(team) {
			return team, nil
		}
		typed = ""
		dk.log.Info("team code refused", "reason", "check_digit")
		dk.show("revoke_team_bad")
		k, err := dk.key(ctx, "revoke_team_bad", func() { dk.show("revoke_team_bad") })
		if err != nil {
			return "", err
		}
		switch k {
		case hal.KeyBack:
			return "", ErrBack
		case hal.KeyCancel:
			dk.show("cancelled")
			return "", ErrCancel
		}
	}
}

// askRevokeReason asks why the card is revoked: theft, loss, malfunction.
func askRevokeReason(ctx context.Context, dk *Desk) (string, error) {
	k, err := dk.Ask(ctx, "revoke_reason")
	if err != nil {
		return "", err
	}
	if r, ok := revokeKeys[k]; ok {
		return r, nil
	}
	if k == hal.KeyBack {
		return "", ErrBack
	}
	dk.show("cancelled")
	return "", ErrCancel
}

// revoke sends req to the CMS and waits for its answer (online only:
// offline nothing is queued), then prints the receipt or pages the CMS's
// reason for refusing. info is the card in the reader, if any; the
// receipt names the card by its masked TEAM code.
func revoke(ctx context.Context, dk *Desk, req cms.RevocationRequest, info hal.CardInfo) error {
	payload, err := json.Marshal(req)
	if err != nil {
		return err
	}
	e, err := dk.submit(ctx, cms.KindRevocation, payload)
	clear(payload) // it holds the CIP
	if err != nil {
		return err
	}
	if rejected(e) {
		if errs := e.Result.Processing.Errors; req.Channel == cms.SelfService && len(errs) > 0 && errs[0].Code == cms.CodeCIPWrong {
			dk.log.Info("revocation refused", "op_id", e.ID, "code", cms.CodeCIPWrong)
			return cipWrong(errs[0].Message)
		}
		return dk.ShowRejection(ctx, e)
	}
	var res cms.RevocationResult
	if ok, _ := decode(dk, e, &res, func(r cms.RevocationResult) bool { return r.Reissue != "" }, "revocation result"); !ok {
		return errors.New("firmware: revocation result without its reissue request")
	}
	dk.log.Info("card revoked", "op_id", e.ID, "reason", res.Reason)
	dk.show("printing")
	doc := dk.receipt(e, dk.title(cms.KindRevocation), info, dk.t.Frame().SelfRevocation(req.TEAM, res))
	if perr := dk.print(ctx, doc, e.ID); perr != nil {
		dk.show("revoke_no_receipt", e.Result.Transport.Protocol, dk.printerText(perr))
		return nil
	}
	dk.show("revoke_done", e.Result.Transport.Protocol)
	return nil
}
