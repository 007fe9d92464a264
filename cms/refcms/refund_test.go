package refcms

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/aslcns/totem/cms"
)

func refund(ref, protocol string) cms.RefundRequest {
	return cms.RefundRequest{Ref: ref, Protocol: protocol, AmountCents: cms.ReaderFeeCents, Reason: "richiesta annullata"}
}

// TestRefund: the reader fee is refunded only for a reader request of the
// same totem, accepted and then cancelled, and only once; each refusal
// says why with its code and changes nothing. The refund is an operation
// of its own, referencing the reader request, distinct from the
// cancellation: the counter the cancellation gave back stays as it is.
func TestRefund(t *testing.T) {
	badPay := goodReader()
	badPay.Payment.AmountCents = 100
	cancel := func(e *env, ref string) { e.mustAccept(cms.KindCancellation, cms.CancellationRequest{Ref: ref}) }
	tests := []struct {
		name     string
		totem    string // of the original; default t1
		original func() (string, any)
		between  func(e *env, ref string)
		payload  func(ref, protocol string) any
		want     []string // nil: accepted
	}{
		{name: "cancelled reader request refunded", between: cancel},
		{name: "with its protocol number", between: cancel, payload: func(ref, p string) any { return refund(ref, p) }},
		{name: "refunded twice", between: func(e *env, ref string) { cancel(e, ref); e.mustAccept(cms.KindRefund, refund(ref, "")) },
			want: []string{cms.CodeRefunded}},
		{name: "not cancelled", want: []string{cms.CodeNotCancelled}},
		{name: "not a reader request", original: func() (string, any) { return cms.KindConsent, goodRequest() },
			between: cancel, want: []string{cms.CodeNotRefundable}},
		{name: "reader request rejected", original: func() (string, any) { return cms.KindReader, badPay },
			want: []string{cms.CodeNotAccepted}},
		{name: "another totem's reader request", totem: "t2", want: []string{cms.CodeRefUnknown}},
		{name: "unknown original", between: cancel, payload: func(string, string) any { return refund(id(99), "") },
			want: []string{cms.CodeRefUnknown}},
		{name: "wrong protocol number", between: cancel,
			payload: func(ref, _ string) any { return refund(ref, "261123000000999") }, want: []string{cms.CodeProtocolMismatch}},
		{name: "not the reader fee", between: cancel,
			payload: func(ref, _ string) any { r := refund(ref, ""); r.AmountCents = 840; return r }, want: []string{cms.CodeRefundAmount}},
		{name: "no reference", between: cancel, payload: func(string, string) any { return refund("", "") },
			want: []string{cms.CodeBadPayload}},
		{name: "bad payload", between: cancel, payload: func(ref, _ string) any { return `{"ref":"` + ref + `","amount_cents":"420"}` },
			want: []string{cms.CodeBadPayload}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			kind, payload := any(cms.KindReader), any(goodReader())
			if tc.original != nil {
				kind, payload = tc.original()
			}
			totem := tc.totem
			if totem == "" {
				totem = "t1"
			}
			orig := e.opAs(totem, now, kind.(string), payload)
			out := e.apply(orig)
			if tc.between != nil {
				tc.between(e, orig.ID)
			}
			before := e.snapshot()
			readers := e.card(activeSerial).Readers
			var p any = refund(orig.ID, "")
			if tc.payload != nil {
				p = tc.payload(orig.ID, out.Protocol)
			}
			op := e.op(cms.KindRefund, p)
			got := e.apply(op)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if codes := codesOf(got); !slices.Equal(codes, want) || got.Accepted != (len(want) == 0) {
				t.Fatalf("accepted=%v codes %v, want %v (%+v)", got.Accepted, codes, want, got.Rejects)
			}
			audit, _ := e.s.Audit()
			i := slices.IndexFunc(audit, func(a AuditRecord) bool { return a.OpID == op.ID })
			if i < 0 || audit[i].Kind != cms.KindRefund {
				t.Fatalf("audit %+v", audit)
			}
			if !got.Accepted {
				if after := e.snapshot(); !reflect.DeepEqual(before, after) {
					t.Fatal("a refused refund changed the records")
				}
				return
			}
			if audit[i].Ref != orig.ID {
				t.Fatalf("audit ref %q", audit[i].Ref)
			}
			d := data[cms.RefundResult](t, got)
			if d.Ref != orig.ID || d.Original != out.Protocol || d.Cancellation == "" || d.Payment != goodReader().Payment.Reference ||
				d.AmountCents != cms.ReaderFeeCents {
				t.Fatalf("data %+v", d)
			}
			if n := e.card(activeSerial).Readers; n != readers {
				t.Fatalf("readers %d, were %d: a refund is not a cancellation", n, readers)
			}
			rec, found, err := e.s.Refund("t1", orig.ID)
			if err != nil || !found || rec.RefundedBy != op.ID || rec.RefundProtocol != got.Protocol {
				t.Fatalf("refund record %+v %v %v", rec, found, err)
			}
			h, _ := e.s.History(activeSerial)
			if len(h) == 0 || h[len(h)-1].Kind != cms.KindRefund || h[len(h)-1].Protocol != got.Protocol {
				t.Fatalf("history %+v", h)
			}
		})
	}
}

// FuzzRefund feeds arbitrary refund payloads after a cancelled reader
// request: an outcome always (never an error or a panic), and a refused
// refund changes nothing.
func FuzzRefund(f *testing.F) {
	good, _ := json.Marshal(refund(id(1), ""))
	f.Add(good)
	f.Add([]byte(`{"ref":"` + id(1) + `","amount_cents":840}`))
	f.Add([]byte(`{"ref":"` + id(1) + `","amount_cents":420,"protocol":"x","extra":1}`))
	f.Add([]byte(`{"ref":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		e := newEnv(t, nil)
		e.mustAccept(cms.KindReader, goodReader())
		e.mustAccept(cms.KindCancellation, cms.CancellationRequest{Ref: id(1)})
		before := e.snapshot()
		out := e.do(cms.KindRefund, string(payload))
		if !out.Accepted && !reflect.DeepEqual(before, e.snapshot()) {
			t.Fatal("a refused refund changed the records")
		}
	})
}
