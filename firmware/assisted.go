package firmware

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/firmware/screens"
	"github.com/aslcns/totem/hal"
)

// Assisted mode: an ASL operator opens an operator session with the
// operator card (serial level 8 or 9) and its PIN, verified on the chip.
// The operator card then leaves the slot, and the citizens' cards go into
// it one after the other, each with the assisted menu; every operation
// records the operator's serial. The session ends when the operator logs
// out (D while the slot is empty), after OperatorTimeout with the slot
// empty and no key, or when a citizen's screen times out (nobody is there).
//
// Screen flow (every input screen has * = Back and D = Cancel):
//
//	operator card → its PIN ("PIN carta operatore") → "Rimuovere la carta operatore"
//	→ "Inserire la TS del cittadino" (1 = Revoca by TEAM code, D = logout)
//	→ citizen card → assisted menu (two pages, # turns): 1 Attivazione,
//	  2 Revoca, 3 Consensi FSE, 4 Ristampa PIN/PUK, 5 Storico,
//	  6 Richiesta lettore; 3-6 are the self-service flows with the
//	  operator's identity check in place of the card's PIN
//	→ the flow → its receipts → "Rimuovere la tessera" → next citizen.

// errLogout ends an operator session with the slot empty.
var errLogout = errors.New("firmware: operator logged out")

// awaitOperatorOut waits for the operator card to leave the slot, after
// the operator's PIN; otherwise it returns why the session ends and how.
func (a *App) awaitOperatorOut(ctx context.Context, op string) (string, error) {
	_, err := a.ask(ctx, "op_remove", maskSerial(op))
	switch {
	case errors.Is(err, hal.ErrCardRemoved):
		return "", nil
	case err != nil:
		return reason(err), err
	default: // * or D with the card still in
		a.show("op_closed")
		return "logout", errCancel
	}
}

// operatorSession runs assisted mode from an operator card in the slot.
func (a *App) operatorSession(ctx context.Context, card hal.Card, info hal.CardInfo) error {
	if !cms.OperatorSerial(info.Serial) {
		a.log.Warn("operator card refused", "reason", "serial_level")
		a.show("op_invalid")
		return errCancel
	}
	op := info.Serial
	if err := a.pinOn(ctx, card, "op_pin"); err != nil {
		if errors.Is(err, errBack) {
			a.show("cancelled")
			return errCancel
		}
		return err
	}
	card.Close() // the operator card is done with: the slot is for citizens now
	a.log.Info("operator session opened", "operator", maskSerial(op))
	end := func(why string, err error) error {
		a.log.Info("operator session closed", "operator", maskSerial(op), "reason", why)
		return err
	}

	if why, err := a.awaitOperatorOut(ctx, op); err != nil {
		return end(why, err)
	}

	probe := false // a card may have come in while a flow ran with the slot empty
	for {
		draw := func() { a.show("op_insert", maskSerial(op)) }
		draw()
		k, err := a.awaitInsert(ctx, "op_insert", draw, probe)
		probe = false
		switch {
		case errors.Is(err, errIdle):
			a.show("op_closed")
			return end("idle_timeout", errLogout)
		case err != nil:
			return end("error", err)
		case k == hal.KeyCancel || k == hal.KeyBack:
			a.show("op_closed")
			return end("logout", errLogout)
		case k == '1':
			// Revoca of a card that is not here (stolen, lost): its TEAM
			// code typed from the citizen's documents.
			err := a.revocationByTEAM(ctx, op)
			if errors.Is(err, errIdle) {
				a.show("op_closed")
				return end("idle_timeout", errLogout)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !errors.Is(err, errBack) {
				a.pause(ctx)
			}
			probe = true
			continue
		}
		err = a.assisted(ctx, op)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, hal.ErrCardRemoved):
			a.log.Info("assisted citizen done", "operator", maskSerial(op), "reason", "card_removed")
			continue
		case errors.Is(err, errIdle):
			// Nobody at the totem: the operator session ends with it.
			a.show("remove_card")
			return end("idle_timeout", errIdle)
		}
		a.log.Info("assisted citizen done", "operator", maskSerial(op), "reason", reason(err))
		if a.awaitRemoval(ctx) {
			return ctx.Err()
		}
	}
}

