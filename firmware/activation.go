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
	d := &actDialog{a: a, ctx: ctx, info: info, pol: a.Policy(),
		req: cms.ActivationRequest{Card: cardRef(info), Channel: cms.Assisted, Operator: op}}
	fns := []func() error{d.privacy}
	fns = append(fns, a.whoSteps(ctx, info, holderLine(info), &d.p)...)
	fns = append(fns, d.channel, d.address, d.readerOffer, d.payment, d.fseOffer, d.consents, d.summary1, d.summary2, d.declaration)
	if err := steps(fns...); err != nil {
		return err
	}
	d.req.Delegate, d.req.Document = d.p.deleg, d.p.doc
	payload, err := json.Marshal(d.req)
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
	return a.finishKind(ctx, e, cms.KindActivation, info, activationSummaryLines(&d.req, res))
}

// actDialog is what the activation's steps fill in, one step a method in
// the order the operator meets them; each step is run again when Back
// returns to it (steps), so it overwrites what an earlier pass set.
type actDialog struct {
	a        *App
	ctx      context.Context
	info     hal.CardInfo
	pol      cms.Policy
	req      cms.ActivationRequest
	p        presenter
	buy, fse bool
}

func (d *actDialog) privacy() error {
	_, err := d.a.choose(d.ctx, "act_privacy")
	d.req.Privacy = err == nil
	return err
}

// channel: where the second halves of PIN and PUK go.
func (d *actDialog) channel() error {
	k, err := d.a.choose(d.ctx, "contact_channel")
	if err != nil {
		return err
	}
	ch := cms.ContactSMS
	if k == '2' {
		ch = cms.ContactEmail
	}
	if d.req.Contact.Channel != ch {
		d.req.Contact = cms.Contact{Channel: ch}
	}
	return nil
}

// address: the phone number or the e-mail address, asked again until an
// address looks plausible.
func (d *actDialog) address() error {
	for {
		var addr string
		var err error
		if d.req.Contact.Channel == cms.ContactSMS {
			var b []byte
			b, err = d.a.enter(d.ctx, "contact_sms", 9, 15, false)
			addr = string(b)
		} else {
			addr, err = d.a.text(d.ctx, "t_email", &tapEmail, 6, 60)
		}
		if err != nil {
			return err
		}
		if d.req.Contact.Channel == cms.ContactEmail && !plausibleEmail(addr) {
			if err := d.a.notice(d.ctx, "email_invalid"); err != nil {
				return err
			}
			continue
		}
		d.req.Contact.Address = addr
		return nil
	}
}

func (d *actDialog) readerOffer() error {
	k, err := d.a.choose(d.ctx, "reader_offer")
	d.buy = k == '1'
	return err
}

func (d *actDialog) payment() error {
	if !d.buy {
		d.req.Reader = nil
		return errSkip
	}
	ref, err := d.a.enter(d.ctx, "payment", 6, 20, false)
	if err == nil {
		d.req.Reader = &cms.Payment{Reference: string(ref), AmountCents: cms.ReaderFeeCents}
	}
	return err
}

func (d *actDialog) fseOffer() error {
	k, err := d.a.choose(d.ctx, "fse_offer")
	d.fse = k == '1'
	return err
}

func (d *actDialog) consents() error {
	if !d.fse {
		d.req.Consents = nil
		return errSkip
	}
	values, err := d.a.askConsents(d.ctx, d.pol)
	if err != nil {
		return err
	}
	cs := &cms.ConsentSet{Policy: d.pol.ID}
	for i, c := range d.pol.Consents {
		cs.Consents = append(cs.Consents, cms.Consent{Code: c.Code, Given: values[i]})
	}
	d.req.Consents = cs
	return nil
}

func (d *actDialog) summary1() error {
	_, err := d.a.choose(d.ctx, "act_summary1", d.a.presenterText(d.p.deleg), d.a.docText(d.p.doc))
	return err
}

func (d *actDialog) summary2() error {
	_, err := d.a.choose(d.ctx, "act_summary2", fit20(d.req.Contact.Masked()), d.a.yesNo(d.buy), d.a.yesNo(d.fse))
	return err
}

// declaration: seed 002, the parent, tutore or curatore signs the
// pre-filled declaration, which the operator keeps.
func (d *actDialog) declaration() error {
	if d.p.deleg == nil {
		d.req.Declaration = false
		return errSkip
	}
	d.a.show("printing")
	if err := d.a.print(d.ctx, declaration(d.a.o, d.a.now(), d.info, *d.p.deleg, d.p.doc), ""); err != nil {
		d.a.show("decl_failed", d.a.printerText(err))
		return errCancel
	}
	_, err := d.a.choose(d.ctx, "decl_signed")
	d.req.Declaration = err == nil
	return err
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
		return a.o.Lang.Text("direct")
	}
	return a.o.Lang.Text("deleg_" + d.Kind)
}

// docText is the identity document, as the summary shows it.
func (a *App) docText(d cms.IDDocument) string {
	return fit20(a.o.Lang.Text("doc_"+d.Type) + " " + d.Number)
}

// fit20 cuts s to the display's 20 columns.
func fit20(s string) string {
	if r := []rune(s); len(r) > 20 {
		return string(r[:20])
	}
	return s
}
