package refcms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/aslcns/totem/cms"
	bolt "go.etcd.io/bbolt"
)

func corrected(given bool) cms.ConsentRequest {
	r := goodRequest()
	r.Consents[0].Given = given
	return r
}

func correction(ref, protocol string, payload any) cms.CorrectionRequest {
	b, _ := json.Marshal(payload)
	return cms.CorrectionRequest{Ref: ref, Protocol: protocol, Payload: b}
}

// TestVariations runs corrections and cancellations against an original
// applied first on a fresh store: what is accepted changes what it should,
// what is refused says why with a code and changes nothing.
func TestVariations(t *testing.T) {
	otherPay := goodReader()
	otherPay.Payment.Reference = "PAG-2026-000888"
	otherCard := goodReader()
	otherCard.Card = revokedRef
	otherCard.Payment.Reference = "PAG-2026-000999"
	badPay := goodReader()
	badPay.Payment.AmountCents = 100
	revokedConsent := goodRequest()
	revokedConsent.Card = revokedRef
	tests := []struct {
		name     string
		original func(e *env) (kind string, payload any)
		between  func(e *env) // operations after the original
		kind     string
		payload  func(ref, protocol string) any
		want     []string // nil: accepted
		check    func(t *testing.T, e *env)
	}{
		{
			name:     "consent corrected",
			original: func(*env) (string, any) { return cms.KindConsent, goodRequest() },
			kind:     cms.KindCorrection,
			payload:  func(ref, p string) any { return correction(ref, p, corrected(false)) },
			check: func(t *testing.T, e *env) {
				r, _ := e.s.Consents(activeSerial)
				if r.Consents[0].Given || r.OpID != id(1) || r.VariedBy != id(2) {
					t.Fatalf("consents %+v", r)
				}
			},
		},
		{
			name: "consent cancelled back to the previous choice",
			original: func(e *env) (string, any) {
				e.mustAccept(cms.KindConsent, corrected(false)) // id 1: the earlier choice
				return cms.KindConsent, goodRequest()           // id 2
			},
			kind: cms.KindCancellation,
			payload: func(ref, p string) any {
				return cms.CancellationRequest{Ref: ref, Protocol: p, Reason: "scelta sbagliata"}
			},
			check: func(t *testing.T, e *env) {
				r, _ := e.s.Consents(activeSerial)
				if r.Consents[0].Given || r.OpID != id(1) {
					t.Fatalf("consents %+v", r)
				}
			},
		},
		{
			name:     "first consent cancelled: none left",
			original: func(*env) (string, any) { return cms.KindConsent, goodRequest() },
			kind:     cms.KindCancellation,
			payload:  func(ref, p string) any { return cms.CancellationRequest{Ref: ref} },
			check: func(t *testing.T, e *env) {
				if _, err := e.s.Consents(activeSerial); !errors.Is(err, cms.ErrNotFound) {
					t.Fatalf("consents still there: %v", err)
				}
			},
		},
		{
			name:     "reader payment corrected, counter kept",
			original: func(*env) (string, any) { return cms.KindReader, goodReader() },
			kind:     cms.KindCorrection,
			payload:  func(ref, p string) any { return correction(ref, p, otherPay) },
			check: func(t *testing.T, e *env) {
				if n := e.card(activeSerial).Readers; n != 1 {
					t.Fatalf("readers %d", n)
				}
				// The old reference is free again, the new one used.
				e.mustAccept(cms.KindReader, goodReader())
				if out := e.do(cms.KindReader, otherPay); !slices.Equal(codesOf(out), []string{cms.CodePaymentReused}) {
					t.Fatalf("new reference not recorded: %+v", out.Rejects)
				}
			},
		},
		{
			name:     "reader cancelled: counter and reference given back",
			original: func(*env) (string, any) { return cms.KindReader, goodReader() },
			kind:     cms.KindCancellation,
			payload:  func(ref, p string) any { return cms.CancellationRequest{Ref: ref, Protocol: p} },
			check: func(t *testing.T, e *env) {
				if n := e.card(activeSerial).Readers; n != 0 {
					t.Fatalf("readers %d", n)
				}
				e.mustAccept(cms.KindReader, goodReader())
			},
		},
		{
			name:     "rejected consent corrected: applied with the consent rules",
			original: func(*env) (string, any) { return cms.KindConsent, revokedConsent },
			kind:     cms.KindCorrection,
			payload:  func(ref, p string) any { return correction(ref, p, goodRequest()) },
			check: func(t *testing.T, e *env) {
				if r, err := e.s.Consents(activeSerial); err != nil || r.OpID != id(2) {
					t.Fatalf("consents %+v %v", r, err)
				}
			},
		},
		{
			name:     "correction checked like the original",
			original: func(*env) (string, any) { return cms.KindReader, goodReader() },
			kind:     cms.KindCorrection,
			payload:  func(ref, p string) any { return correction(ref, p, badPay) },
			want:     []string{cms.CodePayment},
		},
		{
			name:     "correction of another card",
			original: func(*env) (string, any) { return cms.KindReader, goodReader() },
			kind:     cms.KindCorrection,
			payload:  func(ref, p string) any { return correction(ref, p, otherCard) },
			want:     []string{cms.CodeCardChanged},
		},
		{
			name:     "activation not correctable",
			original: func(*env) (string, any) { return cms.KindActivation, goodActivation() },
			kind:     cms.KindCorrection,
			payload:  func(ref, p string) any { return correction(ref, p, goodActivation()) },
			want:     []string{cms.CodeNotCorrectable},
		},
		{
			name:     "revocation not cancellable",
			original: func(*env) (string, any) { return cms.KindRevocation, goodRevocation() },
			kind:     cms.KindCancellation,
			payload:  func(ref, p string) any { return cms.CancellationRequest{Ref: ref} },
			want:     []string{cms.CodeNotCancellable},
		},
		{
			name:     "rejected original cannot be cancelled",
			original: func(*env) (string, any) { return cms.KindConsent, revokedConsent },
			kind:     cms.KindCancellation,
			payload:  func(ref, p string) any { return cms.CancellationRequest{Ref: ref} },
			want:     []string{cms.CodeNotAccepted},
		},
		{
			name:     "unknown original",
			original: func(*env) (string, any) { return cms.KindConsent, goodRequest() },
			kind:     cms.KindCancellation,
			payload:  func(_, _ string) any { return cms.CancellationRequest{Ref: id(99)} },
			want:     []string{cms.CodeRefUnknown},
		},
		{
			name:     "wrong protocol number",
			original: func(*env) (string, any) { return cms.KindConsent, goodRequest() },
			kind:     cms.KindCancellation,
			payload:  func(ref, _ string) any { return cms.CancellationRequest{Ref: ref, Protocol: "261123000000999"} },
			want:     []string{cms.CodeProtocolMismatch},
		},
		{
			name:     "superseded by a later consent",
			original: func(*env) (string, any) { return cms.KindConsent, goodRequest() },
			between:  func(e *env) { e.mustAccept(cms.KindConsent, corrected(false)) },
			kind:     cms.KindCancellation,
			payload:  func(ref, _ string) any { return cms.CancellationRequest{Ref: ref} },
			want:     []string{cms.CodeSuperseded},
		},
		{
			name:     "cancelled twice",
			original: func(*env) (string, any) { return cms.KindReader, goodReader() },
			between: func(e *env) {
				e.mustAccept(cms.KindCancellation, cms.CancellationRequest{Ref: id(1)})
			},
			kind:    cms.KindCancellation,
			payload: func(ref, _ string) any { return cms.CancellationRequest{Ref: ref} },
			want:    []string{cms.CodeSuperseded},
		},
		{
			name:     "bad payload",
			original: func(*env) (string, any) { return cms.KindConsent, goodRequest() },
			kind:     cms.KindCorrection,
			payload:  func(ref, _ string) any { return `{"ref":"` + ref + `","payload":[1]}` },
			want:     []string{cms.CodeBadPayload},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			kind, payload := tc.original(e)
			orig := e.op(kind, payload)
			out := e.apply(orig)
			if tc.between != nil {
				tc.between(e)
			}
			before := e.snapshot()
			vop := e.op(tc.kind, tc.payload(orig.ID, out.Protocol))
			v := e.apply(vop)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if got := codesOf(v); !slices.Equal(got, want) || v.Accepted != (len(want) == 0) {
				t.Fatalf("accepted=%v codes %v, want %v (%+v)", v.Accepted, got, want, v.Rejects)
			}
			if !v.Accepted {
				if after := e.snapshot(); !reflect.DeepEqual(before, after) {
					t.Fatalf("a refused variation changed the records")
				}
			} else if tc.check != nil {
				tc.check(t, e)
			}
			// The original is never erased: the audit shows both, the
			// variation with its reference.
			audit, _ := e.s.Audit()
			i := slices.IndexFunc(audit, func(a AuditRecord) bool { return a.OpID == vop.ID })
			if !slices.ContainsFunc(audit, func(a AuditRecord) bool { return a.OpID == orig.ID }) || i < 0 ||
				audit[i].Kind != tc.kind || tc.want == nil && audit[i].Ref != orig.ID {
				t.Fatalf("audit %+v", audit)
			}
			if v.Accepted {
				if d := data[cms.VariationResult](t, v); d.Ref != orig.ID || d.Original != out.Protocol || d.Kind != kind {
					t.Fatalf("data %+v", d)
				}
			}
		})
	}
}