// awaitInsert waits, the slot empty, for a card (k == 0) or a key screen
// name binds. With probe, a card already in the slot counts as inserted.
// OperatorTimeout without either ends it with errIdle.
func (a *App) awaitInsert(ctx context.Context, name string, redraw func(), probe bool) (hal.Key, error) {
	if probe {
		if c, err := a.dev.Reader.Connect(ctx); err == nil {
			c.Close()
			return 0, nil
		}
	}
	timer := time.NewTimer(a.o.OperatorTimeout)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case ev := <-a.cards:
			switch ev.Kind {
			case hal.CardInserted:
				return 0, nil
			case 0:
				redraw() // the reader's state changed
			}
		case k := <-a.keys:
			if screens.Bound(name, k) {
				return k, nil
			}
			timer.Reset(a.o.OperatorTimeout)
		case <-timer.C:
			return 0, errIdle
		case <-a.tick:
			a.alive()
		}
	}
}

// pause leaves an outcome screen up until a key, or the idle timeout.
func (a *App) pause(ctx context.Context) {
	t := time.NewTimer(a.o.IdleTimeout)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.keys:
			return
		case <-t.C:
			return
		case <-a.tick:
			a.alive()
		}
	}
}

// assisted serves the citizen whose card was just inserted, for operator op.
func (a *App) assisted(ctx context.Context, op string) error {
	a.show("reading")
	card, err := a.dev.Reader.Connect(ctx)
	if err != nil {
		return a.cardError(err)
	}
	info, err := card.Info(ctx)
	card.Close() // assisted operations need no PIN: only the chip's data
	if err != nil {
		return a.cardError(err)
	}
	if info.Class == hal.ClassOperator {
		a.log.Info("assisted card refused", "reason", "operator_card")
		a.show("op_not_citizen")
		return errCancel
	}
	if !info.Expiry.IsZero() && time.Now().After(info.Expiry.AddDate(0, 0, 1)) {
		return a.cardError(hal.ErrCardExpired)
	}
	page := "op_menu"
	for {
		k, err := a.ask(ctx, page, MaskCF(info.CF))
		if err != nil {
			return err
		}
		kind, isOp := opMenu[k]
		switch {
		case isOp:
			err = kindSpecs[kind].assisted(a, ctx, op, info)
		case k == hal.KeyOK: // the other page
			page = map[string]string{"op_menu": "op_menu_2", "op_menu_2": "op_menu"}[page]
			continue
		case k == hal.KeyBack:
			if page == "op_menu_2" {
				page = "op_menu"
				continue
			}
			fallthrough
		default: // D, or * on the first page: this citizen is done
			a.show("remove_card")
			return errCancel
		}
		if !errors.Is(err, errBack) {
			return err
		}
	}
}

// choose shows screen name and returns the key pressed: * is errBack,
// D cancels (errCancel).
func (a *App) choose(ctx context.Context, name string, args ...any) (hal.Key, error) {
	k, err := a.ask(ctx, name, args...)
	switch {
	case err != nil:
		return 0, err
	case k == hal.KeyBack:
		return 0, errBack
	case k == hal.KeyCancel:
		a.show("cancelled")
		return 0, errCancel
	}
	return k, nil
}

// notice shows an explanation until # (go on) or * (also go on, as a
// Back to the step that caused it); D cancels.
func (a *App) notice(ctx context.Context, name string, args ...any) error {
	_, err := a.choose(ctx, name, args...)
	if errors.Is(err, errBack) {
		return nil
	}
	return err
}

// errSkip is a step of a form that does not apply.
var errSkip = errors.New("firmware: step not needed")

