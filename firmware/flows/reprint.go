package flows

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
)

var reprintKeys = map[hal.Key]string{
	'1': cms.ReprintForgotten, '2': cms.ReprintLost, '3': cms.ReprintNotReceived, '4': cms.ReprintBlocked,
}

// Reprint is Ristampa PIN/PUK, self-service with the card in the reader:
// no PIN is asked (it may be what was forgotten); ReprintVia.
func Reprint(ctx context.Context, dk *Desk, info hal.CardInfo) error {
	return ReprintVia(ctx, dk, info, &Via{})
}

// ReprintVia is Ristampa PIN/PUK for the citizen identified by v (seed
// 001, "Come si ristampa"): the reason, then v's steps (who asks, in
// person or by delegation, and their document, checked against the CMS's
// record); at the counter, where the second halves go — the contact on
// file, which the CMS's record shows, or a new SMS number or e-mail —;
// a summary confirmed with # before anything is sent or printed; the
// CMS's answer, the receipt with the first halves.
func ReprintVia(ctx context.Context, dk *Desk, info hal.CardInfo, v *Via) error {
	if err := dk.Reachable(ctx, cms.KindReprint); err != nil {
		return err
	}
	var reason string
	var contact *cms.Contact // nil: the one on file
	fns := append([]func() error{func() error {
		k, err := dk.choose(ctx, "reprint_reason")
		reason = reprintKeys[k]
		return err
	}}, v.steps...)
	fns = append(fns, func() error {
		if v.op == "" {
			return errSkip // self-service: the contact on file, unseen
		}
		k, err := dk.choose(ctx, "reprint_channel", fit20(onFile(dk, v.p.looked)))
		switch {
		case err != nil:
			return err
		case k == '1':
			contact = nil
		default:
			ch := map[hal.Key]string{'2': cms.ContactSMS, '3': cms.ContactEmail}[k]
			if contact == nil || contact.Channel != ch {
				contact = &cms.Contact{Channel: ch}
			}
		}
		return nil
	}, func() error {
		if contact == nil {
			return errSkip
		}
		addr, err := askAddress(ctx, dk, contact.Channel, "")
		contact.Address = addr
		return err
	}, func() error {
		to := dk.lang.Text("on_file")
		if contact != nil {
			to = contact.Masked()
		} else if v.p.looked != nil && v.p.looked.Contact != "" {
			to = v.p.looked.Contact
		}
		if i := strings.IndexByte(to, ' '); len(to) > 20 && i > 0 {
			to = to[i+1:] // "e-mail m***@example.it": the address shows the channel
		}
		_, err := dk.choose(ctx, "reprint_summary", dk.lang.Text("rp_"+reason), fit20(to))
		return err
	})
	if err := steps(fns...); err != nil {
		return err
	}
	payload, err := json.Marshal(cms.ReprintRequest{Card: CardRef(info), Attendance: v.attendance(),
		Delegate: v.p.deleg, Reason: reason, Contact: contact})
	if err != nil {
		return err
	}
	dk.logOp(v, cms.KindReprint)
	e, shown, err := dk.submitShown(ctx, cms.KindReprint, payload)
	if shown || err != nil {
		return err
	}
	var res cms.ReprintResult
	if ok, _ := decode(dk, e, &res, func(r cms.ReprintResult) bool { return r.PINFirstHalf != "" }, "reprint result"); !ok {
		return errors.New("firmware: reprint result without codes")
	}
	return dk.finishKind(ctx, e, cms.KindReprint, info, append(dk.t.Frame().Reprint(reason, res), v.lines(dk.t.Frame())...))
}

// onFile is the contact on file as the CMS's record shows it (masked), or
// says there is none or it is unknown (no record read).
func onFile(dk *Desk, rec *cms.LookupResult) string {
	switch {
	case rec == nil:
		return dk.lang.Text("on_file")
	case rec.Contact == "":
		return dk.lang.Text("no_contact")
	}
	return rec.Contact
}
