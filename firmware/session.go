package firmware

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// session serves one citizen from card insertion. It returns
// hal.ErrCardRemoved when the card left the slot, nil when the session
// ended normally with the card still in (the caller waits for removal).
func (a *App) session(ctx context.Context) error {
	a.show("reading")
	card, err := a.dev.Reader.Connect(ctx)
	if err != nil {
		return a.cardError(err)
	}
	// Leave the card reset and unpowered whatever happens.
	defer card.Close()
	info, err := card.Info(ctx)
	if err != nil {
		return a.cardError(err)
	}
	if !info.Expiry.IsZero() && time.Now().After(info.Expiry.AddDate(0, 0, 1)) {
		return a.cardError(hal.ErrCardExpired)
	}
	a.log.Info("session started", "card_class", string(info.Class))
	if info.Class == hal.ClassOperator {
		return a.operatorSession(ctx, card, info) // assisted mode: assisted.go
	}

	for {
		a.show("menu")
		k, err := a.key(ctx, "menu", func() { a.show("menu") })
		if err != nil {
			return err
		}
		if k == hal.KeyBack { // * on the menu ends the session, as D does
			k = hal.KeyCancel
		}
		err = a.dispatch(ctx, k, card, info)
		if errors.Is(err, errBack) {
			continue
		}
		return err
	}
}

var errBack = errors.New("firmware: back to the menu")

func (a *App) cardError(err error) error {
	switch {
	case errors.Is(err, hal.ErrCardRemoved), errors.Is(err, hal.ErrNoCard):
		return hal.ErrCardRemoved
	case errors.Is(err, hal.ErrCardUnknown):
		a.show("card_unknown")
	case errors.Is(err, hal.ErrCardData):
		a.show("card_data")
	case errors.Is(err, hal.ErrCardExpired):
		a.show("card_expired")
	default:
		a.show("card_error")
	}
	a.log.Warn("card refused", "err", err)
	return err
}

// pin asks for the card's PIN and verifies it on the chip. The digits
// live only in a buffer that is wiped before returning.
func (a *App) pin(ctx context.Context, card hal.Card) error { return a.pinOn(ctx, card, "pin") }

// pinOn is pin with the prompt of screen name (the operator's card has
// its own).
func (a *App) pinOn(ctx context.Context, card hal.Card, name string) error {
	buf := make([]byte, 0, 8)
	defer func() {
		for i := range buf[:cap(buf)] {
			buf[:cap(buf)][i] = 0
		}
	}()
	for {
		k, err := a.ask(ctx, name, strings.Repeat("*", len(buf)))
		if err != nil {
			return err
		}
		switch {
		case k >= '0' && k <= '9':
			if len(buf) < 8 {
				buf = append(buf, byte(k))
			}
		case k == hal.KeyBack:
			if len(buf) == 0 {
				return errBack
			}
			buf = buf[:len(buf)-1]
		case k == hal.KeyCancel:
			a.show("cancelled")
			return errCancel
		case k == hal.KeyOK:
			if len(buf) < 5 {
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
				a.log.Info("pin refused", "tries_left", pe.TriesLeft)
				// The last try is announced before it is used.
				screen := "pin_wrong"
				if pe.TriesLeft == 1 {
					screen = "pin_last"
				}
				k, err := a.ask(ctx, screen, pe.TriesLeft)
				if err != nil {
					return err
				}
				switch k {
				case hal.KeyCancel:
					a.show("cancelled")
					return errCancel
				case hal.KeyBack:
					return errBack
				}
			case errors.Is(err, hal.ErrPINBlocked):
				a.log.Info("pin blocked")
				a.show("pin_blocked")
				return errCancel
			default:
				return a.cardError(err)
			}
		}
	}
}

func (a *App) yesNo(v bool) string {
	if v {
		return a.o.Lang.Text("yes")
	}
	return a.o.Lang.Text("no")
}

// enqueue makes an operation durable and listens for its results: ch
// receives the entry as results arrive (at once if one already did);
// done stops listening. On a store failure the citizen is told.
func (a *App) enqueue(kind string, payload []byte, created, expires time.Time) (e outbox.Entry, ch <-chan outbox.Entry, done func(), err error) {
	e, err = a.o.Outbox.Enqueue(kind, payload, created, expires)
	if errors.Is(err, outbox.ErrFull) {
		// Not a fault of the totem: the queue is at its quota until the
		// hub drains it. Nothing was stored.
		a.log.Warn("enqueue refused: outbox full", "kind", kind, "err", err)
		a.show("queue_full")
		return e, nil, nil, fmt.Errorf("firmware: %w", err)
	}
	if err != nil {
		a.log.Error("enqueue failed", "kind", kind, "err", err)
		a.show("save_failed")
		return e, nil, nil, fmt.Errorf("firmware: %w", err)
	}
	a.log.Info("op enqueued", "seq", e.Seq, "op_id", e.ID, "kind", kind)
	c, done := a.listen(e.ID)
	// The result may have come before the waiter was registered.
	if got, err := a.o.Outbox.Get(e.ID); err == nil && got.Done {
		select {
		case c <- got:
		default:
		}
	}
	return e, c, done, nil
}

// listen registers for the results of op id (Result delivers them);
// stop ends it.
func (a *App) listen(id string) (results chan outbox.Entry, stop func()) {
	c := make(chan outbox.Entry, 1)
	a.mu.Lock()
	a.waiters[id] = c
	a.mu.Unlock()
	return c, func() {
		a.mu.Lock()
		delete(a.waiters, id)
		a.mu.Unlock()
	}
}