// steps runs the steps of a form in order. A step returning errBack goes
// to the previous one (from the first, errBack is returned); one returning
// errSkip is passed over in the direction of travel; any other error ends
// the form.
func steps(fns ...func() error) error {
	for i, dir := 0, 1; i < len(fns); {
		err := fns[i]()
		switch {
		case err == nil:
			i, dir = i+1, 1
		case errors.Is(err, errSkip):
			i += dir
		case errors.Is(err, errBack):
			i, dir = i-1, -1
		default:
			return err
		}
		if i < 0 {
			return errBack
		}
	}
	return nil
}

// Multi-tap tables: key n types tap[n][0], pressed again at once the next
// character, cycling. C closes the character, so that two in a row from
// one key can be typed.
var (
	tapUpper = [10]string{"0", "1", "ABC2", "DEF3", "GHI4", "JKL5", "MNO6", "PQRS7", "TUV8", "WXYZ9"}
	tapName  = [10]string{" ", "'-", "ABC", "DEF", "GHI", "JKL", "MNO", "PQRS", "TUV", "WXYZ"}
	tapEmail = [10]string{"0", ".@-_1", "abc2", "def3", "ghi4", "jkl5", "mno6", "pqrs7", "tuv8", "wxyz9"}
)

// text reads a text by multi-tap on the "text" screen titled by the
// catalogue text title: # confirms once min characters are there, *
// deletes the last one or goes back, D cancels.
func (a *App) text(ctx context.Context, title string, tap *[10]string, min, max int) (string, error) {
	var buf []byte
	last, n := hal.Key(0), 0 // the key being cycled and its presses
	for {
		shown := string(buf)
		if last == 0 {
			shown += "_"
		}
		if len(shown) > 20 {
			shown = shown[len(shown)-20:]
		}
		k, err := a.ask(ctx, "text", a.o.Lang.Text(title), shown)
		if err != nil {
			return "", err
		}
		switch {
		case k >= '0' && k <= '9':
			set := tap[k-'0']
			if k == last {
				n++
				buf[len(buf)-1] = set[n%len(set)]
				continue
			}
			if len(buf) < max {
				buf = append(buf, set[0])
				last, n = k, 0
			}
		case k == 'C':
			last = 0
		case k == hal.KeyBack:
			last = 0
			if len(buf) == 0 {
				return "", errBack
			}
			buf = buf[:len(buf)-1]
		case k == hal.KeyCancel:
			a.show("cancelled")
			return "", errCancel
		case k == hal.KeyOK && len(strings.TrimSpace(string(buf))) >= min:
			return strings.TrimSpace(string(buf)), nil
		}
	}
}

// presenter is who stands at the counter: the holder, or a delegate for
// them, with the identity document the operator checked.
type presenter struct {
	deleg *cms.Delegation // nil: the holder in person
	doc   cms.IDDocument
}

var delegKeys = map[hal.Key]string{'2': cms.DelegParental, '3': cms.DelegTutor, '4': cms.DelegCurator}

// docTypes are the identity documents by key, with the issuing authority
// recorded for each (the operator does not type it).
var docTypes = map[hal.Key][2]string{
	'1': {cms.DocIdentityCard, "Comune"},
	'2': {cms.DocCIE, "Ministero dell'Interno"},
	'3': {cms.DocLicence, "Motorizzazione civile"},
	'4': {cms.DocPassport, "Questura"},
}

// minor reports whether the holder born on birth is under 18 at now
// (unknown birth date: false).
func minor(birth, now time.Time) bool {
	return !birth.IsZero() && now.Before(birth.AddDate(18, 0, 0))
}

// whoSteps are the steps that say who is at the counter: direct or by
// delegation (the delegate's name and CF by multi-tap), the identity
// document of the person present, and the operator's confirmation of the
// identity checks. holder is what the check screen shows of the holder.
func (a *App) whoSteps(ctx context.Context, info hal.CardInfo, holder string, p *presenter) []func() error {
	return append(a.delegateSteps(ctx, info, p), a.docSteps(ctx, holder, p)...)
}

