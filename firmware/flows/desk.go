// Package flows holds the totem's operation flows, one file per flow
// (consent, reader, pinchange, history, reprint, unblock, revoke,
// wrongdata, activation, the assisted revocation) with the prompts they
// share and the assisted identification (Via). A flow sees the totem only
// through the Totem interface, the way a net/http handler sees only its
// ResponseWriter: it shows screens and waits for keys, submits an
// operation, prints. The firmware's App implements Totem and keeps the
// wiring, the session loop and the menus.
package flows

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/aslcns/totem/cms"
	layout "github.com/aslcns/totem/firmware/receipts"
	"github.com/aslcns/totem/firmware/screens"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/outbox"
)

// Totem is what a flow needs of the totem it runs on.
type Totem interface {
	// Show puts catalogue screen name on the display, its verbs filled
	// from args; Display puts rows as they are.
	Show(name string, args ...any)
	Display(rows []string)
	// Key waits for a key screen name binds: card removal is
	// hal.ErrCardRemoved, an idle citizen ErrIdle (redraw puts the screen
	// back after the idle warning).
	Key(ctx context.Context, name string, redraw func()) (hal.Key, error)
	// Policy is the consent policy in use.
	Policy() cms.Policy
	// Submit sends an operation the way its kind's declaration says and
	// returns its entry (Done once the hub answered). Audit queues one
	// nobody waits for.
	Submit(ctx context.Context, kind string, payload []byte) (outbox.Entry, error)
	Audit(kind string, payload []byte, now time.Time) error
	// Finish prints the receipt of e, of kind, and tells the outcome.
	Finish(ctx context.Context, e outbox.Entry, kind string, info hal.CardInfo, lines []string) error
	// Frame is what every document printed carries besides its lines;
	// Print prints one.
	Frame() layout.Frame
	Print(ctx context.Context, doc *hal.Doc, opID string) error
}

// CardStater is an optional capability of a Totem: the CMS's state of a
// card (cms.CardState, or protocol.CardUnknown), asked online so that a
// flow the CMS would refuse for that state stops before the operator types
// everything. An error means no answer: the flow goes on and the CMS
// decides at the end, as before.
type CardStater interface {
	CardState(ctx context.Context, serial string) (string, error)
}

// cardState asks the totem for the card's state ("" without an answer).
func (dk *Desk) cardState(ctx context.Context, serial string) string {
	cs, ok := dk.t.(CardStater)
	if !ok {
		return ""
	}
	st, err := cs.CardState(ctx, serial)
	if err != nil {
		dk.log.Info("card state not known", "err", err)
		return ""
	}
	return st
}

// Desk is a Totem with what the flows read of the configuration: the
// catalogue language, the log, and the title of each kind.
type Desk struct {
	t     Totem
	lang  screens.Lang
	log   *slog.Logger
	title func(kind string) string
	// online reports whether the link to the hub is up (nil: unknown).
	online func() bool
	// now is the wall clock (SetClock).
	now func() time.Time
	// verified: the card's PIN was verified on the chip in this session
	// (Begin clears it); the card stays powered, so another operation
	// does not ask for it again.
	verified bool
}

// Begin starts (or ends) a citizen's session: the PIN is asked again.
func (dk *Desk) Begin() { dk.verified = false }

// NewDesk returns the desk the flows run on: t, in language lang, logging
// to log; title names an operation kind on receipts and in the Storico,
// online says whether the link to the hub is up (nil: unknown).
func NewDesk(t Totem, lang screens.Lang, log *slog.Logger, title func(kind string) string, online func() bool) *Desk {
	return &Desk{t: t, lang: lang, log: log, title: title, online: online, now: time.Now}
}

// SetClock makes c the clock of the flows' dates (an expiry past, a
// minor's age, the time an event is queued at).
func (dk *Desk) SetClock(c hal.Clock) { dk.now = c.Now }

// SetLang makes l the language of the flows' screens and texts (the
// citizen chose it on the idle screen or the menu).
func (dk *Desk) SetLang(l screens.Lang) { dk.lang = l }

// The errors that end a flow, which the session loop tells apart.
var (
	ErrBack        = errors.New("firmware: back to the menu")
	ErrCancel      = errors.New("firmware: cancelled by the citizen")
	ErrIdle        = errors.New("firmware: session idle")
	ErrUnavailable = errors.New("firmware: online service unavailable")
	ErrNoAnswer    = errors.New("firmware: no answer in time")
)

func (dk *Desk) show(name string, args ...any) { dk.t.Show(name, args...) }

func (dk *Desk) key(ctx context.Context, name string, redraw func()) (hal.Key, error) {
	return dk.t.Key(ctx, name, redraw)
}

