package flows

import (
	"context"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
)

// Reissue is Riemissione, assisted, at a totem that stands at an ASL
// counter enabled to reissue cards (seed 002, "Riemissione Carta, solo
// presso sportelli aziendali abilitati"): the reason (theft, loss,
// malfunction), who asks — the holder, or for a minor or a ward the
// parent or the tutore, never a curatore — with the identity document and
// the operator's checks, the summary to confirm, for a delegate the
// dichiarazione sostitutiva signed; then the CMS's answer and the receipt
// with the number of the request. Whether this totem is an enabled
// counter the hub decides from its fleet registry: a totem configured
// otherwise gets the CMS's refusal.
//
// It needs the CMS: offline it is refused before anything is typed.
func Reissue(ctx context.Context, dk *Desk, op string, info hal.CardInfo) error {
	if err := dk.Reachable(ctx, cms.KindReissue); err != nil {
		return err
	}
	req := cms.ReissueRequest{Card: CardRef(info), Attendance: cms.Attendance{Channel: cms.Assisted, Operator: op}}
	p := presenter{op: op, ref: CardRef(info)}
	fns := []func() error{func() error {
		k, err := dk.choose(ctx, "reissue_reason")
		req.Reason = revokeReasons[k]
		return err
	}}
	who := delegateSteps(ctx, dk, info, &p)
	fns = append(fns, who[0], func() error {
		// Only the holder, a parent or the tutore (seed 002): a curatore
		// is told so and chooses again.
		if p.deleg == nil || p.deleg.Kind != cms.DelegCurator {
			return errSkip
		}
		dk.log.Info("reissue requester refused", "reason", "curatore")
		if err := dk.notice(ctx, "reissue_curator"); err != nil {
			return err
		}
		return ErrBack
	})
	fns = append(fns, who[1:]...)
	fns = append(fns, docSteps(ctx, dk, holderLine(info), &p)...)
	fns = append(fns, func() error {
		_, err := dk.choose(ctx, "reissue_summary", dk.lang.Text("reason_"+req.Reason), presenterText(dk, p.deleg))
		return err
	}, func() error {
		if req.Declaration = false; p.deleg == nil {
			return errSkip
		}
		err := dk.signDeclaration(ctx, cms.KindReissue, info, &p)
		req.Declaration = err == nil
		return err
	})
	if err := steps(fns...); err != nil {
		return err
	}
	doc := p.doc
	req.Delegate, req.Document = p.deleg, &doc
	e, res, done, err := submitAssisted(ctx, dk, cms.KindReissue, op, req,
		func(r cms.ReissueResult) bool { return r.Reissue != "" })
	if done || err != nil {
		return err
	}
	lines := append(dk.t.Frame().Reissue(req.Reason, res), dk.t.Frame().Requester(p.deleg, doc, op)...)
	if req.Declaration {
		lines = append(lines, dk.t.Frame().Declared())
	}
	return dk.finishKind(ctx, e, cms.KindReissue, info, lines)
}