// delegateSteps ask whether the holder is there in person or a delegate
// for them, and the delegate's name and CF.
func (a *App) delegateSteps(ctx context.Context, info hal.CardInfo, p *presenter) []func() error {
	return []func() error{
		func() error {
			for {
				k, err := a.choose(ctx, "who")
				if err != nil {
					return err
				}
				if k == '1' {
					p.deleg = nil
					return nil
				}
				kind := delegKeys[k]
				if kind == cms.DelegParental && !info.BirthDate.IsZero() && !minor(info.BirthDate, time.Now()) {
					if err := a.notice(ctx, "parental_adult"); err != nil {
						return err
					}
					continue
				}
				if p.deleg == nil || p.deleg.Kind != kind {
					p.deleg = &cms.Delegation{Kind: kind}
				}
				return nil
			}
		},
		func() error {
			if p.deleg == nil {
				return errSkip
			}
			name, err := a.text(ctx, "t_deleg_name", &tapName, 2, 40)
			if err == nil {
				p.deleg.Name = name
			}
			return err
		},
		func() error {
			if p.deleg == nil {
				return errSkip
			}
			for {
				cf, err := a.text(ctx, "t_deleg_cf", &tapUpper, 16, 16)
				if err != nil {
					return err
				}
				switch {
				case !cms.ValidCF(cf):
					err = a.notice(ctx, "cf_invalid")
				case cf == info.CF:
					err = a.notice(ctx, "cf_holder")
				default:
					p.deleg.CF = cf
					return nil
				}
				if err != nil {
					return err
				}
			}
		},
	}
}

// docSteps read the identity document of the person present and take the
// operator's confirmation that it matches them and the holder's data.
func (a *App) docSteps(ctx context.Context, holder string, p *presenter) []func() error {
	return []func() error{
		func() error {
			k, err := a.choose(ctx, "doc_type")
			if err != nil {
				return err
			}
			t := docTypes[k]
			p.doc.Type, p.doc.Issuer = t[0], t[1]
			return nil
		},
		func() error {
			n, err := a.text(ctx, "t_doc_number", &tapUpper, 5, 20)
			if err == nil {
				p.doc.Number = n
			}
			return err
		},
		func() error {
			for {
				b, err := a.enter(ctx, "doc_expiry", 8, 8, false)
				if err != nil {
					return err
				}
				d, perr := time.Parse("02012006", string(b))
				switch {
				case perr != nil:
					err = a.notice(ctx, "date_invalid")
				case !time.Now().Before(d.AddDate(0, 0, 1)):
					a.log.Info("identity document refused", "reason", "expired")
					err = a.notice(ctx, "doc_expired")
				default:
					p.doc.Expiry = d.Format(time.DateOnly)
					return nil
				}
				if err != nil {
					return err
				}
			}
		},
		func() error {
			// Seed 002: the document against the person, then against the
			// holder's data; a mismatch ends the procedure.
			k, err := a.choose(ctx, "id_check", holder)
			if err != nil {
				return err
			}
			if k == '2' {
				a.log.Info("identity check failed")
				return a.refuse(ctx, "id_mismatch")
			}
			p.doc.Checked = true
			return nil
		},
	}
}

// via is how the citizen at the totem is identified for an operation:
// self-service by the card's PIN on the chip (op empty, no steps: the
// caller asked for the PIN), assisted by an operator who checked an
// identity document (op is the operator card's serial, steps ask for it).
type via struct {
	op    string
	p     presenter
	steps []func() error // who is at the counter, their document, the check
}

// byOperator is the citizen served by operator op. The identity document
// the operator checks stands in for the card's PIN, as at the counter of
// seed 002; with deleg a delegate may act for the holder.
func (a *App) byOperator(ctx context.Context, op string, info hal.CardInfo, deleg bool) *via {
	v := &via{op: op}
	if deleg {
		v.steps = a.whoSteps(ctx, info, holderLine(info), &v.p)
	} else {
		v.steps = a.docSteps(ctx, holderLine(info), &v.p)
	}
	return v
}

func (v *via) channel() string {
	if v.op == "" {
		return cms.SelfService
	}
	return cms.Assisted
}

