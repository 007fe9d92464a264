package refcms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	bolt "go.etcd.io/bbolt"
)

var now = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := openAt(t, path, &Options{Seed: cms.DemoCards()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func consentOp(t *testing.T, id string, seq uint64, req cms.ConsentRequest) cms.Op {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return cms.Op{ID: id, Totem: "t1", Seq: seq, Kind: cms.KindConsent, Payload: b, Received: now}
}

func goodRequest() cms.ConsentRequest {
	return cms.ConsentRequest{
		Card:       cms.CardRef{Serial: "6090012345678000", CF: "RSSMRA80A01H501U", Expiry: "2030-12-31"},
		Policy:     "fse-2020",
		Consents:   []cms.Consent{{Code: "consultazione", Given: true}, {Code: "opposizione_pregresso", Given: false}},
		Attendance: cms.Attendance{Channel: cms.SelfService},
	}
}

func id(n int) string { return fmt.Sprintf("%032x", n) }

func TestApplyConsentOnceInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cms.db")
	s := open(t, path)
	ctx := context.Background()

	out, err := s.Apply(ctx, consentOp(t, id(1), 1, goodRequest()))
	if err != nil || !out.Accepted || out.Protocol == "" || out.Duplicate {
		t.Fatalf("first apply = %+v, %v", out, err)
	}
	rec, err := s.Consents("6090012345678000")
	if err != nil || rec.OpID != id(1) || rec.Protocol != out.Protocol || !rec.Consents[0].Given {
		t.Fatalf("consents = %+v, %v", rec, err)
	}

	// The same operation again (republished, or the hub restarted between
	// apply and answer): the stored outcome, nothing applied twice.
	s.Close()
	s = open(t, path)
	defer s.Close()
	dup, err := s.Apply(ctx, consentOp(t, id(1), 1, goodRequest()))
	if err != nil || !dup.Duplicate || dup.Protocol != out.Protocol || !dup.Accepted {
		t.Fatalf("duplicate apply = %+v, %v", dup, err)
	}
	audit, _ := s.Audit()
	if len(audit) != 1 {
		t.Fatalf("audit has %d records, want 1", len(audit))
	}

	// A gap: seq 3 before 2 is not applied.
	gap, err := s.Apply(ctx, consentOp(t, id(3), 3, goodRequest()))
	if err != nil || !gap.OutOfOrder || gap.Expect != 2 || gap.Protocol != "" {
		t.Fatalf("gap apply = %+v, %v", gap, err)
	}
	if _, err := s.Apply(ctx, consentOp(t, id(2), 2, goodRequest())); err != nil {
		t.Fatal(err)
	}
	if out, _ := s.Apply(ctx, consentOp(t, id(3), 3, goodRequest())); !out.Accepted {
		t.Fatalf("seq 3 after 2 = %+v", out)
	}
	// A new id reusing an applied seq is refused and changes nothing.
	reused, _ := s.Apply(ctx, consentOp(t, id(9), 2, goodRequest()))
	if reused.Accepted || len(reused.Rejects) != 1 || reused.Rejects[0].Code != cms.CodeSeqReused {
		t.Fatalf("reused seq = %+v", reused)
	}
	if last, _ := s.LastSeq("t1"); last != 3 {
		t.Fatalf("last seq %d, want 3", last)
	}
	// The same id from another totem is that totem's own operation:
	// dedup is per totem (TestForeignIDsDoNotTouchAnotherTotem).
	other := consentOp(t, id(1), 1, goodRequest())
	other.Totem = "t2"
	if out, _ := s.Apply(ctx, other); !out.Accepted || out.Duplicate || out.Protocol == dup.Protocol {
		t.Fatalf("id used by another totem = %+v", out)
	}
	if again, _ := s.Apply(ctx, consentOp(t, id(1), 1, goodRequest())); !again.Duplicate || again.Protocol != dup.Protocol {
		t.Fatalf("t1's own operation after t2's = %+v", again)
	}
}

func TestConsentRules(t *testing.T) {
	tests := []struct {
		name   string
		mod    func(*cms.ConsentRequest, *cms.Op)
		code   string
		accept bool
	}{
		{"ok", func(*cms.ConsentRequest, *cms.Op) {}, "", true},
		{"revoked card", func(r *cms.ConsentRequest, _ *cms.Op) {
			r.Card = cms.CardRef{Serial: "6090098765432002", CF: "BNCLRA75D45F205C", Expiry: "2029-06-30"}
		}, cms.CodeCardRevoked, false},
		{"unknown card", func(r *cms.ConsentRequest, _ *cms.Op) { r.Card.Serial = "6090000000000000" }, cms.CodeCardUnknown, false},
		{"CF mismatch", func(r *cms.ConsentRequest, _ *cms.Op) { r.Card.CF = "XXXXXX80A01H501U" }, cms.CodeCardMismatch, false},
		{"old policy", func(r *cms.ConsentRequest, _ *cms.Op) {
			r.Policy = "fse-2016"
			r.Consents = []cms.Consent{{Code: "alimentazione"}, {Code: "consultazione"}, {Code: "pregresso"}}
		}, cms.CodePolicy, false},
		{"missing consent", func(r *cms.ConsentRequest, _ *cms.Op) { r.Consents = r.Consents[:1] }, cms.CodePolicy, false},
		{"bad channel", func(r *cms.ConsentRequest, _ *cms.Op) { r.Channel = "web" }, cms.CodeBadPayload, false},
		{"expired op", func(_ *cms.ConsentRequest, o *cms.Op) { o.Expires = now.Add(-time.Minute) }, cms.CodeExpired, false},
		{"unknown kind", func(_ *cms.ConsentRequest, o *cms.Op) { o.Kind = "sospensione" }, cms.CodeUnknownKind, false},
		{"bad payload", func(_ *cms.ConsentRequest, o *cms.Op) { o.Payload = []byte(`{"card":1}`) }, cms.CodeBadPayload, false},
		{"card expired", func(_ *cms.ConsentRequest, o *cms.Op) { o.Received = time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC) }, cms.CodeCardExpired, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t, filepath.Join(t.TempDir(), "cms.db"))
			defer s.Close()
			req := goodRequest()
			op := consentOp(t, id(1), 1, req)
			tt.mod(&req, &op)
			if op.Kind == cms.KindConsent && string(op.Payload) != `{"card":1}` {
				op.Payload, _ = json.Marshal(req)
			}
			out, err := s.Apply(context.Background(), op)
			if err != nil {
				t.Fatal(err)
			}
			if out.Accepted != tt.accept || out.Protocol == "" {
				t.Fatalf("outcome %+v", out)
			}
			if tt.code != "" && (len(out.Rejects) == 0 || out.Rejects[0].Code != tt.code) {
				t.Fatalf("rejects %+v, want %s", out.Rejects, tt.code)
			}
			// A rejection consumes the sequence number: the next one is applied.
			if last, _ := s.LastSeq("t1"); last != 1 {
				t.Fatalf("last seq %d", last)
			}
			_, err = s.Consents(req.Card.Serial)
			if tt.accept != (err == nil) {
				t.Fatalf("consent stored = %v, accepted %v", err == nil, tt.accept)
			}
		})
	}
}