// enqueueAndWait makes the operation durable, then waits up to ResultWait
// for the hub's final result. The returned entry has Done set when the
// result came in time.
func (a *App) enqueueAndWait(ctx context.Context, kind string, payload []byte, created, expires time.Time) (outbox.Entry, error) {
	e, ch, done, err := a.enqueue(kind, payload, created, expires)
	if err != nil {
		return e, err
	}
	defer done()
	timer := time.NewTimer(a.o.ResultWait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return e, ctx.Err()
		case <-timer.C:
			return e, nil
		case got := <-ch:
			if got.Done {
				return got, nil
			}
		case <-a.tick:
			a.alive()
		}
	}
}

// finishDoc prints doc, the receipt of e, and tells the citizen the outcome.
func (a *App) finishDoc(ctx context.Context, e outbox.Entry, doc *hal.Doc) error {
	a.show("printing")
	perr := a.print(ctx, doc, e.ID)
	switch {
	case perr != nil:
		a.show("no_receipt", a.printerText(perr))
	case !e.Done:
		a.show("provisional")
	case e.Result.Processing.Status == protocol.ProcessingRejected:
		msg := "Rivolgersi allo sportello"
		if len(e.Result.Processing.Errors) > 0 {
			msg = e.Result.Processing.Errors[0].Message
		}
		w := append(hal.Wrap(msg, 20), "", "")
		a.show("rejected", w[0], w[1])
	default:
		a.show("done", e.Result.Transport.Protocol)
	}
	return nil
}

// printWait bounds how long the citizen waits for the receipt to come out.
const printWait = 20 * time.Second

// print prints doc, through the durable queue when there is one: then a
// receipt the printer cannot take now is printed when it can.
func (a *App) print(ctx context.Context, doc *hal.Doc, opID string) error {
	if a.o.Jobs != nil {
		_, first, err := a.o.Jobs.Add(doc, opID)
		if err == nil {
			t := time.NewTimer(printWait)
			defer t.Stop()
			for {
				select {
				case err := <-first:
					return err
				case <-t.C:
					return hal.ErrNotResponding
				case <-ctx.Done():
					return ctx.Err()
				case <-a.tick:
					a.alive()
				}
			}
		}
		a.log.Error("print queue", "err", err)
	}
	if st, err := a.dev.Printer.Status(ctx); err == nil {
		if err := st.Err(); err != nil {
			a.setPrinter(err)
			return err
		}
	}
	err := a.dev.Printer.Print(ctx, doc)
	a.setPrinter(err)
	if err != nil {
		a.log.Error("receipt not printed", "err", err)
	}
	return err
}

// PrinterStatus records the printer's condition for telemetry; it is the
// print queue's OnStatus.
func (a *App) PrinterStatus(err error) { a.setPrinter(err) }

func (a *App) setPrinter(err error) {
	s := "ok"
	switch {
	case errors.Is(err, hal.ErrPaperOut):
		s = "paper_out"
	case errors.Is(err, hal.ErrCoverOpen):
		s = "cover_open"
	case errors.Is(err, hal.ErrNotResponding):
		s = "not_responding"
	case err != nil:
		s = "fault"
	}
	a.mu.Lock()
	changed := a.printer != s
	a.printer = s
	a.mu.Unlock()
	if changed {
		level := protocol.LevelWarning
		if s == "ok" {
			level = protocol.LevelInfo
		}
		a.event(level, "printer_"+s, "receipt printer: "+s)
	}
}

func (a *App) printerText(err error) string {
	switch {
	case errors.Is(err, hal.ErrPaperOut):
		return a.o.Lang.Text("paper_out")
	case errors.Is(err, hal.ErrCoverOpen):
		return a.o.Lang.Text("cover_open")
	case errors.Is(err, hal.ErrNotResponding):
		return a.o.Lang.Text("not_responding")
	}
	return a.o.Lang.Text("printer_fault")
}

// enter reads digits on screen name: # confirms once at least min are
// typed, * deletes the last one or goes back when there is none, D
// cancels. With mask the digits show as stars. The caller wipes the
// returned slice when it holds a secret.
func (a *App) enter(ctx context.Context, name string, min, max int, mask bool) ([]byte, error) {
	buf := make([]byte, 0, max)
	for {
		shown := string(buf)
		if mask {
			shown = strings.Repeat("*", len(buf))
		}
		k, err := a.ask(ctx, name, shown)
		if err != nil {
			wipe(buf)
			return nil, err
		}
		switch {
		case k >= '0' && k <= '9':
			if len(buf) < max {
				buf = append(buf, byte(k))
			}
		case k == hal.KeyBack:
			if len(buf) == 0 {
				return nil, errBack
			}
			buf = buf[:len(buf)-1]
		case k == hal.KeyCancel:
			wipe(buf)
			a.show("cancelled")
			return nil, errCancel
		case k == hal.KeyOK && len(buf) >= min:
			return buf, nil
		}
	}
}

// wipe zeroes b up to its capacity.
func wipe(b []byte) { clear(b[:cap(b)]) }

func cardRef(info hal.CardInfo) cms.CardRef {
	return cms.CardRef{Serial: info.Serial, CF: info.CF, Expiry: info.Expiry.Format(time.DateOnly)}
}

// notAvailable says the function cannot be served on this totem; any
// bound key goes back to the menu.
func (a *App) notAvailable(ctx context.Context) error {
	a.show("not_available")
	if _, err := a.key(ctx, "not_available", func() { a.show("not_available") }); err != nil {
		return err
	}
	return errBack
}