// Ask shows screen name, its verbs filled from args, and waits for a key
// the screen binds (key, which redraws it as needed).
func (dk *Desk) Ask(ctx context.Context, name string, args ...any) (hal.Key, error) {
	draw := func() { dk.show(name, args...) }
	draw()
	return dk.key(ctx, name, draw)
}

func (dk *Desk) submit(ctx context.Context, kind string, payload []byte) (outbox.Entry, error) {
	return dk.t.Submit(ctx, kind, payload)
}

func (dk *Desk) finishKind(ctx context.Context, e outbox.Entry, kind string, info hal.CardInfo, lines []string) error {
	return dk.t.Finish(ctx, e, kind, info, lines)
}

func (dk *Desk) print(ctx context.Context, doc *hal.Doc, opID string) error {
	return dk.t.Print(ctx, doc, opID)
}

func (dk *Desk) printerText(err error) string { return PrinterText(dk.lang, err) }

func (dk *Desk) audit(kind string, payload []byte, now time.Time) error {
	return dk.t.Audit(kind, payload, now)
}

// receipt lays out the receipt of an operation.
func (dk *Desk) receipt(e outbox.Entry, title string, info hal.CardInfo, lines []string) *hal.Doc {
	return dk.t.Frame().Receipt(e, title, info, lines)
}

// signDeclaration prints the dichiarazione sostitutiva the delegate of p
// signs for an operation of kind, and takes the operator's word that it
// was signed and kept (seed 002). A printer fault cancels the operation:
// nothing is sent without the signed declaration.
func (dk *Desk) signDeclaration(ctx context.Context, kind string, holder hal.CardInfo, p *presenter) error {
	dk.show("printing")
	if err := dk.print(ctx, dk.t.Frame().DeclarationFor(kind, holder, *p.deleg, p.doc), ""); err != nil {
		dk.show("decl_failed_op", dk.printerText(err))
		return ErrCancel
	}
	_, err := dk.choose(ctx, "decl_signed")
	return err
}

// CardError shows a card fault and maps it to the error that ends the
// session (a card out or gone is hal.ErrCardRemoved).
func (dk *Desk) CardError(err error) error {
	switch {
	case errors.Is(err, hal.ErrCardRemoved), errors.Is(err, hal.ErrNoCard):
		return hal.ErrCardRemoved
	case errors.Is(err, hal.ErrCardCIE):
		dk.show("card_cie")
	case errors.Is(err, hal.ErrCardContactless):
		dk.show("card_contactless")
	case errors.Is(err, hal.ErrCardUnknown):
		dk.show("card_unknown")
	case errors.Is(err, hal.ErrCardData):
		dk.show("card_data")
	case errors.Is(err, hal.ErrCardExpired):
		dk.show("card_expired")
	default:
		dk.show("card_error")
	}
	dk.log.Warn("card refused", "err", err)
	return err
}

// PrinterText says in lang what is wrong with the printer.
func PrinterText(lang screens.Lang, err error) string { return lang.Text(PrinterKey(err)) }

// PrinterKey is the catalogue key of what is wrong with the printer: the
// hal.PrinterFault code, printer_fault for any other error.
func PrinterKey(err error) string {
	if k := hal.PrinterFault(err); k != "" {
		return k
	}
	return "printer_fault"
}

// pick asks on screen for one of the keys of m and returns it with its
// value. Another key ends the flow: * goes back (ErrBack), anything else
// cancels (ErrCancel, "cancelled" shown).
func pick[V any](ctx context.Context, dk *Desk, screen string, m map[hal.Key]V) (hal.Key, V, error) {
	k, err := dk.Ask(ctx, screen)
	v, ok := m[k]
	switch {
	case err != nil:
		return k, v, err
	case ok:
		return k, v, nil
	case k == hal.KeyBack:
		return k, v, ErrBack
	}
	dk.show("cancelled")
	return k, v, ErrCancel
}

// save submits req, an operation of kind for the citizen v identifies
// (logged with the operator masked), with "saving" on screen.
func save(ctx context.Context, dk *Desk, v *Via, kind string, req any) (outbox.Entry, error) {
	payload, err := json.Marshal(req)
	if err != nil {
		return outbox.Entry{}, err
	}
	dk.logOp(v, kind)
	dk.show("saving")
	return dk.submit(ctx, kind, payload)
}

// Reachable returns nil when the hub can be asked now (nil online: assume
// so). When it cannot, the citizen is told at once and any key goes back
// to the menu (ErrBack), where the operations that work offline still do:
// the refusal used to end the session on a screen whose keys were all
// dead. Nothing was queued or charged.
func (dk *Desk) Reachable(ctx context.Context, kind string) error {
	if dk.online == nil || dk.online() {
		return nil
	}
	dk.log.Info("online op refused", "kind", kind, "reason", "offline")
	if _, err := dk.Ask(ctx, "offline_refused"); err != nil {
		return err
	}
	return ErrBack
}
