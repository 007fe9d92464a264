package outbox_test

import (
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// sendRound marks es sent and fails the test on an error.
func sendRound(t *testing.T, o *outbox.Outbox, es []outbox.Entry, at time.Time) {
	t.Helper()
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.ID
	}
	if n, err := o.MarkSentAll(ids, at); err != nil || n != len(ids) {
		t.Fatalf("MarkSentAll = %d, %v; want %d", n, err, len(ids))
	}
}

// A send round followed by its results makes one commit, not two: the
// attempts ride with the results. They are still counted on the done
// records.
func TestSendRoundOneCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path)
	outbox.SetMarkDelay(o, time.Hour)
	at := time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC)
	first := []outbox.Entry{enqueue(t, o, 1)}
	sendRound(t, o, first, at) // the first round since Open commits at once
	// One entry: RecordAll of several results may take two commits, the
	// committer starting on the first before the others are queued.
	es := []outbox.Entry{enqueue(t, o, 2)}
	c0 := o.Commits()
	sendRound(t, o, es, at)
	if c := o.Commits() - c0; c != 0 {
		t.Fatalf("a send round made %d commits of its own", c)
	}
	if g, _ := o.Get(es[0].ID); g.Attempts != 1 || !g.LastSent.Equal(at) {
		t.Fatalf("before its commit: attempts %d last sent %v; want 1 at %v", g.Attempts, g.LastSent, at)
	}
	var rs []*protocol.Result
	for _, e := range es {
		rs = append(rs, result(e, protocol.TransportReceived, protocol.ProcessingAccepted))
	}
	if _, errs := o.RecordAll(rs); errs[0] != nil {
		t.Fatal(errs)
	}
	if c := o.Commits() - c0; c != 1 {
		t.Fatalf("a send round and its results made %d commits, want 1", c)
	}
	outbox.Crash(o) // nothing left in memory that counts
	o = open(t, path)
	defer o.Close()
	for _, e := range es {
		if g, _ := o.Get(e.ID); !g.Done || g.Attempts != 1 || !g.LastSent.Equal(at) {
			t.Fatalf("after a crash: done %v attempts %d last sent %v; want done, 1 at %v", g.Done, g.Attempts, g.LastSent, at)
		}
	}
}

// Marks not yet committed survive Close: it commits them.
func TestMarksSurviveClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path)
	outbox.SetMarkDelay(o, time.Hour)
	at := time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC)
	e := enqueue(t, o, 1)
	sendRound(t, o, []outbox.Entry{e}, at)
	c0 := o.Commits()
	for i := range 3 {
		sendRound(t, o, []outbox.Entry{e}, at.Add(time.Duration(i+1)*time.Second))
	}
	if c := o.Commits() - c0; c != 0 {
		t.Fatalf("3 rounds made %d commits", c)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = open(t, path)
	defer o.Close()
	want := at.Add(3 * time.Second)
	if g, _ := o.Get(e.ID); g.Attempts != 4 || !g.LastSent.Equal(want) {
		t.Fatalf("after Close and reopen: attempts %d last sent %v; want 4 at %v", g.Attempts, g.LastSent, want)
	}
}

// A totem in a crash loop never commits anything but its first round
// after each boot: poison detection still quarantines the entry it keeps
// sending, after MaxAttempts boots.
func TestMarksCrashLoopEndsInQuarantine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	const max = 3
	opts := &outbox.Options{MaxAttempts: max}
	o := openWith(t, path, opts)
	p := enqueue(t, o, 1)
	outbox.Crash(o)
	for boot := 1; boot <= max; boot++ {
		o, err := outbox.Open(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		outbox.SetMarkDelay(o, time.Hour)
		es, err := o.Pending(0, 10)
		if err != nil || len(es) != 1 || es[0].ID != p.ID || es[0].Attempts != boot-1 {
			t.Fatalf("boot %d: pending %+v, %v; want the entry with %d attempts", boot, es, err, boot-1)
		}
		sendRound(t, o, es, t0)
		outbox.Crash(o)
	}
	o = openWith(t, path, opts)
	if es, err := o.Pending(0, 10); err != nil || len(es) != 0 {
		t.Fatalf("pending after %d boots: %+v, %v", max, es, err)
	}
	q, err := o.Quarantined(10)
	if err != nil || len(q) != 1 || q[0].ID != p.ID || q[0].Quarantine != outbox.ReasonPoison || q[0].Attempts != max {
		t.Fatalf("quarantine after %d boots: %+v, %v", max, q, err)
	}
}

