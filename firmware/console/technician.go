package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// Link is what the technician's actions need of the uplink.
type Link interface {
	// Resend sends an operation again with its op id (a quarantined one
	// goes back to the queue).
	Resend(ctx context.Context, id string) (outbox.Entry, error)
	// Void gives up a quarantined entry: a void takes its sequence
	// number, so the hub applies what follows it.
	Void(ctx context.Context, id string) (outbox.Entry, error)
	// Ledger fetches the hub's record of this totem's operations.
	Ledger(ctx context.Context, from uint64, max int) (*protocol.Ledger, error)
}

// ErrNoLink is returned by actions that need the hub when there is no link.
var ErrNoLink = errors.New("console: no link to the hub")

func (a *Console) link() (Link, error) {
	if a.o.Link == nil {
		return nil, ErrNoLink
	}
	l := a.o.Link()
	if l == nil {
		return nil, ErrNoLink
	}
	return l, nil
}

// ActionResult is the Data of resend, correct and cancel: the operation
// concerned and its outcomes so far.
type ActionResult struct {
	OpID       string           `json:"op_id"`
	Seq        uint64           `json:"seq"`
	Kind       string           `json:"kind"`
	Ref        string           `json:"ref,omitempty"`
	State      string           `json:"state"` // pending, done, purged, quarantine: …
	Protocol   string           `json:"protocol,omitempty"`
	Transport  string           `json:"transport,omitempty"`
	Processing string           `json:"processing,omitempty"`
	Duplicate  bool             `json:"duplicate,omitempty"`
	Errors     []protocol.Error `json:"errors,omitempty"`
}

func actionResult(e outbox.Entry, ref string) ActionResult {
	r := ActionResult{OpID: e.ID, Seq: e.Seq, Kind: e.Kind, Ref: ref, State: entryState(e)}
	if e.Result != nil {
		r.Protocol, r.Transport, r.Processing = e.Result.Transport.Protocol, e.Result.Transport.Status, e.Result.Processing.Status
		r.Duplicate, r.Errors = e.Result.Duplicate, e.Result.Processing.Errors
	}
	return r
}

func entryState(e outbox.Entry) string {
	switch {
	case e.Purged:
		return "purged" // settled, then purged after the retention: a summary
	case e.Done:
		return "done"
	case e.Quarantine != "":
		return "quarantine: " + e.Quarantine
	}
	return "pending"
}

// await waits up to ResultWait for a result of e newer than e's, and
// returns the entry as it stands.
func (a *Console) await(ctx context.Context, e outbox.Entry, ch <-chan outbox.Entry) outbox.Entry {
	wait := a.o.ResultWait
	if a.o.Wait != nil {
		wait = a.o.Wait()
	}
	select {
	case got := <-ch:
		return got
	case <-a.o.Clock.After(wait):
	case <-ctx.Done():
	}
	if got, err := a.o.Outbox.Get(e.ID); err == nil {
		return got
	}
	return e
}

// resend: args id. The same operation again, with the same op id.
func (a *Console) resend(ctx context.Context, args map[string]string) (any, error) {
	return a.onEntry(ctx, args["id"], Link.Resend)
}

// void: args id, a quarantined entry (expired or poison) that still holds
// its sequence number. The hub records the number as void and applies what
// follows; the entry stays in quarantine, where the technician sees it.
func (a *Console) void(ctx context.Context, args map[string]string) (any, error) {
	return a.onEntry(ctx, args["id"], Link.Void)
}

// onEntry does act on the entry id through the link and waits (bounded)
// for the hub's answer about it.
func (a *Console) onEntry(ctx context.Context, id string, act func(Link, context.Context, string) (outbox.Entry, error)) (any, error) {
	l, err := a.link()
	if err != nil {
		return nil, err
	}
	ch, stop := a.t.Listen(id)
	defer stop()
	e, err := act(l, ctx, id)
	if err != nil {
		return nil, err
	}
	return actionResult(a.await(ctx, e, ch), ""), nil
}

