package outbox_test

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
	bolt "go.etcd.io/bbolt"
)

// rewrite changes stored pending records of the closed outbox at path.
func rewrite(t *testing.T, path string, vals map[uint64][]byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		for seq, v := range vals {
			if err := tx.Bucket([]byte("pending")).Put(binary.BigEndian.AppendUint64(nil, seq), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hostile returns e's stored record with one field changed.
func hostile(t *testing.T, e outbox.Entry, field string, val any) []byte {
	t.Helper()
	m := map[string]any{"id": e.ID, "kind": e.Kind, "payload": e.Payload, "created": e.Created}
	m[field] = val
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVoidsKeepTheSequence corrupts records in every way the hub would
// notice: each is quarantined, a void takes its sequence number, the
// voids are sent in order with the rest and leave on their final result.
func TestVoidsKeepTheSequence(t *testing.T) {
	path := dbPath(t)
	o := open(t, path)
	var es []outbox.Entry
	for i := 1; i <= 7; i++ {
		es = append(es, enqueue(t, o, i))
	}
	o.Close()
	rewrite(t, path, map[uint64][]byte{
		2: []byte("\x00garbage"),                         // does not decode
		3: hostile(t, es[2], "kind", "../../etc"),        // kind the hub refuses
		4: hostile(t, es[3], "payload", []byte(`[1,2]`)), // payload not an object
		5: hostile(t, es[4], "id", es[0].ID),             // another entry's id
		6: hostile(t, es[5], "payload", []byte(`{"a":`)), // payload not JSON
	})
	o = openWith(t, path, nil)
	if _, err := o.Pending(0, 100); err != nil { // finds and quarantines them
		t.Fatal(err)
	}
	got, err := o.Pending(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 7 {
		t.Fatalf("pending %+v", got)
	}
	for i, e := range got {
		if e.Seq != uint64(i+1) {
			t.Fatalf("pending[%d] has seq %d", i, e.Seq)
		}
		voided := i >= 1 && i <= 5
		if voided != (e.Kind == protocol.KindVoid) {
			t.Fatalf("pending[%d] kind %q", i, e.Kind)
		}
		if voided && (e.ID != es[i].ID || string(e.Payload) == "" || e.Payload[0] != '{') {
			t.Fatalf("void %+v", e)
		}
		// What the uplink sends the hub's decoder takes.
		op, _ := protocol.Marshal(protocol.Op{V: protocol.Version, ID: e.ID, Totem: "t1", Seq: e.Seq,
			Kind: e.Kind, Payload: e.Payload, Created: e.Created})
		if _, err := protocol.DecodeOp(op); err != nil {
			t.Fatalf("pending[%d] would be refused by the hub: %v", i, err)
		}
	}
	qs, _ := o.Quarantined(10)
	reasons := map[string]int{}
	for _, q := range qs {
		reasons[q.Quarantine]++
	}
	if len(qs) != 5 || reasons[outbox.ReasonCorrupt] != 1 || reasons[outbox.ReasonInvalid] != 4 {
		t.Fatalf("quarantined %+v", qs)
	}
	for _, q := range qs {
		if err := o.Requeue(q.ID); err == nil {
			t.Fatalf("voided entry %d requeued", q.Seq)
		}
	}
	if q, _ := o.Stats(); q.Depth != 7 {
		t.Fatalf("stats %+v", q)
	}
	if u, _ := o.Usage(); u.Voids != 5 || u.Pending != 2 {
		t.Fatalf("usage %+v", u)
	}
	if err := o.MarkSent(got[1].ID, t0); err != nil {
		t.Fatalf("mark sent on a void: %v", err)
	}
	for _, e := range got {
		r, err := o.Record(final(e))
		if err != nil || !r.Done {
			t.Fatalf("record %d: %+v, %v", e.Seq, r, err)
		}
	}
	if q, _ := o.Stats(); q.Depth != 0 {
		t.Fatalf("stats after the results %+v", q)
	}
	if u, _ := o.Usage(); u.Voids != 0 || u.Pending != 0 || u.Quarantined != 5 {
		t.Fatalf("usage %+v", u)
	}
	// A late copy of a void's result leaves the original in quarantine.
	if g, err := o.Record(final(got[2])); err != nil || g.Done || g.Quarantine != outbox.ReasonInvalid {
		t.Fatalf("late result for a void: %+v, %v", g, err)
	}
	if qs, _ := o.Quarantined(10); len(qs) != 5 {
		t.Fatalf("quarantined after a late result: %+v", qs)
	}
	if rep, err := o.Sweep(t0); err != nil || rep.Scanned != 0 {
		t.Fatalf("sweep %+v, %v", rep, err)
	}
}

func TestEnqueueRefusesWhatTheHubWouldRefuse(t *testing.T) {
	o := open(t, dbPath(t))
	defer o.Close()
	for _, c := range []struct {
		kind    string
		payload string
	}{{"", `{}`}, {"Consent", `{}`}, {"con sent", `{}`}, {"consent", `[]`}, {"consent", `"x"`}, {"consent", `{"a":`}, {"consent", ``}} {
		if _, err := o.Enqueue(c.kind, []byte(c.payload), t0, time.Time{}); err == nil {
			t.Fatalf("enqueue %q %q accepted", c.kind, c.payload)
		}
	}
	if _, err := o.Enqueue("consent", jsonPayload('x', protocol.MaxPayload), t0, time.Time{}); !errors.Is(err, protocol.ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if q, _ := o.Stats(); q.LastSeq != 0 {
		t.Fatalf("refused enqueues used sequence numbers: %+v", q)
	}
}

// TestShedLeavesVoids: shed telemetry is replaced by voids the uplink
// sends; a citizen entry refused for lack of room keeps the shedding.
func TestShedLeavesVoids(t *testing.T) {
	o := openWith(t, dbPath(t), &outbox.Options{MaxPending: 3, Classes: classes})
	tel := mustEnqueue(t, o, "telemetry", 1)
	c1 := mustEnqueue(t, o, "consent", 2)
	c2 := mustEnqueue(t, o, "consent", 3)
	c3 := mustEnqueue(t, o, "consent", 4) // sheds tel
	if _, err := o.Enqueue("consent", []byte(`{}`), t0, time.Time{}); !errors.Is(err, outbox.ErrFull) {
		t.Fatalf("fourth citizen entry: %v", err)
	}
	got, err := o.Pending(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].Kind != protocol.KindVoid || got[0].ID != tel.ID || got[1].ID != c1.ID || got[3].ID != c3.ID {
		t.Fatalf("pending %+v", got)
	}
	if u, _ := o.Usage(); u.Pending != 3 || u.Voids != 1 || u.Shed != 1 {
		t.Fatalf("usage %+v", u)
	}
	// A result that is not final leaves the void; the final one ends it.
	if _, err := o.Record(result(got[0], protocol.TransportRefused, protocol.ProcessingPending)); err != nil {
		t.Fatal(err)
	}
	if q, _ := o.Stats(); q.Depth != 4 {
		t.Fatalf("stats %+v", q)
	}
	if _, err := o.Record(final(got[0])); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Get(tel.ID); !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("void after its result: %v", err)
	}
	if q, _ := o.Stats(); q.Depth != 3 || q.OldestSeq != c1.Seq {
		t.Fatalf("stats %+v", q)
	}
	_ = c2
}

// TestDamagedVoidRewritten: a void whose stored id names another entry is
// written again with its own, never sent as it is.
func TestDamagedVoidRewritten(t *testing.T) {
	path := dbPath(t)
	opts := &outbox.Options{MaxPending: 1, Classes: classes}
	o := openWith(t, path, opts)
	tel := mustEnqueue(t, o, "telemetry", 1)
	c := mustEnqueue(t, o, "consent", 2) // sheds tel
	o.Close()
	rewrite(t, path, map[uint64][]byte{tel.Seq: append(append([]byte("v"), mustHex(t, c.ID)...), "shed"...)})
	o = openWith(t, path, opts)
	o.Pending(0, 10)
	got, err := o.Pending(0, 10)
	if err != nil || len(got) != 2 || got[0].ID != tel.ID || got[0].Kind != protocol.KindVoid {
		t.Fatalf("pending %+v, %v", got, err)
	}
	if u, _ := o.Usage(); u.Voids != 1 || u.Pending != 1 {
		t.Fatalf("usage %+v", u)
	}
}

// A technician voids an expired entry the sweep quarantined: a void takes
// its sequence number in the queue, so what follows is no longer stuck
// behind a hole; the entry stays in quarantine and can be neither requeued
// nor voided again.
func TestVoidQuarantined(t *testing.T) {
	clk := &clock{t: t0}
	o := openWith(t, dbPath(t), &outbox.Options{Now: clk.Now})
	a := enqueue(t, o, 1)
	stuck, err := o.Enqueue("consent", []byte(`{"n":2}`), t0, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	c := enqueue(t, o, 3)
	if err := o.Void(stuck.ID); err == nil {
		t.Fatal("a pending entry voided")
	}
	if rep, err := o.Sweep(t0.Add(time.Hour)); err != nil || rep.Expired != 1 {
		t.Fatalf("sweep %+v, %v", rep, err)
	}
	if got, _ := o.Pending(0, 10); len(got) != 2 {
		t.Fatalf("pending before the void %+v", got)
	}
	if err := o.Void(stuck.ID); err != nil {
		t.Fatal(err)
	}
	got, err := o.Pending(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[1].Seq != stuck.Seq || got[1].Kind != protocol.KindVoid || got[1].ID != stuck.ID ||
		string(got[1].Payload) != `{"reason":"expired"}` {
		t.Fatalf("pending after the void %+v", got)
	}
	for _, f := range []func(string) error{o.Void, o.Requeue} {
		if err := f(stuck.ID); err == nil {
			t.Fatal("a voided entry taken again")
		}
	}
	if err := o.Void("nope"); !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("void of nothing: %v", err)
	}
	if u, _ := o.Usage(); u.Voids != 1 || u.Pending != 2 || u.Quarantined != 1 {
		t.Fatalf("usage %+v", u)
	}
	for _, e := range []outbox.Entry{a, got[1], c} {
		if r, err := o.Record(final(e)); err != nil || !r.Done {
			t.Fatalf("record %d: %+v, %v", e.Seq, r, err)
		}
	}
	if q, _ := o.Stats(); q.Depth != 0 {
		t.Fatalf("stats after the results %+v", q)
	}
	if qs, _ := o.Quarantined(10); len(qs) != 1 || qs[0].ID != stuck.ID {
		t.Fatalf("quarantined %+v", qs)
	}
}
