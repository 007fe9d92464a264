package flows

import (
	"context"
	"strings"

	"github.com/aslcns/totem/cms"
	layout "github.com/aslcns/totem/firmware/receipts"
	"github.com/aslcns/totem/firmware/screens"
	"github.com/aslcns/totem/hal"
)

// Activation is Attivazione, assisted (seed 002, "Attivazione standard" and
// "per minori / tutela"): the informativa, direct or by delegation, the
// identity document and the operator's checks, the channel of the second
// halves, an optional reader and the FSE consents, the summary and its
// confirmation; for a delegation the dichiarazione sostitutiva printed and
// signed; then the CMS's answer, the acceptance form with the first halves
// (never kept once printed) and the summary receipt.
//
// It needs the CMS: offline it is refused before anything is typed, and
// nothing is queued, printed or charged.
func Activation(ctx context.Context, dk *Desk, op string, info hal.CardInfo) error {
	if err := dk.Reachable(ctx, cms.KindActivation); err != nil {
		return err
	}
	// An active card is refused by the CMS: say so now, not after the
	// informativa, the delegate, the document, the contact and the
	// consents (the CMS still checks at the end).
	dk.show("asking")
	if dk.cardState(ctx, info.Serial) == string(cms.CardActive) {
		dk.log.Info("activation refused", "reason", "card already active")
		if _, err := dk.Ask(ctx, "act_already_active"); err != nil {
			return err
		}
		return ErrBack
	}
	d := &actDialog{dk: dk, ctx: ctx, info: info, pol: dk.t.Policy(),
		req: cms.ActivationRequest{Card: CardRef(info), Channel: cms.Assisted, Operator: op}}
	d.p.op, d.p.ref = op, CardRef(info)
	fns := []func() error{d.privacy}
	fns = append(fns, whoSteps(ctx, dk, info, holderLine(info), &d.p)...)
	fns = append(fns, d.channel, d.address, d.offer("reader_offer", &d.buy), d.payment, d.offer("fse_offer", &d.fse), d.consents, d.summary, d.declaration)
	if err := steps(fns...); err != nil {
		return err
	}
	d.req.Delegate, d.req.Document = d.p.deleg, d.p.doc
	e, res, done, err := submitAssisted(ctx, dk, cms.KindActivation, op, d.req,
		func(r cms.ActivationResult) bool { return r.PINFirstHalf != "" })
	if done || err != nil {
		return err
	}
	// Two sheets: the codes (the first halves and the CIP), for the
	// holder only, which the print queue keeps no copy of; and the
	// acceptance form without them, signed by the holder or the delegate
	// and kept by the ASL.
	dk.show("printing")
	codes := dk.receipt(e, dk.t.Frame().CodesTitle(), info, dk.t.Frame().Activation(res))
	codes.Sensitive = true
	// The form the ASL keeps is Italian whatever the session's language,
	// its frame too (date, outcome): a legal document in one language.
	it := dk.t.Frame()
	it.Lang = screens.IT
	form := it.Receipt(e, "Modulo di accettazione", info, it.Acceptance(&d.req))
	for _, doc := range []*hal.Doc{codes, form} {
		if err := dk.print(ctx, doc, e.ID); err != nil {
			dk.show("form_no_receipt", dk.printerText(err))
			return nil
		}
	}
	return dk.finishKind(ctx, e, cms.KindActivation, info, dk.t.Frame().ActivationSummary(&d.req, res))
}

// actDialog is what the activation's steps fill in, one step a method in
// the order the operator meets them; each step is run again when Back
// returns to it (steps), so it overwrites what an earlier pass set.
type actDialog struct {
	dk       *Desk
	ctx      context.Context
	info     hal.CardInfo
	pol      cms.Policy
	req      cms.ActivationRequest
	p        presenter
	buy, fse bool
}

func (d *actDialog) privacy() error {
	_, err := d.dk.choose(d.ctx, "act_privacy")
	d.req.Privacy = err == nil
	return err
}