// original is the operation args id names, from the outbox, refused with
// code (it "cannot be corrected"…) unless its kind is allowed.
func (a *Console) original(args map[string]string, allowed func(kind string) bool, code, refusal string) (outbox.Entry, error) {
	orig, err := a.o.Outbox.Get(args["id"])
	if err != nil {
		return outbox.Entry{}, err
	}
	if !allowed(orig.Kind) {
		return outbox.Entry{}, fmt.Errorf("%s: an operation of kind %s %s", code, orig.Kind, refusal)
	}
	return orig, nil
}

// correct: args id (the original), and the corrected data: consents
// (code=1,code=0… for a consent) or payment (the reference, for a reader
// request). The totem builds the corrected payload from the original it
// keeps, so no personal data travels in the command.
func (a *Console) correct(ctx context.Context, args map[string]string) (any, error) {
	orig, err := a.original(args, cms.Correctable, cms.CodeNotCorrectable, "cannot be corrected")
	if err != nil {
		return nil, err
	}
	var payload []byte
	switch orig.Kind {
	case cms.KindConsent:
		var req cms.ConsentRequest
		if err := json.Unmarshal(orig.Payload, &req); err != nil {
			return nil, fmt.Errorf("original payload: %w", err)
		}
		if req.Consents, err = parseConsents(args["consents"], req.Consents); err != nil {
			return nil, err
		}
		payload, err = json.Marshal(req)
	case cms.KindReader:
		var req cms.ReaderRequest
		if err := json.Unmarshal(orig.Payload, &req); err != nil {
			return nil, fmt.Errorf("original payload: %w", err)
		}
		if args["payment"] == "" {
			return nil, errors.New("correct needs payment=REFERENCE for a reader request")
		}
		req.Payment.Reference = args["payment"]
		payload, err = json.Marshal(req)
	}
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(cms.CorrectionRequest{Ref: orig.ID, Protocol: protocolOf(orig), Payload: payload})
	if err != nil {
		return nil, err
	}
	return a.variation(ctx, cms.KindCorrection, body, orig.ID)
}

// cancel: args id (the original) and reason (optional, no personal data).
func (a *Console) cancel(ctx context.Context, args map[string]string) (any, error) {
	orig, err := a.original(args, cms.Cancellable, cms.CodeNotCancellable, "cannot be cancelled")
	if err != nil {
		return nil, err
	}
	if len(args["reason"]) > 200 {
		return nil, errors.New("reason: at most 200 characters")
	}
	body, err := json.Marshal(cms.CancellationRequest{Ref: orig.ID, Protocol: protocolOf(orig), Reason: args["reason"]})
	if err != nil {
		return nil, err
	}
	return a.variation(ctx, cms.KindCancellation, body, orig.ID)
}

// RefundResult is the Data of refund: the refund operation and its
// receipt, printed on the totem for the citizen to take to the cashier.
type RefundResult struct {
	ActionResult
	Receipt any `json:"receipt,omitempty"` // the print job, as PrintRefund says; none when refused
}

