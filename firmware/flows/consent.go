package flows

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
)

// Consent is the Consensi FSE flow, self-service: PIN, then ConsentVia.
func Consent(ctx context.Context, dk *Desk, card hal.Card, info hal.CardInfo) error {
	if err := dk.pin(ctx, card); err != nil {
		return err
	}
	return ConsentVia(ctx, dk, info, &Via{})
}

// ConsentVia is Consensi FSE for the citizen identified by v: the
// informativa (printable), v's steps (who gives them, directly or by
// delegation, and the document), one screen per consent of the policy,
// summary, for a delegate the dichiarazione sostitutiva printed and
// signed, durable enqueue, receipt with what became of the FSE.
func ConsentVia(ctx context.Context, dk *Desk, info hal.CardInfo, v *Via) error {
	pol := dk.t.Policy()
	var values []bool
	declared := false
	// The citizen reads the informativa first (seed 002, step 1), at the
	// totem as at the counter.
	fns := append([]func() error{func() error { return informativa(ctx, dk, pol) }}, v.steps...)
	fns = append(fns, func() (err error) {
		values, err = askConsents(ctx, dk, pol)
		return err
	}, func() error {
		if declared = false; v.p.deleg == nil {
			return errSkip
		}
		err := dk.signDeclaration(ctx, cms.KindConsent, info, &v.p)
		declared = err == nil
		return err
	})
	if err := steps(fns...); err != nil {
		return err
	}

	req := cms.ConsentRequest{Card: CardRef(info), Policy: pol.ID, Attendance: v.attendance(),
		Delegate: v.p.deleg, Declaration: declared}
	for i, c := range pol.Consents {
		req.Consents = append(req.Consents, cms.Consent{Code: c.Code, Given: values[i]})
	}
	e, err := save(ctx, dk, v, cms.KindConsent, req)
	if err != nil {
		return err
	}
	lines := make([]string, len(pol.Consents))
	for i, c := range pol.Consents {
		label := dk.lang.Text("rcpt_" + c.Code) // one name everywhere, in the session's language
		if label == "rcpt_"+c.Code {
			label = c.Label // a policy newer than the catalogue
		}
		lines[i] = label + ": " + strings.ToUpper(dk.yesNo(values[i]))
	}
	lines = append(lines, v.lines(dk.t.Frame())...)
	if declared {
		lines = append(lines, dk.t.Frame().Declared())
	}
	if e.Done && !rejected(e) {
		var res cms.ConsentResult
		if err := json.Unmarshal(e.Result.Data, &res); err != nil {
			dk.log.Warn("consent result", "op_id", e.ID, "err", err) // the receipt goes without it
		}
		lines = append(lines, dk.t.Frame().FSE(res)...)
	}
	return dk.finishKind(ctx, e, cms.KindConsent, info, lines)
}

// informativa asks the citizen to read the notice on the FSE before the
// consents (seed 002, step 1), and prints it on 1; # goes on.
func informativa(ctx context.Context, dk *Desk, pol cms.Policy) error {
	for {
		k, err := dk.choose(ctx, "fse_info")
		if err != nil || k == hal.KeyOK {
			return err
		}
		dk.show("printing")
		if err := dk.print(ctx, dk.t.Frame().Informativa(pol), ""); err != nil {
			if err := dk.notice(ctx, "info_not_printed", dk.printerText(err)); err != nil {
				return err
			}
		}
	}
}

// askConsents asks each consent of pol in turn, then shows the summary;
// Back moves to the previous screen all the way to the menu.
func askConsents(ctx context.Context, dk *Desk, pol cms.Policy) ([]bool, error) {
	values := make([]bool, len(pol.Consents))
	for i := 0; ; {
		if i == len(pol.Consents) {
			draw := func() { showSummary(dk, pol, values) }
			draw()
			k, err := dk.key(ctx, "summary", draw)
			if err != nil {
				return nil, err
			}
			switch k {
			case hal.KeyOK:
				return values, nil
			case hal.KeyBack: // to the last consent
				i--
			case hal.KeyCancel:
				dk.show("cancelled")
				return nil, ErrCancel
			}
			continue
		}
		// The consent's one name and its one-row explanation; a code
		// the catalogue does not know shows the policy's label.
		code := pol.Consents[i].Code
		lines := []string{dk.lang.Text(code), dk.lang.Text("why_" + code)}
		if lines[0] == code {
			lines = append(hal.Wrap(pol.Consents[i].Label, 20), "", "")
		}
		k, err := dk.Ask(ctx, "consent", i+1, len(pol.Consents), lines[0], lines[1])
		if err != nil {
			return nil, err
		}
		switch k {
		case '1', '2':
			values[i] = k == '1'
			i++
		case hal.KeyBack:
			if i == 0 {
				return nil, ErrBack
			}
			i--
		case hal.KeyCancel:
			dk.show("cancelled")
			return nil, ErrCancel
		}
	}
}

func showSummary(dk *Desk, pol cms.Policy, values []bool) {
	rows := dk.lang.Screen("summary")
	body := make([]string, 0, 3)
	for i, c := range pol.Consents {
		label := dk.lang.Text(c.Code)
		body = append(body, fmt.Sprintf("%s: %s", label, dk.yesNo(values[i])))
	}
	// The header gives way when the consents need its row.
	if len(body) >= 3 {
		rows = append(body[:3], rows[3])
	} else {
		copy(rows[1:3], body)
	}
	dk.t.Display(rows)
}