// document is the identity document the operator checked (nil self-service).
func (v *via) document() *cms.IDDocument {
	if v.op == "" {
		return nil
	}
	d := v.p.doc
	return &d
}

// lines are the receipt's lines on who asked (none self-service).
func (v *via) lines() []string {
	if v.op == "" {
		return nil
	}
	return requesterLines(v.p.deleg, v.p.doc, v.op)
}

// logOp records an assisted operation with the masked operator.
func (a *App) logOp(v *via, kind string) {
	if v.op != "" {
		a.log.Info("assisted op", "kind", kind, "operator", maskSerial(v.op))
	}
}

// refuse pages a refusal text and ends the operation (errCancel unless
// the operator cancels otherwise).
func (a *App) refuse(ctx context.Context, key string) error {
	if err := a.pages(ctx, hal.Wrap(a.o.Lang.Text(key), 20)); err != nil && !errors.Is(err, errBack) {
		return err
	}
	return errCancel
}

// holderLine is the holder as the identity-check screen shows them.
func holderLine(info hal.CardInfo) string {
	return fit20(strings.TrimSpace(info.Surname + " " + info.Name))
}

var revokeReasons = map[hal.Key]string{'1': cms.ReasonTheft, '2': cms.ReasonLoss, '3': cms.ReasonMalfunction}

// revocationByTEAM is Revoca of a card that is not in the slot: its
// 20-digit TEAM code typed by the operator.
func (a *App) revocationByTEAM(ctx context.Context, op string) error {
	if !a.reachable(cms.KindRevocation) {
		return errUnavailable
	}
	for {
		b, err := a.enter(ctx, "team", 20, 20, false)
		if err != nil {
			return err
		}
		team := string(b)
		if !validTEAM(team) {
			if err := a.notice(ctx, "team_invalid"); err != nil {
				return err
			}
			continue
		}
		err = a.revocation(ctx, op, hal.CardInfo{}, team)
		if !errors.Is(err, errBack) {
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

// revocation is Revoca, assisted: the reason, who asks and their document,
// the identity check, the summary (a new card is requested with it), the
// CMS's answer, the receipt. The card is the one in the slot (info) or the
// one of the TEAM code team.
func (a *App) revocation(ctx context.Context, op string, info hal.CardInfo, team string) error {
	if !a.reachable(cms.KindRevocation) {
		return errUnavailable
	}
	req := cms.RevocationRequest{Channel: cms.Assisted, Operator: op}
	holder := holderLine(info)
	if team != "" {
		req.TEAM = team
		holder = "TEAM ..." + team[12:]
	} else {
		req.Card = cardRef(info)
	}
	var p presenter
	fns := []func() error{func() error {
		k, err := a.choose(ctx, "revoke_reason")
		if err == nil {
			req.Reason = revokeReasons[k]
		}
		return err
	}}
	fns = append(fns, a.whoSteps(ctx, info, holder, &p)...)
	fns = append(fns, func() error {
		_, err := a.choose(ctx, "revoke_summary", a.o.Lang.Text("reason_"+req.Reason))
		return err
	})
	if err := steps(fns...); err != nil {
		return err
	}
	req.Delegate, req.Document = p.deleg, &p.doc
	payload, err := json.Marshal(req)
	if err != nil {
		return err
	}
	a.log.Info("assisted op", "kind", cms.KindRevocation, "operator", maskSerial(op))
	e, err := a.submit(ctx, cms.KindRevocation, payload)
	if err != nil {
		return err
	}
	if rejected(e) {
		return a.showRejection(ctx, e)
	}
	var res cms.RevocationResult
	if err := json.Unmarshal(e.Result.Data, &res); err != nil || res.Reason == "" {
		a.log.Error("revocation result", "op_id", e.ID, "err", err)
		a.show("unavailable")
		return fmt.Errorf("firmware: revocation result: %w", errors.Join(err, errNoAnswer))
	}
	return a.finishKind(ctx, e, cms.KindRevocation, info, revocationAssistedLines(res, p.deleg, p.doc, op))
}