// refund: args id (the reader request, cancelled before) and reason
// (optional, no personal data). The reader fee goes back: a new operation
// that references the reader request, distinct from its cancellation; the
// CMS refuses it unless the request was cancelled and never refunded. Its
// receipt is printed unless the CMS refused it (the console shows why).
func (a *Console) refund(ctx context.Context, args map[string]string) (any, error) {
	orig, err := a.original(args, func(kind string) bool { return kind == cms.KindReader }, cms.CodeNotRefundable, "has no fee to refund")
	if err != nil {
		return nil, err
	}
	if len(args["reason"]) > 200 {
		return nil, errors.New("reason: at most 200 characters")
	}
	var req cms.ReaderRequest
	if err := json.Unmarshal(orig.Payload, &req); err != nil {
		return nil, fmt.Errorf("original payload: %w", err)
	}
	body, err := json.Marshal(cms.RefundRequest{Ref: orig.ID, Protocol: protocolOf(orig), AmountCents: cms.ReaderFeeCents, Reason: args["reason"]})
	if err != nil {
		return nil, err
	}
	e, err := a.enqueueAndAwait(ctx, cms.KindRefund, body, orig.ID)
	if err != nil {
		return nil, err
	}
	res := RefundResult{ActionResult: actionResult(e, orig.ID)}
	if e.Done && e.Result.Processing.Status == protocol.ProcessingRejected {
		return res, nil
	}
	res.Receipt, err = a.t.PrintRefund(ctx, e, protocolOf(orig), req)
	return res, err
}

func protocolOf(e outbox.Entry) string {
	if e.Result != nil {
		return e.Result.Transport.Protocol
	}
	return ""
}

// variation queues a correction or cancellation like any operation (in
// order, exactly once) and waits a little for its outcomes.
func (a *Console) variation(ctx context.Context, kind string, body []byte, ref string) (any, error) {
	e, err := a.enqueueAndAwait(ctx, kind, body, ref)
	if err != nil {
		return nil, err
	}
	return actionResult(e, ref), nil
}

// enqueueAndAwait queues an operation of kind that references ref, and
// returns it once answered or after ResultWait.
func (a *Console) enqueueAndAwait(ctx context.Context, kind string, body []byte, ref string) (outbox.Entry, error) {
	now := a.o.Clock.Now()
	e, err := a.o.Outbox.Enqueue(kind, body, now, now.Add(a.o.QueuedTTL))
	if err != nil {
		return e, err
	}
	a.log.Info("op enqueued", "seq", e.Seq, "op_id", e.ID, "kind", kind, "ref", ref)
	ch, stop := a.t.Listen(e.ID)
	defer stop()
	return a.await(ctx, e, ch), nil
}

// parseConsents applies "code=1,code=0" to the consents of an original:
// every code must be one of them.
func parseConsents(s string, orig []cms.Consent) ([]cms.Consent, error) {
	codes := make([]string, 0, len(orig))
	for _, c := range orig {
		codes = append(codes, c.Code)
	}
	valid := strings.Join(codes, ", ")
	if s == "" {
		return nil, fmt.Errorf("correct needs consents=CODE=1|0,… for a consent; the original's codes: %s", valid)
	}
	out := slices.Clone(orig)
	for part := range strings.SplitSeq(s, ",") {
		code, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		i := slices.IndexFunc(out, func(c cms.Consent) bool { return c.Code == code })
		if !ok || i < 0 || (v != "0" && v != "1") {
			return nil, fmt.Errorf("consents: %q: want CODE=1 or CODE=0 with one of the original's codes: %s", part, valid)
		}
		out[i].Given = v == "1"
	}
	return out, nil
}

// Difference is one disagreement a resynchronisation found between the
// totem's record and the hub's. The hub's record wins.
type Difference struct {
	Seq     uint64 `json:"seq"`
	OpID    string `json:"op_id,omitempty"`
	Kind    string `json:"kind,omitempty"`
	What    string `json:"what"`  // see the Diff… constants
	Totem   string `json:"totem"` // what the totem had
	Hub     string `json:"hub"`   // what the hub has
	Adopted bool   `json:"adopted"`
}

// What a Difference is.
const (
	DiffPendingApplied = "pending_applied" // the totem waited for a result the hub had given
	DiffOutcome        = "outcome_differs" // the totem kept another outcome
	DiffNotAtHub       = "done_not_at_hub" // the totem has a final result the hub has no record of
	DiffForeign        = "foreign_op"      // the hub applied another op id at this seq
	DiffHubAhead       = "hub_ahead"       // the hub applied seqs this totem does not know
)