func TestApplyBatchIsSequential(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "cms.db"))
	defer s.Close()
	ops := []cms.Op{
		consentOp(t, id(1), 1, goodRequest()),
		consentOp(t, id(1), 1, goodRequest()), // the same op twice in one batch
		consentOp(t, id(3), 3, goodRequest()), // ahead of 2
		consentOp(t, id(2), 2, goodRequest()),
	}
	outs, err := s.ApplyBatch(context.Background(), ops)
	if err != nil {
		t.Fatal(err)
	}
	if !outs[0].Accepted || !outs[1].Duplicate || outs[1].Protocol != outs[0].Protocol ||
		!outs[2].OutOfOrder || outs[2].Expect != 2 || !outs[3].Accepted {
		t.Fatalf("outcomes %+v", outs)
	}
	if audit, _ := s.Audit(); len(audit) != 2 {
		t.Fatalf("audit %d", len(audit))
	}
}

// A totem that sends the ids another totem will use (predicted, or seen)
// gets its own operations applied and nothing else: the other totem's
// operations with those ids all apply exactly once, in sequence, and its
// queue goes on. Before dedup was scoped per totem, demo-01's two were
// rejected SEQ_REUSED, final, with their sequence numbers never consumed.
func TestForeignIDsDoNotTouchAnotherTotem(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	victim := []cms.Op{e.opAs("demo-01", now, cms.KindReader, goodReader()),
		e.opAs("demo-01", now, cms.KindHistory, goodHistory()),
		e.opAs("demo-01", now, cms.KindHistory, goodHistory())}
	for _, v := range victim[:2] {
		// demo-02 goes first with demo-01's upcoming ids, at its own seqs.
		op := e.opAs("demo-02", now, cms.KindHistory, goodHistory())
		op.ID = v.ID
		if out := e.apply(op); !out.Accepted {
			t.Fatalf("demo-02's own operation: %+v", out)
		}
	}
	for i, op := range victim {
		out, err := e.s.Apply(ctx, op)
		if err != nil || out.Duplicate || !out.Accepted || out.Protocol == "" {
			t.Fatalf("demo-01 seq %d: %+v, %v", op.Seq, out, err)
		}
		// Sent again: its own stored outcome, nothing applied twice.
		dup, err := e.s.Apply(ctx, victim[i])
		if err != nil || !dup.Duplicate || dup.Protocol != out.Protocol {
			t.Fatalf("demo-01 seq %d again: %+v, %v", op.Seq, dup, err)
		}
	}
	if last, _ := e.s.LastSeq("demo-01"); last != 3 {
		t.Fatalf("demo-01 last seq %d, want 3", last)
	}
	if c := e.card(activeSerial); c.Readers != 1 {
		t.Fatalf("readers %d, want 1 (applied once)", c.Readers)
	}
	_, entries, err := e.s.Ledger("demo-01", 1, 10)
	if err != nil || len(entries) != 3 || entries[0].OpID != victim[0].ID || !entries[0].Outcome.Accepted {
		t.Fatalf("demo-01 ledger %+v, %v", entries, err)
	}
}

