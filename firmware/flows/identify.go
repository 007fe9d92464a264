package flows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/aslcns/totem/cms"
	layout "github.com/aslcns/totem/firmware/receipts"
	"github.com/aslcns/totem/hal"
)

// choose shows screen name and returns the key pressed: * is ErrBack,
// D cancels (ErrCancel).
func (dk *Desk) choose(ctx context.Context, name string, args ...any) (hal.Key, error) {
	k, err := dk.Ask(ctx, name, args...)
	switch {
	case err != nil:
		return 0, err
	case k == hal.KeyBack:
		return 0, ErrBack
	case k == hal.KeyCancel:
		dk.show("cancelled")
		return 0, ErrCancel
	}
	return k, nil
}

// notice shows an explanation until # (go on) or * (also go on, as a
// Back to the step that caused it); D cancels.
func (dk *Desk) notice(ctx context.Context, name string, args ...any) error {
	_, err := dk.choose(ctx, name, args...)
	if errors.Is(err, ErrBack) {
		return nil
	}
	return err
}

// errSkip is a step of a form that does not apply.
var errSkip = errors.New("firmware: step not needed")

// steps runs the steps of a form in order. A step returning ErrBack goes
// to the previous one (from the first, ErrBack is returned); one returning
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
		case errors.Is(err, ErrBack):
			i, dir = i-1, -1
		default:
			return err
		}
		if i < 0 {
			return ErrBack
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

// hints name the hint row of each multi-tap table.
var hints = map[*[10]string]string{&tapUpper: "hint_upper", &tapName: "hint_name", &tapEmail: "hint_email"}

// text reads a text on the "text" screen titled by the catalogue text
// title, at a cursor: by multi-tap on the keypad (tap) or typed on a
// keyboard (assisted mode: only the characters tap can type, in its
// case). A and B (a keyboard's arrows) move the cursor, * deletes the
// character before it — or goes back when there is none —, a keyboard's
// Del the one under it: a wrong letter of a CF is corrected where it is,
// not the whole text typed again. It starts from init (what was typed
// before, when the step is shown again), the cursor at its end. #
// confirms once least characters are there, D cancels.
func (dk *Desk) text(ctx context.Context, title string, tap *[10]string, least, most int, init string) (string, error) {
	buf := []byte(init)
	cur := len(buf)
	last, n := hal.Key(0), 0 // the key being cycled and its presses
	upper := tap[2][0] == 'A'
	for {
		k, err := dk.Ask(ctx, "text", dk.lang.Text(title), textRow(buf, cur, last != 0), dk.hint(tap, last, n))
		if err != nil {
			return "", err
		}
		if k >= '0' && k <= '9' {
			set := tap[k-'0']
			if k == last {
				n++
				buf[cur-1] = set[n%len(set)]
			} else if len(buf) < most {
				buf = slices.Insert(buf, cur, set[0])
				cur++
				last, n = k, 0
			}
			continue
		}
		last = 0
		switch {
		case k == 'A' || k == hal.KeyLeft:
			cur = max(0, cur-1)
		case k == 'B' || k == hal.KeyRight:
			cur = min(len(buf), cur+1)
		case k == hal.KeyDelete:
			if cur < len(buf) {
				buf = slices.Delete(buf, cur, cur+1)
			}
		case k == hal.KeyBack:
			if len(buf) == 0 {
				return "", ErrBack
			}
			if cur > 0 {
				buf = slices.Delete(buf, cur-1, cur)
				cur--
			}
		case k == hal.KeyCancel:
			dk.show("cancelled")
			return "", ErrCancel
		case k == hal.KeyOK && len(strings.TrimSpace(string(buf))) >= least:
			return strings.TrimSpace(string(buf)), nil
		default:
			c, ok := k.Char()
			if !ok || len(buf) >= most {
				continue
			}
			if upper {
				c = byte(unicode.ToUpper(rune(c)))
			} else {
				c = byte(unicode.ToLower(rune(c)))
			}
			if strings.IndexByte(strings.Join(tap[:], ""), c) >= 0 {
				buf = slices.Insert(buf, cur, c)
				cur++
			}
		}
	}
}

// textRow is the text as the display's 20 columns show it: '_' marks the
// cursor (not while a letter is cycled: the letter is the cursor), and a
// long text scrolls to keep the cursor in view.
func textRow(buf []byte, cur int, cycling bool) string {
	s, pos := string(buf), cur
	if cycling {
		pos = cur - 1
	} else {
		s = s[:cur] + "_" + s[cur:]
	}
	start := max(0, pos-19)
	return s[start:min(len(s), start+20)]
}

// hint is the hint row: while key last is cycled, its letters with the
// one typed now in brackets; otherwise what the table's 0 and 1 type and
// the cursor keys.
func (dk *Desk) hint(tap *[10]string, last hal.Key, n int) string {
	if last == 0 {
		return dk.lang.Text(hints[tap])
	}
	set := tap[last-'0']
	i := n % len(set)
	return fmt.Sprintf("%c: %s[%c]%s %s", last, set[:i], set[i], set[i+1:], dk.lang.Text("hint_next"))
}

// presenter is who stands at the counter: the holder, or a delegate for
// them, with the identity document the operator checked.
type presenter struct {
	deleg *cms.Delegation // nil: the holder in person
	doc   cms.IDDocument
	// op is the operator's serial and ref (or team, for a card not in
	// the slot) the card whose CMS record the operator compares with the
	// document (seed 002, step 5); looked is that record once read.
	op     string
	ref    cms.CardRef
	team   string
	looked *cms.LookupResult
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
func whoSteps(ctx context.Context, dk *Desk, info hal.CardInfo, holder string, p *presenter) []func() error {
	return append(delegateSteps(ctx, dk, info, p), docSteps(ctx, dk, holder, p)...)
}

// delegateSteps ask whether the holder is there in person or a delegate
// for them, and the delegate's name and CF.
func delegateSteps(ctx context.Context, dk *Desk, info hal.CardInfo, p *presenter) []func() error {
	return []func() error{
		func() error {
			for {
				k, err := dk.choose(ctx, "who")
				if err != nil {
					return err
				}
				if k == '1' {
					p.deleg = nil
					return nil
				}
				kind := delegKeys[k]
				if kind == cms.DelegParental && !info.BirthDate.IsZero() && !minor(info.BirthDate, dk.now()) {
					if err := dk.notice(ctx, "parental_adult"); err != nil {
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
			name, err := dk.text(ctx, "t_deleg_name", &tapName, 2, 40, p.deleg.Name)
			if err == nil {
				p.deleg.Name = name
			}
			return err
		},
		func() error {
			if p.deleg == nil {
				return errSkip
			}
			cf := p.deleg.CF
			for {
				// A CF refused comes back to be corrected, not retyped.
				var err error
				if cf, err = dk.text(ctx, "t_deleg_cf", &tapUpper, 16, 16, cf); err != nil {
					return err
				}
				switch {
				case !cms.ValidCF(cf):
					err = dk.notice(ctx, "cf_invalid")
				case cf == info.CF:
					err = dk.notice(ctx, "cf_holder")
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
func docSteps(ctx context.Context, dk *Desk, holder string, p *presenter) []func() error {
	return []func() error{
		func() error {
			k, err := dk.choose(ctx, "doc_type")
			if err != nil {
				return err
			}
			t := docTypes[k]
			p.doc.Type, p.doc.Issuer = t[0], t[1]
			return nil
		},
		func() error {
			n, err := dk.text(ctx, "t_doc_number", &tapUpper, 5, 20, p.doc.Number)
			if err == nil {
				p.doc.Number = n
			}
			return err
		},
		func() error {
			d, err := dk.enterExpiry(ctx, "doc_expiry", "doc_expired", "identity document refused")
			if err == nil {
				p.doc.Expiry = d.Format(time.DateOnly)
			}
			return err
		},
		func() error {
			// Seed 002: the document against the person, then against the
			// holder's data the CMS shows (step 5), or the chip's when the
			// CMS cannot be asked; for a delegate, the name typed for them
			// (the document is theirs, the CMS's record the holder's); a
			// mismatch ends the procedure.
			rec, err := dk.lookup(ctx, p)
			if err != nil {
				return err
			}
			var k hal.Key
			switch {
			case p.deleg != nil:
				k, err = dk.choose(ctx, "id_check_deleg", fit20(p.deleg.Name))
			case rec != nil:
				born := "-" // not in the CMS's record
				if rec.BirthDate != "" {
					born = layout.DateIT(rec.BirthDate)
				}
				k, err = dk.choose(ctx, "id_check_cms", fit20("CMS: "+strings.TrimSpace(rec.Surname+" "+rec.Name)), born)
			default:
				k, err = dk.choose(ctx, "id_check", holder)
			}
			if err != nil {
				return err
			}
			if k == '2' {
				dk.log.Info("identity check failed")
				return dk.refuse(ctx, "id_mismatch")
			}
			p.doc.Checked = true
			return nil
		},
	}
}

// lookup reads the CMS's record of p's card for the second identity check,
// once per presenter. It returns nil when the check falls back on the
// chip's data: no operator (nothing to ask), or the CMS out of reach (a
// queueable operation goes on; the CMS checks the card's data again when
// it applies it). A card the CMS does not know as the chip says sends the
// citizen to the sportello Scelta e Revoca and ends the operation.
func (dk *Desk) lookup(ctx context.Context, p *presenter) (*cms.LookupResult, error) {
	if p.op == "" || p.looked != nil {
		return p.looked, nil
	}
	if dk.online != nil && !dk.online() {
		dk.log.Info("identity check on the chip's data", "reason", "offline")
		return nil, dk.notice(ctx, "cms_unreachable")
	}
	payload, err := json.Marshal(cms.LookupRequest{Card: p.ref, TEAM: p.team, Channel: cms.Assisted, Operator: p.op})
	if err != nil {
		return nil, err
	}
	e, err := dk.submit(ctx, cms.KindLookup, payload)
	switch {
	case errors.Is(err, ErrNoAnswer), errors.Is(err, ErrBack):
		dk.log.Info("identity check on the chip's data", "reason", "no_answer")
		return nil, dk.notice(ctx, "cms_unreachable")
	case err != nil:
		return nil, err
	case rejected(e):
		if err := dk.ShowRejection(ctx, e); err != nil && !errors.Is(err, ErrBack) {
			return nil, err
		}
		return nil, ErrCancel
	}
	var rec cms.LookupResult
	if err := json.Unmarshal(e.Result.Data, &rec); err != nil || rec.Surname == "" {
		dk.log.Warn("lookup result", "op_id", e.ID, "err", err)
		return nil, dk.notice(ctx, "cms_unreachable")
	}
	p.looked = &rec
	return p.looked, nil
}

// Via is how the citizen at the totem is identified for an operation:
// self-service by the card's PIN on the chip (op empty, no steps: the
// caller asked for the PIN), assisted by an operator who checked an
// identity document (op is the operator card's serial, steps ask for it).
type Via struct {
	op    string
	p     presenter
	steps []func() error // who is at the counter, their document, the check
}

// ByOperator is the citizen served by operator op. The identity document
// the operator checks stands in for the card's PIN, as at the counter of
// seed 002; with deleg a delegate may act for the holder.
func ByOperator(ctx context.Context, dk *Desk, op string, info hal.CardInfo, deleg bool) *Via {
	v := &Via{op: op}
	v.p.op, v.p.ref = op, CardRef(info)
	if deleg {
		v.steps = whoSteps(ctx, dk, info, holderLine(info), &v.p)
	} else {
		v.steps = docSteps(ctx, dk, holderLine(info), &v.p)
	}
	return v
}

// attendance is how the request is made: self-service (no operator, no
// document), or assisted with the identity document the operator checked.
func (v *Via) attendance() cms.Attendance {
	if v.op == "" {
		return cms.Attendance{Channel: cms.SelfService}
	}
	d := v.p.doc
	return cms.Attendance{Channel: cms.Assisted, Operator: v.op, Document: &d}
}

// lines are the receipt's lines on who asked (none self-service).
func (v *Via) lines(f layout.Frame) []string {
	if v.op == "" {
		return nil
	}
	return f.Requester(v.p.deleg, v.p.doc, v.op)
}

// logOp records an assisted operation with the masked operator.
func (dk *Desk) logOp(v *Via, kind string) {
	if v.op != "" {
		dk.log.Info("assisted op", "kind", kind, "operator", layout.MaskSerial(v.op))
	}
}

// refuse pages a refusal text and ends the operation (ErrCancel unless
// the operator cancels otherwise).
func (dk *Desk) refuse(ctx context.Context, key string) error {
	if err := dk.Pages(ctx, hal.Wrap(dk.lang.Text(key), 20)); err != nil && !errors.Is(err, ErrBack) {
		return err
	}
	return ErrCancel
}

// holderLine is the holder as the identity-check screen shows them.
func holderLine(info hal.CardInfo) string {
	return fit20(strings.TrimSpace(info.Surname + " " + info.Name))
}

// enterExpiry asks for an expiry date (GGMMAAAA) on screen until it is a
// date and not past: a bad one gets date_invalid, a past one the notice
// expired, logged with refused (no date in the log).
func (dk *Desk) enterExpiry(ctx context.Context, screen, expired, refused string) (time.Time, error) {
	for {
		b, err := dk.enter(ctx, screen, 8, 8, false)
		if err != nil {
			return time.Time{}, err
		}
		d, perr := time.Parse("02012006", string(b))
		switch {
		case perr != nil:
			err = dk.notice(ctx, "date_invalid")
		case !dk.now().Before(d.AddDate(0, 0, 1)):
			dk.log.Info(refused, "reason", "expired")
			err = dk.notice(ctx, expired)
		default:
			return d, nil
		}
		if err != nil {
			return time.Time{}, err
		}
	}
}
