package outbox_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func open(t testing.TB, path string) *outbox.Outbox {
	t.Helper()
	o, err := outbox.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func newOutbox(t testing.TB) (*outbox.Outbox, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path)
	t.Cleanup(func() { o.Close() })
	return o, path
}

// jsonPayload is a JSON object of n bytes, as a payload must be.
func jsonPayload(c byte, n int) []byte {
	return append(append([]byte(`{"p":"`), bytes.Repeat([]byte{c}, max(n-8, 0))...), `"}`...)
}

func enqueue(t testing.TB, o *outbox.Outbox, i int) outbox.Entry {
	t.Helper()
	created := time.Date(2025, 3, 1, 9, 0, i, 0, time.UTC)
	e, err := o.Enqueue("consent", fmt.Appendf(nil, `{"n":%d}`, i), created, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func result(e outbox.Entry, transport, processing string) *protocol.Result {
	return &protocol.Result{
		V: protocol.Version, OpID: e.ID, Seq: e.Seq,
		Transport:  protocol.Transport{Status: transport, Protocol: "P-" + strconv.FormatUint(e.Seq, 10), At: time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)},
		Processing: protocol.Processing{Status: processing},
	}
}

func TestEnqueuePendingOrder(t *testing.T) {
	o, _ := newOutbox(t)
	ids := map[string]bool{}
	for i := 1; i <= 20; i++ {
		e := enqueue(t, o, i)
		if e.Seq != uint64(i) {
			t.Fatalf("entry %d: seq %d", i, e.Seq)
		}
		if !hexID.MatchString(e.ID) {
			t.Fatalf("id %q is not 32 lowercase hex digits", e.ID)
		}
		if ids[e.ID] {
			t.Fatalf("id %s repeated", e.ID)
		}
		ids[e.ID] = true
	}
	got, err := o.Pending(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 20 {
		t.Fatalf("pending: %d entries, want 20", len(got))
	}
	for i, e := range got {
		want := fmt.Sprintf(`{"n":%d}`, i+1)
		if e.Seq != uint64(i+1) || string(e.Payload) != want || e.Kind != "consent" || e.Done || e.Result != nil {
			t.Fatalf("pending[%d] = %+v", i, e)
		}
		if !e.Created.Equal(time.Date(2025, 3, 1, 9, 0, i+1, 0, time.UTC)) || !e.Expires.IsZero() {
			t.Fatalf("pending[%d] times: %v %v", i, e.Created, e.Expires)
		}
	}
}

func TestEnqueueNotify(t *testing.T) {
	o, _ := newOutbox(t)
	select {
	case <-o.Notify():
		t.Fatal("notified before any enqueue")
	default:
	}
	enqueue(t, o, 1)
	enqueue(t, o, 2) // must not block: capacity 1
	select {
	case <-o.Notify():
	default:
		t.Fatal("no notification after enqueue")
	}
}

func TestEnqueueRejects(t *testing.T) {
	o, _ := newOutbox(t)
	if _, err := o.Enqueue("", nil, time.Now(), time.Time{}); err == nil {
		t.Error("empty kind accepted")
	}
	if _, err := o.Enqueue("consent", make([]byte, protocol.MaxPayload+1), time.Now(), time.Time{}); !errors.Is(err, protocol.ErrTooLarge) {
		t.Errorf("oversize payload: %v", err)
	}
	if q, _ := o.Stats(); q.LastSeq != 0 {
		t.Errorf("rejected enqueue used a seq: %+v", q)
	}
}

func TestDurableAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path)
	var es []outbox.Entry
	for i := 1; i <= 5; i++ {
		es = append(es, enqueue(t, o, i))
	}
	sent := time.Date(2025, 3, 1, 9, 30, 0, 0, time.UTC)
	for range 2 {
		if err := o.MarkSent(es[1].ID, sent); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := o.Record(result(es[0], protocol.TransportReceived, protocol.ProcessingAccepted)); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Record(result(es[1], protocol.TransportReceived, protocol.ProcessingPending)); err != nil {
		t.Fatal(err)
	}
	if err := o.SetMeta("policy", []byte(`{"id":"p1"}`)); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}

	o = open(t, path)
	defer o.Close()
	e0, err := o.Get(es[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if !e0.Done || e0.Result == nil || e0.Result.Processing.Status != protocol.ProcessingAccepted || e0.Result.Transport.Protocol != "P-1" {
		t.Errorf("entry 1 after reopen: %+v", e0)
	}
	e1, err := o.Get(es[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	if e1.Done || e1.Attempts != 2 || !e1.LastSent.Equal(sent) || e1.Result == nil || e1.Result.Processing.Status != protocol.ProcessingPending {
		t.Errorf("entry 2 after reopen: %+v", e1)
	}
	got, err := o.Pending(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].Seq != 2 || got[3].Seq != 5 || string(got[3].Payload) != `{"n":5}` {
		t.Errorf("pending after reopen: %+v", got)
	}
	if v, err := o.Meta("policy"); err != nil || string(v) != `{"id":"p1"}` {
		t.Errorf("meta after reopen: %q, %v", v, err)
	}
	if e := enqueue(t, o, 6); e.Seq != 6 {
		t.Errorf("seq after reopen: %d, want 6", e.Seq)
	}
	// Even when everything is done, sequence numbers are never reused.
	for _, e := range got {
		if _, err := o.Record(result(e, protocol.TransportReceived, protocol.ProcessingRejected)); err != nil {
			t.Fatal(err)
		}
	}
	o.Close()
	o = open(t, path)
	if e := enqueue(t, o, 7); e.Seq != 7 {
		t.Errorf("seq after reopen with empty queue: %d, want 7", e.Seq)
	}
}

func TestRecord(t *testing.T) {
	o, _ := newOutbox(t)
	refused, pending, accepted, rejected := enqueue(t, o, 1), enqueue(t, o, 2), enqueue(t, o, 3), enqueue(t, o, 4)

	t.Run("refused stays pending", func(t *testing.T) {
		res := result(refused, protocol.TransportRefused, protocol.ProcessingPending)
		res.Expect = 7
		e, err := o.Record(res)
		if err != nil {
			t.Fatal(err)
		}
		if e.Done || e.Result == nil || e.Result.Transport.Status != protocol.TransportRefused || e.Result.Expect != 7 {
			t.Fatalf("returned %+v", e)
		}
		g, _ := o.Get(refused.ID)
		if g.Done || g.Result == nil || g.Result.Expect != 7 {
			t.Fatalf("stored %+v", g)
		}
	})
	t.Run("processing pending stays pending", func(t *testing.T) {
		e, err := o.Record(result(pending, protocol.TransportReceived, protocol.ProcessingPending))
		if err != nil {
			t.Fatal(err)
		}
		g, _ := o.Get(pending.ID)
		if e.Done || g.Done || g.Result == nil || g.Result.Transport.Protocol != "P-2" {
			t.Fatalf("returned %+v, stored %+v", e, g)
		}
	})
	t.Run("accepted moves to done", func(t *testing.T) {
		e, err := o.Record(result(accepted, protocol.TransportReceived, protocol.ProcessingAccepted))
		if err != nil {
			t.Fatal(err)
		}
		g, _ := o.Get(accepted.ID)
		if !e.Done || !g.Done || g.Result.Processing.Status != protocol.ProcessingAccepted {
			t.Fatalf("returned %+v, stored %+v", e, g)
		}
	})
	t.Run("rejected moves to done", func(t *testing.T) {
		res := result(rejected, protocol.TransportReceived, protocol.ProcessingRejected)
		res.Processing.Errors = []protocol.Error{{Code: "cf_invalid", Message: "Codice fiscale non valido"}}
		if _, err := o.Record(res); err != nil {
			t.Fatal(err)
		}
		res.Processing.Errors[0].Code = "mutated" // the outbox must hold its own copy
		g, _ := o.Get(rejected.ID)
		if !g.Done || g.Result.Processing.Status != protocol.ProcessingRejected || len(g.Result.Processing.Errors) != 1 || g.Result.Processing.Errors[0].Code != "cf_invalid" {
			t.Fatalf("stored %+v", g)
		}
	})
	t.Run("pending queue", func(t *testing.T) {
		got, _ := o.Pending(0, 10)
		if len(got) != 2 || got[0].ID != refused.ID || got[1].ID != pending.ID {
			t.Fatalf("pending: %+v", got)
		}
		if q, _ := o.Stats(); q.Depth != 2 {
			t.Fatalf("depth %d", q.Depth)
		}
	})
	t.Run("duplicate final keeps the first", func(t *testing.T) {
		for _, dup := range []*protocol.Result{
			result(accepted, protocol.TransportReceived, protocol.ProcessingRejected),
			result(accepted, protocol.TransportRefused, protocol.ProcessingPending),
		} {
			dup.Duplicate = true
			e, err := o.Record(dup)
			if err != nil {
				t.Fatal(err)
			}
			g, _ := o.Get(accepted.ID)
			for _, x := range []outbox.Entry{e, g} {
				if !x.Done || x.Result.Processing.Status != protocol.ProcessingAccepted || x.Result.Duplicate {
					t.Fatalf("first final result lost: %+v", x.Result)
				}
			}
		}
		if q, _ := o.Stats(); q.Depth != 2 {
			t.Fatalf("depth %d after duplicates", q.Depth)
		}
	})
	t.Run("wrong seq", func(t *testing.T) {
		res := result(pending, protocol.TransportReceived, protocol.ProcessingAccepted)
		res.Seq = accepted.Seq
		if _, err := o.Record(res); !errors.Is(err, outbox.ErrMismatch) {
			t.Fatalf("err = %v", err)
		}
		if g, _ := o.Get(pending.ID); g.Done || g.Result.Processing.Status != protocol.ProcessingPending {
			t.Fatalf("mismatched result applied: %+v", g)
		}
	})
	t.Run("unknown id", func(t *testing.T) {
		res := result(pending, protocol.TransportReceived, protocol.ProcessingAccepted)
		res.OpID = strings.Repeat("ab", 16)
		if _, err := o.Record(res); !errors.Is(err, outbox.ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
		res.OpID = "not-hex"
		if _, err := o.Record(res); !errors.Is(err, outbox.ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestMarkSentAndGet(t *testing.T) {
	o, _ := newOutbox(t)
	e := enqueue(t, o, 1)
	at := time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC)
	if err := o.MarkSent(e.ID, at); err != nil {
		t.Fatal(err)
	}
	g, err := o.Get(e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if g.Attempts != 1 || !g.LastSent.Equal(at) {
		t.Fatalf("after MarkSent: %+v", g)
	}
	unknown := strings.Repeat("0", 32)
	if err := o.MarkSent(unknown, at); !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("MarkSent unknown: %v", err)
	}
	if _, err := o.Get(unknown); !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("Get unknown: %v", err)
	}
	if _, err := o.Get(strings.ToUpper(e.ID)); !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("Get upper-case id: %v", err)
	}
}

func TestMarkSentAll(t *testing.T) {
	o, _ := newOutbox(t)
	a, b, c := enqueue(t, o, 1), enqueue(t, o, 2), enqueue(t, o, 3)
	at := time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC)
	unknown := strings.Repeat("0", 32)
	n, err := o.MarkSentAll([]string{a.ID, unknown, b.ID}, at)
	if err != nil || n != 2 {
		t.Fatalf("MarkSentAll = %d, %v; want 2", n, err)
	}
	for _, want := range []struct {
		id       string
		attempts int
	}{{a.ID, 1}, {b.ID, 1}, {c.ID, 0}} {
		g, err := o.Get(want.id)
		if err != nil {
			t.Fatal(err)
		}
		if g.Attempts != want.attempts || want.attempts > 0 && !g.LastSent.Equal(at) {
			t.Fatalf("%s after MarkSentAll: %+v", want.id, g)
		}
	}
	// A result may arrive before the attempt is recorded: the done entry
	// still counts it.
	if _, err := o.Record(result(a, protocol.TransportReceived, protocol.ProcessingAccepted)); err != nil {
		t.Fatal(err)
	}
	if n, err := o.MarkSentAll([]string{a.ID}, at.Add(time.Second)); err != nil || n != 1 {
		t.Fatalf("MarkSentAll done entry = %d, %v", n, err)
	}
	if g, _ := o.Get(a.ID); !g.Done || g.Attempts != 2 || g.Result == nil {
		t.Fatalf("done entry after MarkSentAll: %+v", g)
	}
	if n, err := o.MarkSentAll([]string{unknown}, at); err != nil || n != 0 {
		t.Fatalf("MarkSentAll unknown only = %d, %v", n, err)
	}
}

// Sends recorded apart from the record survive a reopen, are counted
// once when the entry is done, and are forgotten by a requeue.
func TestMarkSentAllKeptApart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path)
	a, b := enqueue(t, o, 1), enqueue(t, o, 2)
	at1 := time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC)
	at2 := at1.Add(time.Minute)
	for _, at := range []time.Time{at1, at2} {
		if n, err := o.MarkSentAll([]string{a.ID, b.ID}, at); err != nil || n != 2 {
			t.Fatalf("MarkSentAll = %d, %v", n, err)
		}
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = open(t, path)
	defer o.Close()
	p, err := o.Pending(0, 10)
	if err != nil || len(p) != 2 {
		t.Fatalf("pending after reopen = %+v, %v", p, err)
	}
	for _, e := range p {
		if e.Attempts != 2 || !e.LastSent.Equal(at2) {
			t.Fatalf("after reopen: seq %d attempts %d last sent %v; want 2 at %v", e.Seq, e.Attempts, e.LastSent, at2)
		}
	}
	if _, err := o.Record(result(a, protocol.TransportReceived, protocol.ProcessingAccepted)); err != nil {
		t.Fatal(err)
	}
	if g, _ := o.Get(a.ID); !g.Done || g.Attempts != 2 || !g.LastSent.Equal(at2) {
		t.Fatalf("done entry: attempts %d last sent %v; want 2 at %v (counted once)", g.Attempts, g.LastSent, at2)
	}
	if r, _ := o.Recent(10); len(r) != 2 || r[0].Attempts != 2 || r[1].Attempts != 2 {
		t.Fatalf("send log: %+v", r)
	}
	// A non-final result rewrites the record: the sends stay counted once.
	if _, err := o.Record(result(b, protocol.TransportReceived, protocol.ProcessingPending)); err != nil {
		t.Fatal(err)
	}
	if g, _ := o.Get(b.ID); g.Done || g.Attempts != 2 {
		t.Fatalf("after a non-final result: attempts %d, want 2", g.Attempts)
	}
	if _, err := o.MarkSentAll([]string{b.ID}, at2.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if g, _ := o.Get(b.ID); g.Attempts != 3 {
		t.Fatalf("third send: attempts %d, want 3", g.Attempts)
	}
}

func TestMarkSentAllThenQuarantineAndRequeue(t *testing.T) {
	clk := &clock{t: t0}
	o := openWith(t, dbPath(t), &outbox.Options{Now: clk.Now})
	e, err := o.Enqueue("consent", []byte(`{}`), t0, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.MarkSentAll([]string{e.ID}, t0); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Minute)
	if _, err := o.Sweep(clk.Now()); err != nil {
		t.Fatal(err)
	}
	q, err := o.Quarantined(10)
	if err != nil || len(q) != 1 || q[0].Attempts != 1 || q[0].Quarantine != outbox.ReasonExpired {
		t.Fatalf("quarantined = %+v, %v", q, err)
	}
	if err := o.Requeue(e.ID); err != nil {
		t.Fatal(err)
	}
	if g, _ := o.Get(e.ID); g.Attempts != 0 || g.Quarantine != "" {
		t.Fatalf("requeued: attempts %d, quarantine %q; want 0 and none", g.Attempts, g.Quarantine)
	}
}

func TestMarkSentAllPoison(t *testing.T) {
	o := openWith(t, dbPath(t), &outbox.Options{MaxAttempts: 2})
	a, b := enqueue(t, o, 1), enqueue(t, o, 2)
	at := time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC)
	for range 2 {
		if _, err := o.MarkSentAll([]string{a.ID}, at); err != nil {
			t.Fatal(err)
		}
	}
	q, err := o.Quarantined(10)
	if err != nil || len(q) != 1 || q[0].ID != a.ID || q[0].Quarantine != outbox.ReasonPoison {
		t.Fatalf("quarantine = %+v, %v", q, err)
	}
	if p, _ := o.Pending(0, 10); len(p) != 1 || p[0].ID != b.ID {
		t.Fatalf("pending = %+v", p)
	}
}

func TestRecordKeepsItsOwnCopy(t *testing.T) {
	o, _ := newOutbox(t)
	e := enqueue(t, o, 1)
	res := result(e, protocol.TransportReceived, protocol.ProcessingAccepted)
	res.Data = []byte(`{"x":1}`)
	res.Processing.Errors = []protocol.Error{{Code: "c", Message: "m"}}
	if _, err := o.Record(res); err != nil {
		t.Fatal(err)
	}
	res.Data[5] = '2'
	res.Processing.Errors[0].Code = "changed"
	g, err := o.Get(e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(g.Result.Data) != `{"x":1}` || g.Result.Processing.Errors[0].Code != "c" {
		t.Fatalf("stored result changed with the caller's: %+v", g.Result)
	}
}

func TestPendingPagingAndStats(t *testing.T) {
	o, _ := newOutbox(t)
	q, err := o.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if q != (protocol.Queue{}) {
		t.Fatalf("empty stats: %+v", q)
	}
	var es []outbox.Entry
	for i := 1; i <= 10; i++ {
		es = append(es, enqueue(t, o, i))
	}
	var seqs []uint64
	for after := uint64(0); ; {
		page, err := o.Pending(after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 3 || page[0].Seq <= after {
			t.Fatalf("Pending(%d, 3) returned %d entries from seq %d", after, len(page), page[0].Seq)
		}
		for _, e := range page {
			seqs = append(seqs, e.Seq)
		}
		after = page[len(page)-1].Seq
	}
	if fmt.Sprint(seqs) != "[1 2 3 4 5 6 7 8 9 10]" {
		t.Fatalf("paged seqs %v", seqs)
	}
	if page, _ := o.Pending(8, 0); len(page) != 0 {
		t.Fatalf("max 0 returned %d", len(page))
	}

	// Finish 1, 2 and 5: the oldest pending is 3.
	for _, i := range []int{0, 1, 4} {
		if _, err := o.Record(result(es[i], protocol.TransportReceived, protocol.ProcessingAccepted)); err != nil {
			t.Fatal(err)
		}
	}
	q, err = o.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := protocol.Queue{Depth: 7, OldestSeq: 3, Oldest: es[2].Created, LastSeq: 10}
	if q.Depth != want.Depth || q.OldestSeq != want.OldestSeq || !q.Oldest.Equal(want.Oldest) || q.LastSeq != want.LastSeq {
		t.Fatalf("stats %+v, want %+v", q, want)
	}
	if page, _ := o.Pending(3, 2); len(page) != 2 || page[0].Seq != 4 || page[1].Seq != 6 {
		t.Fatalf("Pending(3, 2) = %+v", page)
	}
	for _, e := range es {
		o.Record(result(e, protocol.TransportReceived, protocol.ProcessingRejected))
	}
	if q, _ := o.Stats(); q.Depth != 0 || q.OldestSeq != 0 || !q.Oldest.IsZero() || q.LastSeq != 10 {
		t.Fatalf("stats after draining: %+v", q)
	}
}

func TestMeta(t *testing.T) {
	o, _ := newOutbox(t)
	if v, err := o.Meta("boot"); v != nil || err != nil {
		t.Fatalf("absent: %q, %v", v, err)
	}
	if err := o.SetMeta("boot", []byte("41")); err != nil {
		t.Fatal(err)
	}
	if err := o.SetMeta("boot", []byte("42")); err != nil {
		t.Fatal(err)
	}
	if v, _ := o.Meta("boot"); string(v) != "42" {
		t.Fatalf("got %q", v)
	}
	if err := o.SetMeta("boot", nil); err != nil {
		t.Fatal(err)
	}
	if v, _ := o.Meta("boot"); v != nil {
		t.Fatalf("after delete: %q", v)
	}
	if err := o.SetMeta("", []byte("x")); err == nil {
		t.Fatal("empty key accepted")
	}
}

func TestConcurrentEnqueue(t *testing.T) {
	o, _ := newOutbox(t)
	const workers, each = 8, 50
	seqs := make(chan uint64, workers*each)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				e, err := o.Enqueue("telemetry", fmt.Appendf(nil, `{"w":%d,"i":%d}`, w, i), time.Now(), time.Time{})
				if err != nil {
					errs <- err
					return
				}
				seqs <- e.Seq
			}
		})
	}
	wg.Wait()
	close(seqs)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := make([]bool, workers*each+1)
	for s := range seqs {
		if s == 0 || s > workers*each || seen[s] {
			t.Fatalf("seq %d out of range or repeated", s)
		}
		seen[s] = true
	}
	for s := 1; s <= workers*each; s++ {
		if !seen[s] {
			t.Fatalf("seq %d missing", s)
		}
	}
	q, err := o.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if q.Depth != workers*each || q.LastSeq != workers*each || q.OldestSeq != 1 {
		t.Fatalf("stats %+v", q)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	t.Run("missing directory", func(t *testing.T) {
		_, err := outbox.Open(filepath.Join(dir, "nope", "outbox.db"), nil)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "outbox: ") {
			t.Fatalf("err = %v", err)
		}
	})
	for name, content := range map[string][]byte{
		"short garbage": []byte("this is not a database\n"),
		"page garbage":  garbage(64 << 10),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			o, err := outbox.Open(path, nil)
			if err == nil {
				o.Close()
				t.Fatal("garbage file opened")
			}
			if !strings.HasPrefix(err.Error(), "outbox: ") || !strings.Contains(err.Error(), path) {
				t.Fatalf("unclear error: %v", err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, content) {
				t.Fatal("garbage file was modified")
			}
		})
	}
	t.Run("locked", func(t *testing.T) {
		path := filepath.Join(dir, "locked.db")
		o := open(t, path)
		defer o.Close()
		start := time.Now()
		o2, err := outbox.Open(path, &outbox.Options{Timeout: 100 * time.Millisecond})
		if err == nil {
			o2.Close()
			t.Fatal("second open of a locked outbox succeeded")
		}
		if time.Since(start) > 5*time.Second || !strings.Contains(err.Error(), "locked") {
			t.Fatalf("err = %v after %v", err, time.Since(start))
		}
	})
	t.Run("creation leaves no temp files", func(t *testing.T) {
		d := t.TempDir()
		stale := filepath.Join(d, ".outbox.db.creating-123")
		os.WriteFile(stale, []byte("half"), 0o600)
		o := open(t, filepath.Join(d, "outbox.db"))
		o.Close()
		ents, _ := os.ReadDir(d)
		if len(ents) != 1 || ents[0].Name() != "outbox.db" {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Fatalf("directory holds %v", names)
		}
	})
}

