package flows

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aslcns/totem/cms"
	layout "github.com/aslcns/totem/firmware/receipts"
	"github.com/aslcns/totem/firmware/screens"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// pin asks for the card's PIN and verifies it on the chip. The digits
// live only in a buffer that is wiped before returning.
// Once verified, it holds for the rest of the session (Begin).
func (dk *Desk) pin(ctx context.Context, card hal.Card) error {
	if dk.verified {
		return nil
	}
	err := dk.PIN(ctx, card, "pin")
	dk.verified = err == nil
	return err
}

// PIN is pin with the prompt of screen name (the operator's card has
// its own).
func (dk *Desk) PIN(ctx context.Context, card hal.Card, name string) error {
	buf := make([]byte, 0, 8)
	defer func() {
		for i := range buf[:cap(buf)] {
			buf[:cap(buf)][i] = 0
		}
	}()
	for {
		k, err := dk.Ask(ctx, name, strings.Repeat("*", len(buf)))
		if err != nil {
			return err
		}
		var back bool
		if buf, back = TypeDigit(buf, k, 8); back { // within buf's capacity: wiped by the defer
			return ErrBack
		}
		switch {
		case k == hal.KeyCancel:
			dk.show("cancelled")
			return ErrCancel
		case k == hal.KeyOK:
			if len(buf) < 5 {
				if err := dk.tooShort(ctx, 5, 8); err != nil {
					return err
				}
				continue
			}
			err := card.VerifyPIN(ctx, buf)
			for i := range buf {
				buf[i] = 0
			}
			buf = buf[:0]
			var pe *hal.PINError
			switch {
			case err == nil:
				return nil
			case errors.As(err, &pe):
				dk.log.Info("pin refused", "tries_left", pe.TriesLeft)
				// The last try is announced before it is used.
				screen := "pin_wrong"
				if pe.TriesLeft == 1 {
					screen = "pin_last"
				}
				k, err := dk.Ask(ctx, screen, pe.TriesLeft)
				if err != nil {
					return err
				}
				switch k {
				case hal.KeyCancel:
					dk.show("cancelled")
					return ErrCancel
				case hal.KeyBack:
					return ErrBack
				}
			case errors.Is(err, hal.ErrPINBlocked):
				dk.log.Info("pin blocked")
				dk.show("pin_blocked")
				return ErrCancel
			default:
				return dk.CardError(err)
			}
		}
	}
}

func (dk *Desk) yesNo(v bool) string {
	if v {
		return dk.lang.Text("yes")
	}
	return dk.lang.Text("no")
}

// enter reads digits on screen name: # confirms once at least min are
// typed, * deletes the last one or goes back when there is none, D
// cancels. With mask the digits show as stars. The caller wipes the
// returned slice when it holds a secret.
func (dk *Desk) enter(ctx context.Context, name string, min, max int, mask bool) ([]byte, error) {
	return dk.enterFrom(ctx, name, min, max, mask, nil)
}

// TypeDigit applies key k to the digits typed so far, buf: a digit is
// added while there are fewer than max, * deletes the last one; back is
// * with nothing left to delete. Other keys leave buf as it is.
func TypeDigit(buf []byte, k hal.Key, max int) (out []byte, back bool) {
	switch {
	case k >= '0' && k <= '9':
		if len(buf) < max {
			buf = append(buf, byte(k))
		}
	case k == hal.KeyBack:
		if len(buf) == 0 {
			return buf, true
		}
		buf = buf[:len(buf)-1]
	}
	return buf, false
}