// channel: where the second halves of PIN and PUK go.
func (d *actDialog) channel() error {
	k, err := d.dk.choose(d.ctx, "contact_channel")
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

// address: the phone number or the e-mail address.
func (d *actDialog) address() error {
	// A refused address comes back to be corrected, not retyped.
	addr, err := askAddress(d.ctx, d.dk, d.req.Contact.Channel, d.req.Contact.Address)
	if err == nil {
		d.req.Contact.Address = addr
	}
	return err
}

// askAddress reads the phone number (ContactSMS) or the e-mail address
// for the second halves, asked again until an e-mail looks plausible; the
// CMS checks it fully.
func askAddress(ctx context.Context, dk *Desk, channel, prev string) (string, error) {
	addr := prev
	for {
		if channel == cms.ContactSMS {
			b, err := dk.enter(ctx, "contact_sms", 9, 15, false)
			return string(b), err
		}
		var err error
		addr, err = dk.text(ctx, "t_email", &tapEmail, 6, 60, addr)
		if err != nil {
			return "", err
		}
		if plausibleEmail(addr) {
			return addr, nil
		}
		if err := dk.notice(ctx, "email_invalid"); err != nil {
			return "", err
		}
	}
}

// offer is the step that asks the yes/no question on screen: yes is
// whether 1 was chosen.
func (d *actDialog) offer(screen string, yes *bool) func() error {
	return func() error {
		k, err := d.dk.choose(d.ctx, screen)
		*yes = k == '1'
		return err
	}
}

func (d *actDialog) payment() error {
	if !d.buy {
		d.req.Reader = nil
		return errSkip
	}
	ref, err := d.dk.enter(d.ctx, "payment", 6, 20, false)
	if err == nil {
		d.req.Reader = &cms.Payment{Reference: string(ref), AmountCents: cms.ReaderFeeCents}
	}
	return err
}

func (d *actDialog) consents() error {
	if !d.fse {
		d.req.Consents = nil
		return errSkip
	}
	values, err := askConsents(d.ctx, d.dk, d.pol)
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

// summary shows the operator everything typed, in full — the delegate,
// the document, the address — before # confirms (issue 17: it was cut
// and masked, and the delegate not shown); receipts keep their masking.
func (d *actDialog) summary() error {
	l := d.dk.lang
	items := [][]string{hal.Wrap(l.Text("sum_request")+" "+presenterText(d.dk, d.p.deleg), 20)}
	if dg := d.p.deleg; dg != nil {
		items = append(items, append([]string{l.Text("sum_delegate")}, hal.Wrap(dg.Name, 20)...),
			[]string{l.Text("sum_cf") + " " + dg.CF})
	}
	items = append(items, hal.Wrap(l.Text("doc_"+d.p.doc.Type)+" "+d.p.doc.Number, 20),
		[]string{l.Text("sum_expiry") + " " + layout.DateIT(d.p.doc.Expiry)})
	if d.req.Contact.Channel == cms.ContactSMS {
		items = append(items, []string{l.Text("sum_sms"), d.req.Contact.Address})
	} else {
		// A long address breaks before the @.
		addr := d.req.Contact.Address
		if at := strings.LastIndexByte(addr, '@'); len(addr) > 20 && at > 0 {
			addr = addr[:at] + " " + addr[at:]
		}
		items = append(items, append([]string{l.Text("sum_email")}, hal.Wrap(addr, 20)...))
	}
	items = append(items, []string{l.Text("sum_reader") + " " + d.dk.yesNo(d.buy)})
	if d.req.Reader != nil {
		items = append(items, []string{l.Text("sum_payment") + " " + d.req.Reader.Reference})
	}
	items = append(items, []string{"FSE: " + d.dk.yesNo(d.fse)})
	// Two lines a page under "Riepilogo p/n": # turns forward and on the
	// last page confirms (nil), * turns back and from the first is ErrBack
	// (to the step before), D cancels.
	return d.dk.paginate(d.ctx, pack2(items), 2, "op_summary", true)
}

// pack2 lays items of lines out two lines a page, an item of two lines
// or fewer never split across pages (an empty line pads).
func pack2(items [][]string) []string {
	var lines []string
	for _, it := range items {
		if len(lines)%2 == 1 && len(it) > 1 {
			lines = append(lines, "")
		}
		lines = append(lines, it...)
	}
	return lines
}

// declaration: seed 002, the parent, tutore or curatore signs the
// pre-filled declaration, which the operator keeps.
func (d *actDialog) declaration() error {
	if d.p.deleg == nil {
		d.req.Declaration = false
		return errSkip
	}
	d.dk.show("printing")
	if err := d.dk.print(d.ctx, d.dk.t.Frame().Declaration(d.info, *d.p.deleg, d.p.doc), ""); err != nil {
		d.dk.show("decl_failed", d.dk.printerText(err))
		return ErrCancel
	}
	_, err := d.dk.choose(d.ctx, "decl_signed")
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
func presenterText(dk *Desk, d *cms.Delegation) string {
	if d == nil {
		return dk.lang.Text("direct")
	}
	return dk.lang.Text("deleg_" + d.Kind)
}

// fit20 cuts s to the display's 20 columns.
func fit20(s string) string {
	if r := []rune(s); len(r) > 20 {
		return string(r[:20])
	}
	return s
}
