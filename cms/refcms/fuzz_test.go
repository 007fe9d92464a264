package refcms

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/aslcns/totem/cms"
)

// FuzzCounterOps feeds arbitrary payloads to the kinds of the counter
// procedures (consents with a delegate, the second identity check,
// reprint with a new contact, reissue, history with a document), as from
// an enabled counter or not: the CMS answers with an outcome (never an
// error, never a panic), a refused one changes nothing, and a lookup never
// changes anything.
func FuzzCounterOps(f *testing.F) {
	kinds := []string{cms.KindConsent, cms.KindLookup, cms.KindReprint, cms.KindReissue, cms.KindHistory}
	seed := func(k int, counter bool, v any) {
		b, _ := json.Marshal(v)
		f.Add(uint8(k), counter, b)
	}
	c := goodRequest()
	assistedConsent(&c)
	c.Delegate, c.Declaration = &cms.Delegation{Kind: cms.DelegTutor, Name: "Giuseppe Verdi", CF: tutorCF}, true
	seed(0, false, c)
	seed(1, false, goodLookup())
	seed(1, false, cms.LookupRequest{Card: cms.CardRef{CF: activeRef.CF, Expiry: activeRef.Expiry}, TEAM: cms.TEAM(activeSerial),
		Channel: cms.Assisted, Operator: operator})
	r := goodReprint()
	r.Channel, r.Operator, r.Document = cms.Assisted, operator, doc()
	r.Contact = &cms.Contact{Channel: cms.ContactEmail, Address: "a@b.it"}
	seed(2, false, r)
	seed(3, true, goodReissue())
	seed(4, false, cms.HistoryRequest{Card: activeRef, Attendance: cms.Attendance{Channel: cms.Assisted, Operator: operator, Document: doc()}, Scope: cms.HistoryAll})
	f.Add(uint8(1), false, []byte(`{"team":"80380","channel":"assisted"}`))
	f.Add(uint8(3), true, []byte(`{"counter_enabled":true}`))
	f.Add(uint8(0), false, []byte(`{"delegate":null,"document":{}}`))
	f.Fuzz(func(t *testing.T, k uint8, counter bool, payload []byte) {
		e := newEnv(t, nil)
		kind := kinds[int(k)%len(kinds)]
		before := e.snapshot()
		op := e.op(kind, string(payload))
		op.Counter = counter
		out, err := e.s.Apply(context.Background(), op)
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		if !out.Accepted && len(out.Rejects) == 0 {
			t.Fatal("refused without a code")
		}
		if (!out.Accepted || kind == cms.KindLookup) && !reflect.DeepEqual(before, e.snapshot()) {
			t.Fatal("the records changed")
		}
	})
}