// An id a totem used again at its next sequence number is refused to it,
// and the number is consumed: the totem's next operation applies.
func TestOwnIDReusedConsumesTheSeq(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	first := e.opAs("t1", now, cms.KindHistory, goodHistory())
	e.apply(first)
	again := e.opAs("t1", now, cms.KindHistory, goodHistory())
	again.ID = first.ID
	for range 2 { // a resend gets the same final refusal
		out, err := e.s.Apply(ctx, again)
		if err != nil || out.Accepted || out.OutOfOrder || !slices.Contains(codesOf(out), cms.CodeSeqReused) {
			t.Fatalf("reused id: %+v, %v", out, err)
		}
	}
	if out := e.apply(e.opAs("t1", now, cms.KindHistory, goodHistory())); !out.Accepted {
		t.Fatalf("next operation %+v", out)
	}
	if last, _ := e.s.LastSeq("t1"); last != 3 {
		t.Fatalf("last seq %d, want 3", last)
	}
}

// Op records written before dedup was scoped (under the id alone) still
// answer their own totem's duplicates, and no other totem's.
func TestLegacyOpRecords(t *testing.T) {
	bboltOnly(t, "records of older bbolt versions")
	e := newEnv(t, nil)
	ctx := context.Background()
	op := e.opAs("t1", now, cms.KindHistory, goodHistory())
	first := e.apply(op)
	// Move the record where an older version kept it.
	if err := e.s.db.Update(func(tx *bolt.Tx) error {
		ops := tx.Bucket(bOps)
		v := bytes.Clone(ops.Get(opKey("t1", op.ID)))
		if v == nil {
			return errors.New("no scoped record")
		}
		if err := ops.Delete(opKey("t1", op.ID)); err != nil {
			return err
		}
		return ops.Put([]byte(op.ID), v)
	}); err != nil {
		t.Fatal(err)
	}
	if dup, err := e.s.Apply(ctx, op); err != nil || !dup.Duplicate || dup.Protocol != first.Protocol {
		t.Fatalf("t1's duplicate: %+v, %v", dup, err)
	}
	other := e.opAs("t2", now, cms.KindHistory, goodHistory())
	other.ID = op.ID
	if out := e.apply(other); !out.Accepted || out.Protocol == first.Protocol {
		t.Fatalf("t2's operation: %+v", out)
	}
}
