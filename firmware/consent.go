package firmware

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
)

// consent is the Consensi FSE flow, self-service: PIN, then consentVia.
func (a *App) consent(ctx context.Context, card hal.Card, info hal.CardInfo) error {
	if err := a.pin(ctx, card); err != nil {
		return err
	}
	return a.consentVia(ctx, info, &via{})
}

// consentVia is Consensi FSE for the citizen identified by v: v's steps,
// one screen per consent of the policy, summary, durable enqueue, receipt.
func (a *App) consentVia(ctx context.Context, info hal.CardInfo, v *via) error {
	pol := a.Policy()
	var values []bool
	err := steps(append(slices.Clip(v.steps), func() (err error) {
		values, err = a.askConsents(ctx, pol)
		return err
	})...)
	if err != nil {
		return err
	}

	req := cms.ConsentRequest{Card: cardRef(info), Policy: pol.ID, Channel: v.channel(), Operator: v.op}
	for i, c := range pol.Consents {
		req.Consents = append(req.Consents, cms.Consent{Code: c.Code, Given: values[i]})
	}
	payload, err := json.Marshal(req)
	if err != nil {
		return err
	}
	a.logOp(v, cms.KindConsent)
	a.show("saving")
	e, err := a.submit(ctx, cms.KindConsent, payload)
	if err != nil {
		return err
	}
	lines := make([]string, len(pol.Consents))
	for i, c := range pol.Consents {
		lines[i] = c.Label + ": " + strings.ToUpper(a.yesNo(values[i]))
	}
	return a.finishKind(ctx, e, cms.KindConsent, info, append(lines, v.lines()...))
}

// askConsents asks each consent of pol in turn, then shows the summary;
// Back moves to the previous screen all the way to the menu.
func (a *App) askConsents(ctx context.Context, pol cms.Policy) ([]bool, error) {
	values := make([]bool, len(pol.Consents))
	for i := 0; ; {
		if i == len(pol.Consents) {
			draw := func() { a.showSummary(pol, values) }
			draw()
			k, err := a.key(ctx, "summary", draw)
			if err != nil {
				return nil, err
			}
			switch k {
			case hal.KeyOK:
				return values, nil
			case hal.KeyBack: // to the last consent
				i--
			case hal.KeyCancel:
				a.show("cancelled")
				return nil, errCancel
			}
			continue
		}
		label := a.o.Lang.Text(pol.Consents[i].Code)
		if label == pol.Consents[i].Code {
			label = pol.Consents[i].Label
		}
		lines := append(hal.Wrap(label, 20), "", "")
		k, err := a.ask(ctx, "consent", i+1, len(pol.Consents), lines[0], lines[1])
		if err != nil {
			return nil, err
		}
		switch k {
		case '1', '2':
			values[i] = k == '1'
			i++
		case hal.KeyBack:
			if i == 0 {
				return nil, errBack
			}
			i--
		case hal.KeyCancel:
			a.show("cancelled")
			return nil, errCancel
		}
	}
}

func (a *App) showSummary(pol cms.Policy, values []bool) {
	rows := a.o.Lang.Screen("summary")
	body := make([]string, 0, 3)
	for i, c := range pol.Consents {
		label := a.o.Lang.Text("short_" + c.Code)
		if strings.HasPrefix(label, "short_") {
			label = c.Code
		}
		body = append(body, fmt.Sprintf("%s: %s", label, a.yesNo(values[i])))
	}
	// The header gives way when the consents need its row.
	if len(body) >= 3 {
		rows = append(body[:3], rows[3])
	} else {
		copy(rows[1:3], body)
	}
	if err := a.dev.Display.Show(rows); err != nil {
		a.log.Warn("display", "err", err)
	}
}