// FuzzVariation feeds arbitrary payloads to corrections and cancellations
// of an accepted consent: the CMS answers with an outcome (never an
// error, never a panic), and a refused one changes nothing.
func FuzzVariation(f *testing.F) {
	ref := id(1)
	good, _ := json.Marshal(correction(ref, "", corrected(false)))
	f.Add(true, good)
	f.Add(false, []byte(`{"ref":"`+ref+`","reason":"x"}`))
	f.Add(true, []byte(`{"ref":"`+ref+`","payload":{"card":{}}}`))
	f.Add(false, []byte(`{"ref":"`+ref+`","protocol":"1"}`))
	f.Add(true, []byte(`{"ref":1}`))
	f.Add(false, []byte(`[]`))
	f.Fuzz(func(t *testing.T, correct bool, payload []byte) {
		e := newEnv(t, nil)
		e.mustAccept(cms.KindConsent, goodRequest())
		kind := cms.KindCancellation
		if correct {
			kind = cms.KindCorrection
		}
		before := e.snapshot()
		op := e.op(kind, string(payload))
		out, err := e.s.Apply(context.Background(), op)
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		if !out.Accepted {
			if len(out.Rejects) == 0 {
				t.Fatal("refused without a code")
			}
			if after := e.snapshot(); !reflect.DeepEqual(before, after) {
				t.Fatal("a refused variation changed the records")
			}
		}
	})
}