// With no other commit, a round commits the marks itself every eighth
// round: a power cut loses fewer than eight rounds of attempts. The
// poison count includes the marks not yet committed.
func TestMarksCommittedEveryFewRounds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	const max = 12
	opts := &outbox.Options{MaxAttempts: max}
	o := openWith(t, path, opts)
	outbox.SetMarkDelay(o, time.Hour)
	e := enqueue(t, o, 1)
	sendRound(t, o, []outbox.Entry{e}, t0) // first since Open: committed
	c0 := o.Commits()
	for i := 2; i <= 9; i++ {
		sendRound(t, o, []outbox.Entry{e}, t0)
		if es, _ := o.Pending(0, 1); len(es) != 1 || es[0].Attempts != i {
			t.Fatalf("round %d: pending %+v", i, es)
		}
	}
	if c := o.Commits() - c0; c != 1 {
		t.Fatalf("8 rounds made %d commits, want 1", c)
	}
	for i := 10; i < max; i++ {
		sendRound(t, o, []outbox.Entry{e}, t0)
	}
	if c := o.Commits() - c0; c != 1 {
		t.Fatalf("10 rounds made %d commits, want 1", c)
	}
	outbox.Crash(o) // rounds 10 and 11 are lost
	o = openWith(t, path, opts)
	outbox.SetMarkDelay(o, time.Hour)
	if g, _ := o.Get(e.ID); g.Attempts != 9 {
		t.Fatalf("after a crash: attempts %d, want 9", g.Attempts)
	}
	sendRound(t, o, []outbox.Entry{e}, t0) // committed: 10
	sendRound(t, o, []outbox.Entry{e}, t0) // 11, waiting
	if q, _ := o.Quarantined(10); len(q) != 0 {
		t.Fatalf("quarantined after 11 attempts: %+v", q)
	}
	sendRound(t, o, []outbox.Entry{e}, t0) // 12: poison, committed at once
	q, err := o.Quarantined(10)
	if err != nil || len(q) != 1 || q[0].Quarantine != outbox.ReasonPoison || q[0].Attempts != max {
		t.Fatalf("quarantine after %d attempts: %+v, %v", max, q, err)
	}
	outbox.Crash(o)
	o = openWith(t, path, opts)
	if q, err := o.Quarantined(10); err != nil || len(q) != 1 || q[0].Attempts != max {
		t.Fatalf("quarantine after a crash: %+v, %v", q, err)
	}
}

// Marks no commit took are committed by a timer.
func TestMarksTimer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path)
	e := enqueue(t, o, 1)
	sendRound(t, o, []outbox.Entry{e}, t0)
	outbox.SetMarkDelay(o, 10*time.Millisecond)
	c0 := o.Commits()
	sendRound(t, o, []outbox.Entry{e}, t0)
	for deadline := time.Now().Add(10 * time.Second); o.Commits() == c0; {
		if time.Now().After(deadline) {
			t.Fatal("the marks were never committed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	outbox.Crash(o)
	o = open(t, path)
	defer o.Close()
	if g, _ := o.Get(e.ID); g.Attempts != 2 {
		t.Fatalf("after a crash: attempts %d, want 2", g.Attempts)
	}
}

// Readers count the marks not yet written once, never twice, while
// commits write them.
func TestMarksCountedOnce(t *testing.T) {
	o, _ := newOutbox(t)
	e := enqueue(t, o, 1)
	var issued, done atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // commits of other kinds take the marks
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := o.SetMeta("k", []byte{byte(i)}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			low := done.Load()
			g, err := o.Get(e.ID)
			high := issued.Load()
			if err != nil || int64(g.Attempts) < low || int64(g.Attempts) > high {
				t.Errorf("attempts %d, %v; want %d to %d", g.Attempts, err, low, high)
				return
			}
		}
	})
	for range 300 {
		issued.Add(1)
		sendRound(t, o, []outbox.Entry{e}, t0)
		done.Add(1)
	}
	close(stop)
	wg.Wait()
	if g, _ := o.Get(e.ID); g.Attempts != 300 {
		t.Fatalf("attempts %d, want 300", g.Attempts)
	}
}
