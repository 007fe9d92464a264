package firmware

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
)

// activation is Attivazione, assisted (seed 002, "Attivazione standard" and
// "per minori / tutela"): the informativa, direct or by delegation, the
// identity document and the operator's checks, the channel of the second
// halves, an optional reader and the FSE consents, the summary and its
// confirmation; for a delegation the dichiarazione sostitutiva printed and
// signed; then the CMS's answer, the acceptance form with the first halves
// (never kept once printed) and the summary receipt.
//
// It needs the CMS: offline it is refused before anything is typed, and
// nothing is queued, printed or charged.
func (a *App) activation(ctx context.Context, op string, info hal.CardInfo) error {
	if !a.reachable(cms.KindActivation) {
		return errUnavailable
	}
	req := cms.ActivationRequest{Card: cardRef(info), Channel: cms.Assisted, Operator: op}
	var (
		p        presenter
		buy, fse bool
		pol      = a.Policy()
	)
	fns := []func() error{func() error {
		_, err := a.choose(ctx, "act_privacy")
		req.Privacy = err == nil
		return err
	}}
	fns = append(fns, a.whoSteps(ctx, info, holderLine(info), &p)...)
	fns = append(fns,
		func() error {
			k, err := a.choose(ctx, "contact_channel")
			if err != nil {
				return err
			}
			ch := cms.ContactSMS
			if k == '2' {
				ch = cms.ContactEmail
			}
			if req.Contact.Channel != ch {
				req.Contact = cms.Contact{Channel: ch}
			}
			return nil
		},
		func() error {
			for {
				var addr string
				var err error
				if req.Contact.Channel == cms.ContactSMS {
					var b []byte
					b, err = a.enter(ctx, "contact_sms", 9, 15, false)
					addr = string(b)
				} else {
					addr, err = a.text(ctx, "t_email", &tapEmail, 6, 60)
				}
				if err != nil {
					return err
				}
				if req.Contact.Channel == cms.ContactEmail && !plausibleEmail(addr) {
					if err := a.notice(ctx, "email_invalid"); err != nil {
						return err
					}
					continue
				}
				req.Contact.Address = addr
				return nil
			}
		},
		func() error {
			k, err := a.choose(ctx, "reader_offer")
			buy = k == '1'
			return err
		},
		func() error {
			if !buy {
				req.Reader = nil
				return errSkip
			}
			ref, err := a.enter(ctx, "payment", 6, 20, false)
			if err == nil {
				req.Reader = &cms.Payment{Reference: string(ref), AmountCents: cms.ReaderFeeCents}
			}
			return err
		},
		func() error {
			k, err := a.choose(ctx, "fse_offer")
			fse = k == '1'
			return err
		},
		func() error {
			if !fse {
				req.Consents = nil
				return errSkip
			}
			values, err := a.askConsents(ctx, pol)
			if err != nil {
				return err
			}
			cs := &cms.ConsentSet{Policy: pol.ID}
			for i, c := range pol.Consents {
				cs.Consents = append(cs.Consents, cms.Consent{Code: c.Code, Given: values[i]})
			}
			req.Consents = cs
			return nil
		},
		func() error {
			_, err := a.choose(ctx, "act_summary1", a.presenterText(p.deleg), a.docText(p.doc))
			return err
		},
		func() error {
			_, err := a.choose(ctx, "act_summary2", fit20(req.Contact.Masked()), a.yesNo(buy), a.yesNo(fse))
			return err
		},
		func() error {
			// Seed 002: the parent, tutore or curatore signs the
			// pre-filled declaration, which the operator keeps.
			if p.deleg == nil {
				req.Declaration = false
				return errSkip
			}
			a.show("printing")
			if err := a.print(ctx, declaration(a.o, a.now(), info, *p.deleg, p.doc), ""); err != nil {
				a.show("decl_failed", a.printerText(err))
				return errCancel
			}
			_, err := a.choose(ctx, "decl_signed")
			req.Declaration = err == nil
			return err
		},
	)
	if err := steps(fns...); err != nil {
		return err
	}
	req.Delegate, req.Document = p.deleg, p.doc
	payload, err := json.Marshal(req)
	if err != nil {
		return err
	}
	a.log.Info("assisted op", "kind", cms.KindActivation, "operator", maskSerial(op))
	e, err := a.submit(ctx, cms.KindActivation, payload)
	if err != nil {
		return err
	}
	if rejected(e) {
		return a.showRejection(ctx, e)
	}
	var res cms.ActivationResult
	if err := json.Unmarshal(e.Result.Data, &res); err != nil || res.PINFirstHalf == "" {
		a.log.Error("activation result", "op_id", e.ID, "err", err)
		a.show("unavailable")
		return fmt.Errorf("firmware: activation result without codes: %w", errors.Join(err, errNoAnswer))
	}
	// The acceptance form: the first halves and the CIP, for the holder
	// only; the print queue keeps no copy of it.
	a.show("printing")
	form := a.receipt(e, "Modulo di accettazione", info, activationLines(res))
	form.Sensitive = true
	if err := a.print(ctx, form, e.ID); err != nil {
		a.show("no_receipt", a.printerText(err))
		return nil
	}
	return a.finishKind(ctx, e, cms.KindActivation, info, activationSummaryLines(&req, res))
}

// plausibleEmail is a first check of a typed address; the CMS checks it
// fully.
func plausibleEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	return at > 0 && strings.Count(s, "@") == 1 && strings.Contains(s[at:], ".") && !strings.HasSuffix(s, ".")
}

// presenterText is who asked, as the summary shows it.
func (a *App) presenterText(d *cms.Delegation) string {
	if d == nil {
		return a.o.Lang.text("direct")
	}
	return a.o.Lang.text("deleg_" + d.Kind)
}

// docText is the identity document, as the summary shows it.
func (a *App) docText(d cms.IDDocument) string {
	return fit20(a.o.Lang.text("doc_"+d.Type) + " " + d.Number)
}

// fit20 cuts s to the display's 20 columns.
func fit20(s string) string {
	if r := []rune(s); len(r) > 20 {
		return string(r[:20])
	}
	return s
}
