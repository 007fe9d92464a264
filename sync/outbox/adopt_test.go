package outbox_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

func TestStampAtEnqueue(t *testing.T) {
	n := int64(0)
	o, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), &outbox.Options{Stamp: func() protocol.Stamp {
		n++
		return protocol.Stamp{Boot: "boot-a", Mono: 1000 * n, Wall: time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	a, b := enqueue(t, o, 1), enqueue(t, o, 2)
	if a.Stamp == nil || a.Stamp.Mono != 1000 || b.Stamp.Mono != 2000 || b.Stamp.Boot != "boot-a" {
		t.Fatalf("stamps %+v %+v", a.Stamp, b.Stamp)
	}
	got, err := o.Get(b.ID)
	if err != nil || got.Stamp == nil || *got.Stamp != *b.Stamp {
		t.Fatalf("stored stamp %+v, %v", got.Stamp, err)
	}
	// Without a stamp source nothing is stamped.
	plain, _ := newOutbox(t)
	if e := enqueue(t, plain, 1); e.Stamp != nil {
		t.Fatalf("stamp %+v", e.Stamp)
	}
}

func TestAdopt(t *testing.T) {
	now := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	o, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), &outbox.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	pending := enqueue(t, o, 1)
	done := enqueue(t, o, 2)
	if _, err := o.Record(result(done, protocol.TransportReceived, protocol.ProcessingAccepted)); err != nil {
		t.Fatal(err)
	}
	q, err := o.Enqueue("consent", []byte(`{}`), now, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	if rep, err := o.Sweep(now); err != nil || rep.Expired != 1 {
		t.Fatalf("sweep %+v %v", rep, err)
	}

	// A pending entry the hub applied becomes done with the hub's result.
	before, after, err := o.Adopt(result(pending, protocol.TransportReceived, protocol.ProcessingAccepted))
	if err != nil || before.Done || !after.Done || after.Result.Transport.Protocol != "P-1" || !after.Completed.Equal(now) {
		t.Fatalf("pending: %+v → %+v, %v", before, after, err)
	}
	// A done entry whose outcome differs takes the hub's.
	hub := result(done, protocol.TransportReceived, protocol.ProcessingRejected)
	hub.Processing.Errors = []protocol.Error{{Code: "CARD_REVOKED", Message: "x"}}
	before, after, err = o.Adopt(hub)
	if err != nil || before.Result.Processing.Status != protocol.ProcessingAccepted ||
		after.Result.Processing.Status != protocol.ProcessingRejected || !after.Done {
		t.Fatalf("done: %+v → %+v, %v", before, after, err)
	}
	// A quarantined one too.
	_, after, err = o.Adopt(result(q, protocol.TransportReceived, protocol.ProcessingRejected))
	if err != nil || !after.Done || after.Quarantine != "" {
		t.Fatalf("quarantined: %+v, %v", after, err)
	}
	st, _ := o.Stats()
	u, _ := o.Usage()
	if st.Depth != 0 || u.Quarantined != 0 {
		t.Fatalf("depth %d, quarantined %d", st.Depth, u.Quarantined)
	}
	if got, _ := o.Get(done.ID); got.Result.Processing.Status != protocol.ProcessingRejected {
		t.Fatalf("not kept: %+v", got.Result)
	}

	// Refusals: not final, wrong seq, unknown id.
	if _, _, err := o.Adopt(result(pending, protocol.TransportRefused, protocol.ProcessingPending)); err == nil {
		t.Error("a result that is not final adopted")
	}
	bad := result(pending, protocol.TransportReceived, protocol.ProcessingAccepted)
	bad.Seq = 9
	if _, _, err := o.Adopt(bad); !errors.Is(err, outbox.ErrMismatch) {
		t.Errorf("wrong seq: %v", err)
	}
	ghost := result(pending, protocol.TransportReceived, protocol.ProcessingAccepted)
	ghost.OpID = "00000000000000000000000000000001"
	if _, _, err := o.Adopt(ghost); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
}