func garbage(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestHelperProcess is the child of TestCrashDurability: it enqueues until
// killed, printing each sequence number right after Enqueue returns.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv("OUTBOX_CRASH_DB")
	if path == "" {
		t.Skip("helper for TestCrashDurability")
	}
	o, err := outbox.Open(path, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	payload := jsonPayload('x', 512)
	producers, _ := strconv.Atoi(os.Getenv("OUTBOX_CRASH_PRODUCERS"))
	for range max(producers, 1) - 1 {
		go func() {
			for {
				e, err := o.Enqueue("consent", payload, time.Now(), time.Time{})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				fmt.Fprintf(os.Stdout, "%d\n", e.Seq) // one write per line, atomic on a pipe
			}
		}()
	}
	for {
		e, err := o.Enqueue("consent", payload, time.Now(), time.Time{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		fmt.Fprintf(os.Stdout, "%d\n", e.Seq) // os.Stdout is unbuffered: one write per line
	}
}

// TestCrashDurability kills a child mid-enqueue with SIGKILL and checks
// that every sequence number it acknowledged survives, and that the next
// run continues the sequence.
func TestCrashDurability(t *testing.T) { crashTest(t, 1) }

// TestCrashDurabilityConcurrent does the same with 16 producers sharing
// group commits: every acknowledged seq of every producer survives.
func TestCrashDurabilityConcurrent(t *testing.T) { crashTest(t, 16) }

func crashTest(t *testing.T, producers int) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := filepath.Join(t.TempDir(), "outbox.db")
	var lastAcked uint64
	for run := range 5 {
		acked, err := crashRun(t, path, run == 0, producers)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		o, err := outbox.Open(path, nil)
		if err != nil {
			t.Fatalf("run %d: reopen after kill: %v", run, err)
		}
		q, err := o.Stats()
		if err != nil {
			t.Fatal(err)
		}
		pending, err := o.Pending(0, int(q.LastSeq)+1)
		if err != nil {
			t.Fatal(err)
		}
		o.Close()
		present := map[uint64]bool{}
		for i, e := range pending {
			present[e.Seq] = true
			if e.Seq != uint64(i+1) {
				t.Fatalf("run %d: gap in stored seqs at %d: %d", run, i+1, e.Seq)
			}
		}
		for _, s := range acked {
			if !present[s] {
				t.Fatalf("run %d: acknowledged seq %d lost (last stored %d)", run, s, q.LastSeq)
			}
		}
		if len(acked) > 0 && slices.Min(acked) <= lastAcked {
			t.Fatalf("run %d: seq %d reused (previous run acknowledged %d)", run, slices.Min(acked), lastAcked)
		}
		if len(acked) > 0 {
			lastAcked = slices.Max(acked)
		}
		if q.Depth != len(pending) {
			t.Fatalf("run %d: depth %d, %d pending", run, q.Depth, len(pending))
		}
		t.Logf("run %d: %d acknowledged, %d stored", run, len(acked), len(pending))
	}
	if lastAcked == 0 {
		t.Fatal("no run acknowledged anything")
	}
}

// crashRun starts the helper on path, kills it with SIGKILL at a random
// moment and returns the sequence numbers it acknowledged. If early, the
// moment is counted from the start (it may fall inside creation),
// otherwise from the first acknowledgement.
func crashRun(t *testing.T, path string, early bool, producers int) ([]uint64, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "OUTBOX_CRASH_DB="+path, "OUTBOX_CRASH_PRODUCERS="+strconv.Itoa(producers))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	kill := func() { cmd.Process.Signal(syscall.SIGKILL) }
	deadline := time.AfterFunc(20*time.Second, kill) // bound the run whatever happens
	defer deadline.Stop()
	delay := time.Duration(mrand.IntN(300)) * time.Millisecond
	var killer *time.Timer
	if early {
		killer = time.AfterFunc(delay, kill)
	}
	var acked []uint64
	r := bufio.NewReader(out)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break // killed: a partial last line was never acknowledged
		}
		s, perr := strconv.ParseUint(strings.TrimSpace(line), 10, 64)
		if perr != nil {
			continue // test framework chatter
		}
		if killer == nil {
			killer = time.AfterFunc(delay, kill)
		}
		acked = append(acked, s)
	}
	if killer != nil {
		killer.Stop()
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		return nil, fmt.Errorf("helper ended with %v, stderr: %s", err, stderr.Bytes())
	}
	return acked, nil
}