// enterFrom is enter with the digits of init already typed: a step the
// citizen comes back to shows what they typed before, to correct.
func (dk *Desk) enterFrom(ctx context.Context, name string, min, max int, mask bool, init []byte) ([]byte, error) {
	buf := make([]byte, 0, max)
	if len(init) <= max {
		buf = append(buf, init...)
	}
	for {
		shown := string(buf)
		if mask {
			shown = strings.Repeat("*", len(buf))
		}
		k, err := dk.Ask(ctx, name, shown)
		if err != nil {
			wipe(buf)
			return nil, err
		}
		var back bool
		if buf, back = TypeDigit(buf, k, max); back {
			return nil, ErrBack
		}
		switch {
		case k == hal.KeyCancel:
			wipe(buf)
			dk.show("cancelled")
			return nil, ErrCancel
		case k == hal.KeyOK && len(buf) >= min:
			return buf, nil
		case k == hal.KeyOK:
			if err := dk.tooShort(ctx, min, max); err != nil {
				wipe(buf)
				return nil, err
			}
		}
	}
}

// tooShort answers # on a number shorter than min digits: a silent # left
// the citizen guessing, so the screen says the length the field takes. #
// or * return to the digits typed so far (nil), D cancels.
func (dk *Desk) tooShort(ctx context.Context, min, max int) error {
	var k hal.Key
	var err error
	if min == max {
		k, err = dk.Ask(ctx, "too_short_exact", min)
	} else {
		k, err = dk.Ask(ctx, "too_short", min, max)
	}
	if err != nil {
		return err
	}
	if k == hal.KeyCancel {
		dk.show("cancelled")
		return ErrCancel
	}
	return nil
}

// wipe zeroes b up to its capacity.
func wipe(b []byte) { clear(b[:cap(b)]) }

// CardRef is the card as an operation names it.
func CardRef(info hal.CardInfo) cms.CardRef {
	return cms.CardRef{Serial: info.Serial, CF: info.CF, Expiry: info.Expiry.Format(time.DateOnly)}
}

// pinChanger is card's capability to change and unblock its PIN on the
// chip; without it the citizen is told (notAvailable's error).
func pinChanger(ctx context.Context, dk *Desk, card hal.Card) (hal.PINChanger, error) {
	if pc, ok := card.(hal.PINChanger); ok {
		return pc, nil
	}
	return nil, dk.notAvailable(ctx)
}

// notAvailable says the function cannot be served on this totem; any
// bound key goes back to the menu.
func (dk *Desk) notAvailable(ctx context.Context) error {
	dk.show("not_available")
	if _, err := dk.key(ctx, "not_available", func() { dk.show("not_available") }); err != nil {
		return err
	}
	return ErrBack
}

// rejected reports whether the CMS refused the (final) entry e.
func rejected(e outbox.Entry) bool {
	return e.Result != nil && e.Result.Processing.Status == protocol.ProcessingRejected
}

// ShowRejection pages the CMS's reasons for refusing e (for the flows and
// the App's Finish): the catalogue's text for each code, in the session's
// language (never the code, nor the CMS's Italian message), three rows a
// page; # on the last page goes back to the menu.
func (dk *Desk) ShowRejection(ctx context.Context, e outbox.Entry) error {
	dk.log.Info("online op rejected", "op_id", e.ID, "kind", e.Kind)
	return dk.Pages(ctx, hal.Wrap(dk.lang.Text("rejected_prefix")+RejectionText(dk.lang, e), 20))
}