// TestCancelLegacyConsent: a consent record an older version wrote keeps
// the one it replaced inside it; cancelling it still puts that one back.
func TestCancelLegacyConsent(t *testing.T) {
	bboltOnly(t, "records of older bbolt versions")
	e := newEnv(t, nil)
	e.mustAccept(cms.KindConsent, corrected(false)) // id 1
	e.mustAccept(cms.KindConsent, goodRequest())    // id 2
	err := e.s.db.Update(func(tx *bolt.Tx) error {
		cur, err := e.s.consentsIn(tx, activeSerial)
		if err != nil || cur.Previous == nil {
			return fmt.Errorf("no previous: %+v %v", cur, err)
		}
		if err := putJSON(tx.Bucket(bConsents), []byte(activeSerial), cur); err != nil { // embedded
			return err
		}
		return tx.Bucket(bConsentsPrev).Delete([]byte(activeSerial))
	})
	if err != nil {
		t.Fatal(err)
	}
	e.mustAccept(cms.KindCancellation, cms.CancellationRequest{Ref: id(2)})
	if r, err := e.s.Consents(activeSerial); err != nil || r.OpID != id(1) || r.Consents[0].Given || r.Previous != nil {
		t.Fatalf("consents %+v, %v", r, err)
	}
}

// A totem's cancellation acts on its own original, never on another
// totem's operation that carries the same op id (ids are unique per totem
// only): the consent records are found by op id and protocol number.
func TestVariationFindsItsOwnTotemsRecord(t *testing.T) {
	e := newEnv(t, nil)
	card := e.card(adultSerial)
	card.State = cms.CardActive
	if err := e.s.PutCard(card); err != nil {
		t.Fatal(err)
	}
	adult := goodRequest()
	adult.Card = adultRef
	mine := e.opAs("demo-01", now, cms.KindConsent, adult)
	orig := e.apply(mine)
	if !orig.Accepted {
		t.Fatalf("demo-01's consent %+v", orig)
	}
	theirs := e.opAs("demo-02", now, cms.KindConsent, goodRequest()) // activeSerial, listed first
	theirs.ID = mine.ID
	if out := e.apply(theirs); !out.Accepted {
		t.Fatalf("demo-02's consent %+v", out)
	}
	before, _ := e.s.Consents(activeSerial)
	out := e.apply(e.opAs("demo-01", now, cms.KindCancellation,
		cms.CancellationRequest{Ref: mine.ID, Protocol: orig.Protocol, Reason: "scelta sbagliata"}))
	if !out.Accepted {
		t.Fatalf("cancellation %+v", out)
	}
	if after, _ := e.s.Consents(activeSerial); !reflect.DeepEqual(before, after) {
		t.Fatalf("demo-02's citizen's consents changed:\n%+v\n%+v", before, after)
	}
	if r, err := e.s.Consents(adultSerial); err == nil && r.OpID == mine.ID && r.VariedBy == "" {
		t.Fatalf("demo-01's consent not cancelled: %+v", r)
	}
}
