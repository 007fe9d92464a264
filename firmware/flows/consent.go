package flows

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/firmware/screens"
	"github.com/aslcns/totem/hal"
)

// Consent is the Consensi FSE flow, self-service: PIN, then ConsentVia.
func Consent(ctx context.Context, dk *Desk, card hal.Card, info hal.CardInfo) error {
	if err := dk.pin(ctx, card); err != nil {
		return err
	}
	return ConsentVia(ctx, dk, info, &Via{})
}

// ConsentVia is Consensi FSE for the citizen identified by v: v's steps,
// one screen per consent of the policy, summary, durable enqueue, receipt.
func ConsentVia(ctx context.Context, dk *Desk, info hal.CardInfo, v *Via) error {
	pol := dk.t.Policy()
	var values []bool
	err := steps(append(slices.Clip(v.steps), func() (err error) {
		values, err = askConsents(ctx, dk, pol)
		return err
	})...)
	if err != nil {
		return err
	}

	req := cms.ConsentRequest{Card: CardRef(info), Policy: pol.ID, Channel: v.channel(), Operator: v.op}
	for i, c := range pol.Consents {
		req.Consents = append(req.Consents, cms.Consent{Code: c.Code, Given: values[i]})
	}
	payload, err := json.Marshal(req)
	if err != nil {
		return err
	}
	dk.logOp(v, cms.KindConsent)
	dk.show("saving")
	e, err := dk.submit(ctx, cms.KindConsent, payload)
	if err != nil {
		return err
	}
	lines := make([]string, len(pol.Consents))
	for i, c := range pol.Consents {
		label := c.Label // the CMS's wording, Italian
		if t := dk.lang.Text(c.Code); dk.lang != screens.IT && t != c.Code {
			label = t // the catalogue's, in the language chosen
		}
		lines[i] = label + ": " + strings.ToUpper(dk.yesNo(values[i]))
	}
	return dk.finishKind(ctx, e, cms.KindConsent, info, append(lines, v.lines()...))
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
		label := dk.lang.Text(pol.Consents[i].Code)
		if label == pol.Consents[i].Code {
			label = pol.Consents[i].Label
		}
		lines := append(hal.Wrap(label, 20), "", "")
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
		label := dk.lang.Text("short_" + c.Code)
		if strings.HasPrefix(label, "short_") {
			label = c.Code
		}
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