// RejectionText is what the citizen reads of the CMS's refusal of e, in
// lang: the catalogue's text of each code, each once.
func RejectionText(lang screens.Lang, e outbox.Entry) string {
	var out []string
	if e.Result != nil {
		for _, er := range e.Result.Processing.Errors {
			if s := lang.Rejection(er.Code); !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	if len(out) == 0 {
		return lang.Rejection("")
	}
	return strings.Join(out, " ")
}

// Pages shows lines three at a time: # forward, * back; # on the last
// page and * on the first return ErrBack (to the menu), D cancels.
func (dk *Desk) Pages(ctx context.Context, lines []string) error {
	return cmp.Or(dk.paginate(ctx, lines, 3, "page", false), ErrBack)
}

// submitAssisted submits an operator's request of kind and waits for its
// result R, which valid checks. done is true when the flow has ended on
// the way — a rejection shown to the operator — and err says why one
// could not go on: no answer, or a result without what valid wants (the
// "unavailable" screen is shown then).
func submitAssisted[R any](ctx context.Context, dk *Desk, kind, op string, req any, valid func(R) bool) (e outbox.Entry, res R, done bool, err error) {
	payload, err := json.Marshal(req)
	if err != nil {
		return e, res, false, err
	}
	dk.log.Info("assisted op", "kind", kind, "operator", layout.MaskSerial(op))
	var shown bool
	if e, shown, err = dk.submitShown(ctx, kind, payload); shown || err != nil {
		return e, res, shown, err
	}
	if ok, err := decode(dk, e, &res, valid, "assisted result", "kind", kind); !ok {
		return e, res, false, fmt.Errorf("firmware: %s result incomplete: %w", kind, errors.Join(err, ErrNoAnswer))
	}
	return e, res, false, nil
}

// submitShown submits payload of kind and waits for its result; a
// rejection is shown (shown true, err what showing it returned).
func (dk *Desk) submitShown(ctx context.Context, kind string, payload []byte) (e outbox.Entry, shown bool, err error) {
	if e, err = dk.submit(ctx, kind, payload); err != nil {
		return e, false, err
	}
	if rejected(e) {
		return e, true, dk.ShowRejection(ctx, e)
	}
	return e, false, nil
}

// decode reads the CMS's answer in e into res and reports whether it is
// usable: it decodes and complete (nil: anything that decodes) accepts
// it. When not, it logs msg with attrs and the decoding error (never the
// data), shows "unavailable" and returns that error (nil when the answer
// decoded but lacked something).
func decode[R any](dk *Desk, e outbox.Entry, res *R, complete func(R) bool, msg string, attrs ...any) (ok bool, err error) {
	err = json.Unmarshal(e.Result.Data, res)
	if err == nil && (complete == nil || complete(*res)) {
		return true, nil
	}
	dk.log.Error(msg, append(attrs, "op_id", e.ID, "err", err)...)
	dk.show("unavailable")
	return false, err
}

// paginate shows lines per rows a page on screen (screen_last for the
// last page; numbered, with "p/n" as the first argument) until a key
// turns past the last page (nil) or fails (turn's error, or the panel's).
func (dk *Desk) paginate(ctx context.Context, lines []string, per int, screen string, numbered bool) error {
	n := pageCount(lines, per)
	for p := 0; ; {
		name := screen
		if p == n-1 {
			name = screen + "_last"
		}
		args := pageRows(lines, per, p)
		if numbered {
			args = append([]any{fmt.Sprintf("%d/%d", p+1, n)}, args...)
		}
		k, err := dk.Ask(ctx, name, args...)
		if err != nil {
			return err
		}
		if past, err := dk.turn(k, &p, n); past || err != nil {
			return err
		}
	}
}

// pageCount is how many pages of per rows lines fill (at least one).
func pageCount(lines []string, per int) int { return max(1, (len(lines)+per-1)/per) }

// pageRows are the per rows of page p of lines ("" past their end), as
// the arguments of a paging screen.
func pageRows(lines []string, per, p int) []any {
	rows := make([]any, per)
	for i := range rows {
		rows[i] = ""
		if j := p*per + i; j < len(lines) {
			rows[i] = lines[j]
		}
	}
	return rows
}

// turn applies a paging key to page p of n: # forward, * back, D cancels
// (ErrCancel, "cancelled" shown). past is # on the last page; * on the
// first is ErrBack.
func (dk *Desk) turn(k hal.Key, p *int, n int) (past bool, err error) {
	switch k {
	case hal.KeyOK:
		if *p == n-1 {
			return true, nil
		}
		*p++
	case hal.KeyBack:
		if *p == 0 {
			return false, ErrBack
		}
		*p--
	case hal.KeyCancel:
		dk.show("cancelled")
		return false, ErrCancel
	}
	return false, nil
}
