package firmware

import (
	"context"
	"errors"
	"fmt"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/opkind"
	"github.com/aslcns/totem/firmware/flows"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// kindSpec is the firmware's piece of an operation kind declared in
// cms/opkind: how the citizen or the operator reaches it, and its receipt.
// TestEveryFlowKindIsComplete fails when a kind declared with a flow has
// no spec, no title, no flow, no menu key or no golden receipt, and when a
// kind declared with a receipt (and no flow) has no title or no golden.
type kindSpec struct {
	// title heads the kind's receipt and names it in the Storico;
	// titleEN is the same in English, for a citizen who chose it.
	title, titleEN string
	// sensitive receipts carry secrets (the first halves of PIN and
	// PUK): the print queue keeps no copy once they are printed.
	sensitive bool
	// query kinds ask for an answer, not for something to be done: what
	// they print is an extract, without an outcome.
	query bool
	// self is the citizen's flow, from a self-service menu key; assisted
	// the operator's, from the assisted menu. A kind has one or both.
	self     func(a *App, ctx context.Context, card hal.Card, info hal.CardInfo) error
	assisted func(a *App, ctx context.Context, op string, info hal.CardInfo) error
}

var kindSpecs = map[string]kindSpec{}

// registerKind adds the firmware's piece of a kind cms/opkind declares. It
// panics on a kind not declared there or registered twice: both are
// mistakes of the source, found at init.
func registerKind(name string, s kindSpec) {
	if _, ok := opkind.Lookup(name); !ok {
		panic(fmt.Sprintf("firmware: kind %q is not declared in cms/opkind", name))
	}
	if _, dup := kindSpecs[name]; dup {
		panic(fmt.Sprintf("firmware: kind %q registered twice", name))
	}
	kindSpecs[name] = s
}

// The citizen's menus and the operator's: which key starts which kind's
// flow. The keys of functions that are not operations (forms, guide, the
// other pages) stay in the menus' code.
var (
	selfMenu  = map[hal.Key]string{'1': cms.KindConsent, '2': cms.KindReader, '3': cms.KindPINChange, '4': cms.KindHistory, '5': cms.KindReprint, '6': cms.KindPINUnblock, '7': cms.KindRevocation}
	otherMenu = map[hal.Key]string{'3': cms.KindWrongData}
	opMenu    = map[hal.Key]string{'1': cms.KindActivation, '2': cms.KindRevocation, '3': cms.KindConsent, '4': cms.KindReprint, '5': cms.KindHistory, '6': cms.KindReader, '7': cms.KindReissue}
)

// The kinds the totem serves, each with its receipt title and its flows;
// the flows themselves are in firmware/flows, one file per kind, their
// receipt lines in firmware/receipts.
func init() {
	registerKind(cms.KindConsent, kindSpec{title: "Consensi FSE", titleEN: "FSE consents", self: withCard(flows.Consent), assisted: via(flows.ConsentVia, true)})
	registerKind(cms.KindActivation, kindSpec{title: "Attivazione TS-CNS", titleEN: "TS-CNS activation",
		assisted: func(a *App, ctx context.Context, op string, info hal.CardInfo) error {
			return flows.Activation(ctx, a.desk, op, info)
		}})
	registerKind(cms.KindReprint, kindSpec{title: "Ristampa PIN/PUK", titleEN: "PIN/PUK reprint", sensitive: true, self: withInfo(flows.Reprint), assisted: via(flows.ReprintVia, true)})
	registerKind(cms.KindRevocation, kindSpec{title: "Revoca TS-CNS", titleEN: "TS-CNS revocation",
		self: withInfo(func(ctx context.Context, dk *flows.Desk, info hal.CardInfo) error {
			return flows.RevokeSelf(ctx, dk, &info)
		}),
		assisted: func(a *App, ctx context.Context, op string, info hal.CardInfo) error {
			return flows.Revocation(ctx, a.desk, op, info, "")
		}})
	registerKind(cms.KindReader, kindSpec{title: "Richiesta lettore", titleEN: "Card reader request", self: withInfo(flows.ReaderRequest), assisted: via(flows.ReaderVia, false)})
	registerKind(cms.KindHistory, kindSpec{title: "Storico tessera", titleEN: "Card history", query: true, self: withCard(flows.History), assisted: via(flows.HistoryVia, false)})
	registerKind(cms.KindPINChange, kindSpec{title: "Cambio PIN", titleEN: "PIN change", self: withCard(flows.ChangePIN)})
	registerKind(cms.KindPINUnblock, kindSpec{title: "Sblocco PIN con PUK", titleEN: "PIN unblock with PUK", self: withCard(flows.UnblockPIN)})
	registerKind(cms.KindReissue, kindSpec{title: "Riemissione TS-CNS", titleEN: "TS-CNS reissue",
		assisted: func(a *App, ctx context.Context, op string, info hal.CardInfo) error {
			// Offered only where totem.reissue_counter is set; the hub
			// decides from its own registry whether the CMS accepts it.
			if !a.o.ReissueCounter {
				a.log.Info("refusal shown", "what", "refuse_reissue")
				return a.desk.Pages(ctx, hal.Wrap(a.lang.Text("refuse_reissue"), 20))
			}
			return flows.Reissue(ctx, a.desk, op, info)
		}})
	registerKind(cms.KindWrongData, kindSpec{title: "Segnalazione dati errati", titleEN: "Wrong data report", self: withInfo(flows.WrongData)})
	// No flow: the console's refund command (ops) sends it and prints its
	// receipt, which the citizen takes to the cashier (firmware/refund.go).
	registerKind(cms.KindRefund, kindSpec{title: "Rimborso lettore", titleEN: "Card reader refund"})
}

// withCard, withInfo and via make a flow of firmware/flows a kind's flow
// on the App's desk: one that needs the card in the slot (its PIN), one
// that needs only what the card said, and one for the citizen an operator
// identifies (with deleg, a delegate may act for the holder).
func withCard(flow func(context.Context, *flows.Desk, hal.Card, hal.CardInfo) error) func(*App, context.Context, hal.Card, hal.CardInfo) error {
	return func(a *App, ctx context.Context, card hal.Card, info hal.CardInfo) error {
		return flow(ctx, a.desk, card, info)
	}
}

func withInfo(flow func(context.Context, *flows.Desk, hal.CardInfo) error) func(*App, context.Context, hal.Card, hal.CardInfo) error {
	return func(a *App, ctx context.Context, _ hal.Card, info hal.CardInfo) error { return flow(ctx, a.desk, info) }
}

func via(flow func(context.Context, *flows.Desk, hal.CardInfo, *flows.Via) error, deleg bool) func(*App, context.Context, string, hal.CardInfo) error {
	return func(a *App, ctx context.Context, op string, info hal.CardInfo) error {
		return flow(ctx, a.desk, info, flows.ByOperator(ctx, a.desk, op, info, deleg))
	}
}

// kindTitle is the receipt title of an operation kind. Kinds without a
// receipt of their own (a correction, a refused suspension) are named by
// their wire name when the Storico lists them.
func kindTitle(kind string) string {
	if s, ok := kindSpecs[kind]; ok && s.title != "" {
		return s.title
	}
	return "Operazione " + kind
}

// title is kindTitle in the session's language.
func (a *App) title(kind string) string {
	if s, ok := kindSpecs[kind]; ok && a.lang == EN && s.titleEN != "" {
		return s.titleEN
	}
	return kindTitle(kind)
}

// Submit sends an operation the way its declaration says: an online kind
// is asked of the CMS now (online), any other is made durable with the
// queued expiry and waited for up to ResultWait (enqueueAndWait).
func (a *App) Submit(ctx context.Context, kind string, payload []byte) (outbox.Entry, error) {
	if opkind.Online(kind) {
		return a.online(ctx, kind, payload)
	}
	now := a.clock.Now()
	return a.enqueueAndWait(ctx, kind, payload, now, now.Add(a.o.QueuedTTL))
}

// Finish prints the receipt of e, an operation of kind, with its
// registered title, and tells the citizen the outcome: the protocol
// number, provisional, refused with the CMS's whole reason (paged), or no
// receipt. The outcome screens offer another operation in the same
// session (issue 17): the session loop takes it from there (another).
func (a *App) Finish(ctx context.Context, e outbox.Entry, kind string, info hal.CardInfo, lines []string) error {
	layout := a.Frame().Receipt
	if kindSpecs[kind].query {
		layout = a.Frame().Extract
	}
	title := a.title(kind)
	doc := layout(e, title, info, lines)
	doc.Sensitive = kindSpecs[kind].sensitive
	a.Show("printing")
	perr := a.Print(ctx, doc, e.ID)
	var name string
	var args []any
	switch {
	case perr != nil:
		name, args = "no_receipt", []any{flows.PrinterText(a.lang, perr)}
	case !e.Done:
		name = "provisional"
	case e.Result.Processing.Status == protocol.ProcessingRejected:
		// The whole reason, a page at a time: two rows cut it.
		err := a.desk.ShowRejection(ctx, e)
		if errors.Is(err, errCancel) {
			a.Show("remove_card")
			return nil
		}
		return err
	case kindSpecs[kind].query:
		name = "printed_query"
	default:
		name, args = "done", []any{e.Result.Transport.Protocol}
	}
	a.Show(name, args...)
	a.finished = &finished{e: e, screen: name, draw: func() { a.Show(name, args...) },
		doc: func(e outbox.Entry) *hal.Doc {
			d := layout(e, title, info, lines)
			d.Sensitive = kindSpecs[kind].sensitive
			return d
		}}
	return nil
}
