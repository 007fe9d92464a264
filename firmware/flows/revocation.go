package flows

import (
	"context"
	"errors"
	"strings"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
)

var revokeReasons = map[hal.Key]string{'1': cms.ReasonTheft, '2': cms.ReasonLoss, '3': cms.ReasonMalfunction}

// RevocationByTEAM is Revoca of a card that is not in the slot: its
// 20-digit TEAM code typed by the operator.
func RevocationByTEAM(ctx context.Context, dk *Desk, op string) error {
	if err := dk.Reachable(ctx, cms.KindRevocation); err != nil {
		return err
	}
	for {
		b, err := dk.enter(ctx, "team", 20, 20, false)
		if err != nil {
			return err
		}
		team := string(b)
		if !validTEAM(team) {
			if err := dk.notice(ctx, "team_invalid"); err != nil {
				return err
			}
			continue
		}
		err = Revocation(ctx, dk, op, hal.CardInfo{}, team)
		if !errors.Is(err, ErrBack) {
			return err
		}
	}
}

// validTEAM checks the shape and the check digit of a TEAM code.
func validTEAM(team string) bool {
	if len(team) != 20 || !strings.HasPrefix(team, "80380") {
		return false
	}
	sum, double := 0, true
	for i := 18; i >= 0; i-- {
		c := team[i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return team[19] == byte('0'+(10-sum%10)%10)
}

// Revocation is Revoca, assisted: the reason, who asks and their document,
// the identity check, the summary (a new card is requested with it), the
// CMS's answer, the receipt. The card is the one in the slot (info) or the
// one of the TEAM code team.
func Revocation(ctx context.Context, dk *Desk, op string, info hal.CardInfo, team string) error {
	if err := dk.Reachable(ctx, cms.KindRevocation); err != nil {
		return err
	}
	req := cms.RevocationRequest{Attendance: cms.Attendance{Channel: cms.Assisted, Operator: op}}
	holder := holderLine(info)
	if team != "" {
		req.TEAM = team
		holder = "TEAM ..." + team[12:]
	} else {
		req.Card = CardRef(info)
	}
	p := presenter{op: op, ref: req.Card, team: team}
	fns := []func() error{func() error {
		k, err := dk.choose(ctx, "revoke_reason")
		if err == nil {
			req.Reason = revokeReasons[k]
		}
		return err
	}}
	fns = append(fns, whoSteps(ctx, dk, info, holder, &p)...)
	fns = append(fns, func() error {
		_, err := dk.choose(ctx, "revoke_summary", dk.lang.Text("reason_"+req.Reason))
		return err
	})
	if err := steps(fns...); err != nil {
		return err
	}
	req.Delegate, req.Document = p.deleg, &p.doc
	e, res, done, err := submitAssisted(ctx, dk, cms.KindRevocation, op, req,
		func(r cms.RevocationResult) bool { return r.Reason != "" })
	if done || err != nil {
		return err
	}
	return dk.finishKind(ctx, e, cms.KindRevocation, info, dk.t.Frame().RevocationAssisted(res, p.deleg, p.doc, op))
}
