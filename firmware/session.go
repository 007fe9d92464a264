package firmware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aslcns/totem/firmware/flows"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// session serves one citizen from card insertion. It returns
// hal.ErrCardRemoved when the card left the slot, nil when the session
// ended normally with the card still in (the caller waits for removal).
func (a *App) session(ctx context.Context) error {
	a.Show("reading")
	card, err := a.dev.Reader.Connect(ctx)
	if err != nil {
		return a.desk.CardError(err)
	}
	// Leave the card reset and unpowered whatever happens.
	defer card.Close()
	info, err := card.Info(ctx)
	if err != nil {
		return a.desk.CardError(err)
	}
	if !info.Expiry.IsZero() && a.clock.Now().After(info.Expiry.AddDate(0, 0, 1)) {
		return a.desk.CardError(hal.ErrCardExpired)
	}
	a.log.Info("session started", "card_class", string(info.Class))
	if info.Class == hal.ClassOperator {
		return operatorSession(ctx, a, card, info) // assisted mode: assisted.go
	}
	// The PIN verified on the chip holds for the session: another
	// operation does not ask for it again (issue 17).
	a.desk.Begin()
	defer a.desk.Begin()
	a.finished = nil

	for {
		a.Show("menu")
		k, err := a.Key(ctx, "menu", func() { a.Show("menu") })
		if err != nil {
			return err
		}
		if k == hal.KeyBack { // * on the menu ends the session, as D does
			k = hal.KeyCancel
		}
		err = selfService{a, card, info}.dispatch(ctx, k)
		if err == nil && a.finished != nil {
			var more bool
			if more, err = a.finished.await(ctx, a); more {
				continue
			}
		}
		if errors.Is(err, errBack) {
			continue
		}
		return err
	}
}

// await waits on the outcome screen Finish left (f, on a), which offers another
// operation: # (or *) goes back to the menu with the session, and the
// PIN verified, still open (more); D ends the session. While a
// provisional outcome is on screen and its definitive one arrives, it is
// shown (and printed: the provisional receipt has no protocol number).
func (f *finished) await(ctx context.Context, a *App) (more bool, err error) {
	a.finished = nil
	e := f.e
	var ch <-chan outbox.Entry
	if !e.Done {
		c, done := a.waiters.AddChecked(e.ID, a.doneEntry(e.ID))
		defer done()
		ch = c
	}
	name, redraw := f.screen, f.draw
	for {
		k, got, err := a.keyOr(ctx, name, redraw, ch)
		switch {
		case err != nil:
			return false, err
		case got != nil:
			ch = nil
			name, redraw = f.late(ctx, a, *got)
			continue
		case k == hal.KeyCancel:
			a.Show("goodbye")
			return false, nil
		}
		return true, nil
	}
}

// late tells on a the definitive outcome e of the operation whose
// provisional receipt the citizen holds, prints its receipt, and returns
// the screen shown and how to redraw it.
func (f *finished) late(ctx context.Context, a *App, e outbox.Entry) (string, func()) {
	a.log.Info("definitive outcome while the citizen waits", "op_id", e.ID, "kind", e.Kind)
	name, args := "late_done", []any{e.Result.Transport.Protocol}
	if e.Result.Processing.Status == protocol.ProcessingRejected {
		name = "late_rejected"
	}
	a.Show("printing")
	if err := a.Print(ctx, f.doc(e), e.ID); err != nil {
		name = "late_no_receipt"
	}
	draw := func() { a.Show(name, args...) }
	draw()
	return name, draw
}

var errBack = flows.ErrBack

// finished is an operation whose outcome is on screen: the screen and how
// to redraw it, and the layout of its receipt for the definitive outcome.
type finished struct {
	e      outbox.Entry
	screen string
	draw   func()
	doc    func(outbox.Entry) *hal.Doc
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
		a.Show("queue_full")
		return e, nil, nil, fmt.Errorf("firmware: %w", err)
	}
	if err != nil {
		a.log.Error("enqueue failed", "kind", kind, "err", err)
		a.Show("save_failed")
		return e, nil, nil, fmt.Errorf("firmware: %w", err)
	}
	a.log.Info("op enqueued", "seq", e.Seq, "op_id", e.ID, "kind", kind)
	c, done := a.waiters.AddChecked(e.ID, a.doneEntry(e.ID))
	return e, c, done, nil
}

// doneEntry reads the outbox entry id once it is answered: the result may
// have come before its waiter was registered.
func (a *App) doneEntry(id string) func() (outbox.Entry, bool) {
	return func() (outbox.Entry, bool) {
		got, err := a.o.Outbox.Get(id)
		return got, err == nil && got.Done
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
	timer := a.clock.After(a.timeouts.resultWait())
	for {
		select {
		case <-ctx.Done():
			return e, ctx.Err()
		case <-timer:
			return e, nil
		case got := <-ch:
			if got.Done {
				return got, nil
			}
		case <-a.tick:
			a.heart.alive()
		}
	}
}

// printWait bounds how long the citizen waits for the receipt to come out.
const printWait = 20 * time.Second

// Print prints doc, through the durable queue when there is one: then a
// receipt the printer cannot take now is printed when it can.
func (a *App) Print(ctx context.Context, doc *hal.Doc, opID string) error {
	if a.o.Jobs != nil {
		_, first, err := a.o.Jobs.Add(doc, opID)
		if err == nil {
			t := a.clock.After(printWait)
			for {
				select {
				case err := <-first:
					return err
				case <-t:
					return hal.ErrNotResponding
				case <-ctx.Done():
					return ctx.Err()
				case <-a.tick:
					a.heart.alive()
				}
			}
		}
		a.log.Error("print queue", "err", err)
	}
	if st, err := a.dev.Printer.Status(ctx); err == nil {
		a.health.setPaperLow(st.PaperNearEnd)
		if err := st.Err(); err != nil {
			a.health.setPrinter(err)
			return err
		}
	}
	err := a.dev.Printer.Print(ctx, doc)
	a.health.setPrinter(err)
	if err != nil {
		a.log.Error("receipt not printed", "err", err)
	}
	return err
}

// PrinterStatus records the printer's condition for telemetry; it is the
// print queue's OnStatus.
func (a *App) PrinterStatus(err error) { a.health.setPrinter(err) }

// PaperNearEnd records whether the printer reports its paper near the
// end: telemetry's printer state "paper_near_end" (an event when it
// changes) while it otherwise prints. It is the print queue's OnPaper.
func (a *App) PaperNearEnd(low bool) { a.health.setPaperLow(low) }