func BenchmarkEnqueue(b *testing.B) {
	o, _ := newOutbox(b)
	payload := jsonPayload('p', 512)
	now := time.Now()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := o.Enqueue("consent", payload, now, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

// RecordAll records a round of results in one commit, not one each, with
// each result's own answer: a final result settles its entry, an unknown
// id fails alone.
func TestRecordAllSharesACommit(t *testing.T) {
	o, _ := newOutbox(t)
	const n = 100
	var rs []*protocol.Result
	for i := range n {
		rs = append(rs, result(enqueue(t, o, i+1), protocol.TransportReceived, protocol.ProcessingAccepted))
	}
	unknown := *rs[0]
	unknown.OpID = "0123456789abcdef0123456789abcdef"
	rs = append(rs, &unknown)
	before := o.Commits()
	es, errs := o.RecordAll(rs)
	if c := o.Commits() - before; c > 3 {
		t.Errorf("%d results recorded in %d commits", n, c)
	}
	for i := range n {
		if errs[i] != nil || !es[i].Done || es[i].Seq != uint64(i+1) {
			t.Fatalf("result %d: %+v, %v", i, es[i], errs[i])
		}
	}
	if !errors.Is(errs[n], outbox.ErrNotFound) {
		t.Errorf("unknown id: %v", errs[n])
	}
	if q, err := o.Stats(); err != nil || q.Depth != 0 {
		t.Errorf("depth %d after every result, %v", q.Depth, err)
	}
}