// ResyncReport is the Data of resync.
type ResyncReport struct {
	HubLastSeq   uint64       `json:"hub_last_seq"`
	LocalLastSeq uint64       `json:"local_last_seq"`
	Checked      int          `json:"checked"`
	Differences  []Difference `json:"differences"`
}

// resyncWindow is how many of the newest entries a resynchronisation
// compares.
const resyncWindow = 1000

func describe(r *protocol.Result) string {
	if r == nil {
		return "no result"
	}
	s := r.Transport.Status + " " + r.Processing.Status
	if r.Transport.Protocol != "" {
		s += " " + r.Transport.Protocol
	}
	for _, e := range r.Processing.Errors {
		s += " " + e.Code
	}
	return s
}

// resync compares the totem's outbox with the hub's ledger and adopts the
// hub's outcomes where they differ.
func (a *Console) resync(ctx context.Context) (any, error) {
	l, err := a.link()
	if err != nil {
		return nil, err
	}
	entries, err := a.o.Outbox.Recent(resyncWindow)
	if err != nil {
		return nil, err
	}
	rep := ResyncReport{Differences: []Difference{}}
	if len(entries) == 0 {
		led, err := l.Ledger(ctx, 1, 1)
		if err != nil {
			return nil, err
		}
		rep.HubLastSeq = led.LastSeq
		if led.LastSeq > 0 {
			rep.Differences = append(rep.Differences, Difference{Seq: led.LastSeq, What: DiffHubAhead,
				Totem: "no operations", Hub: fmt.Sprintf("applied up to %d", led.LastSeq)})
		}
		return rep, nil
	}
	lo, hi := entries[len(entries)-1].Seq, entries[0].Seq
	rep.LocalLastSeq = hi
	hub := make(map[uint64]protocol.Result)
	for from := lo; from <= hi; from += protocol.MaxLedger { // at most resyncWindow/MaxLedger+1 pages
		led, err := l.Ledger(ctx, from, protocol.MaxLedger)
		if err != nil {
			return nil, err
		}
		rep.HubLastSeq = led.LastSeq
		for _, r := range led.Results {
			hub[r.Seq] = r
		}
	}
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		rep.Checked++
		d := Difference{Seq: e.Seq, OpID: e.ID, Kind: e.Kind, Totem: entryState(e) + ": " + describe(e.Result)}
		r, applied := hub[e.Seq]
		switch {
		case !applied && e.Done && e.Seq > rep.HubLastSeq:
			d.What, d.Hub = DiffNotAtHub, "not applied"
		case !applied:
			continue // still on its way, or the hub has it and the totem not yet: nothing to adopt
		case r.OpID != e.ID:
			d.What, d.Hub, d.OpID = DiffForeign, "op "+r.OpID+": "+describe(&r), e.ID
		case !e.Done || e.Result == nil:
			d.What, d.Hub = DiffPendingApplied, describe(&r)
		case describe(e.Result) != describe(&r):
			d.What, d.Hub = DiffOutcome, describe(&r)
		default:
			continue
		}
		if d.What == DiffPendingApplied || d.What == DiffOutcome {
			if _, after, err := a.o.Outbox.Adopt(&r); err != nil {
				a.log.Warn("resync: hub outcome not adopted", "seq", e.Seq, "err", err)
			} else {
				d.Adopted = true
				a.t.Result(after) // a session waiting for it hears the news
			}
		}
		rep.Differences = append(rep.Differences, d)
	}
	if rep.HubLastSeq > hi {
		rep.Differences = append(rep.Differences, Difference{Seq: rep.HubLastSeq, What: DiffHubAhead,
			Totem: fmt.Sprintf("last seq %d", hi), Hub: fmt.Sprintf("applied up to %d", rep.HubLastSeq)})
	}
	a.log.Info("resync", "checked", rep.Checked, "differences", len(rep.Differences), "hub_last_seq", rep.HubLastSeq)
	return rep, nil
}
