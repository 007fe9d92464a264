package refcms

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
)

// A totem replaying one operation thousands of times, as a duplicate, at
// a taken seq and as a gap, costs one send log entry each, with a count:
// the store stays small. Before, every replay was an entry of its own
// (5 000 replays: 16 MiB).
func TestRepeatsAreCountedNotStored(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	applied := e.op(cms.KindHistory, goodHistory())
	e.apply(applied)
	reused := applied
	reused.ID = id(999) // another id at the taken seq
	const replays = 5000
	var before int64
	if !onPG { // the bbolt file's size
		fi, _ := os.Stat(e.path)
		before = fi.Size()
	}
	for i := 0; i < replays; i += 250 {
		var batch []cms.Op
		var gaps []cms.Transmission
		for j := range 250 {
			op := applied
			if j%2 == 1 {
				op = reused
			}
			op.Received = now.Add(time.Duration(i+j) * time.Second)
			batch = append(batch, op)
			gaps = append(gaps, cms.Transmission{At: op.Received, Totem: "t1", Seq: 90, OpID: id(90), Kind: cms.KindHistory, Expect: 2})
		}
		if _, err := e.s.ApplyBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if err := e.s.LogRefused(gaps); err != nil {
			t.Fatal(err)
		}
	}
	if !onPG {
		fi, _ := os.Stat(e.path)
		if grown := fi.Size() - before; grown > 1<<20 {
			t.Fatalf("the store grew %d bytes for %d replays", grown, 2*replays)
		}
	}
	rows, _, err := e.s.SendLog(cms.SendLogFilter{})
	if err != nil || len(rows) != 4 {
		t.Fatalf("send log %+v, %v", rows, err)
	}
	// Newest first: the gap, the reused seq, the duplicate, the original.
	if g := rows[0]; g.Transport != cms.TxRefused || g.Repeats != replays/250*250-1 || !g.Last.Equal(now.Add((replays-1)*time.Second)) {
		t.Fatalf("gap entry %+v", g)
	}
	if r, d := rows[1], rows[2]; r.OpID != id(999) || r.Repeats != replays/2-1 || !d.Duplicate || d.Repeats != replays/2-1 {
		t.Fatalf("reused %+v\nduplicate %+v", r, d)
	}
}

// The send log's own entries go after their retention, counted from their
// last repeat; the applied operations' entries (the audit) stay.
func TestSendLogRetention(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cms.db")
	s, err := openAt(t, path, &Options{Seed: cms.DemoCards(), SendLogRetention: 48 * time.Hour, RefusalRetention: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	op := consentOp(t, id(1), 1, goodRequest())
	if _, err := s.Apply(ctx, op); err != nil {
		t.Fatal(err)
	}
	dup := op
	if _, err := s.Apply(ctx, dup); err != nil { // at now
		t.Fatal(err)
	}
	gap := func(seq uint64, at time.Time) cms.Transmission {
		return cms.Transmission{At: at, Totem: "t1", Seq: seq, OpID: id(int(seq)), Kind: cms.KindConsent, Expect: 2}
	}
	// Gap 7 at now and again a day and a half later; gap 8 once at now.
	if err := s.LogRefused([]cms.Transmission{gap(7, now), gap(8, now), gap(7, now.Add(36*time.Hour))}); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		rows, _, err := s.SendLog(cms.SendLogFilter{})
		if err != nil {
			t.Fatal(err)
		}
		return len(rows)
	}
	if n := count(); n != 4 {
		t.Fatalf("%d entries, want 4", n)
	}
	prune := func(at time.Time, want int) {
		t.Helper()
		if n, err := s.PruneSendLog(at); err != nil || n != want {
			t.Fatalf("pruned %d at %v, %v; want %d", n, at, err, want)
		}
	}
	prune(now.Add(23*time.Hour), 0)
	prune(now.Add(25*time.Hour), 1)    // gap 8
	prune(now.Add(49*time.Hour), 1)    // the duplicate; gap 7 repeated at 36 h stays
	prune(now.Add(61*time.Hour), 1)    // gap 7
	prune(now.Add(10000*time.Hour), 0) // nothing else: the applied operation is the audit's
	if n := count(); n != 1 {
		t.Fatalf("%d entries left, want the applied operation", n)
	}
	// A repeat of a pruned entry starts a new one.
	if err := s.LogRefused([]cms.Transmission{gap(7, now.Add(70*time.Hour))}); err != nil {
		t.Fatal(err)
	}
	rows, _, _ := s.SendLog(cms.SendLogFilter{Outcome: cms.SendRefused})
	if len(rows) != 1 || rows[0].Repeats != 0 {
		t.Fatalf("%+v", rows)
	}
}

// Entries kept for a recent repeat are stepped over, batch after batch:
// more of them than one transaction reads do not stop the pruning behind.
func TestPruneStepsOverKeptEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cms.db")
	s, err := openAt(t, path, &Options{RefusalRetention: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ts []cms.Transmission
	for i := range pruneScan + 10 { // old, each repeated lately: kept
		tr := cms.Transmission{At: now, Totem: "t1", Seq: uint64(100 + i), OpID: id(100 + i), Kind: cms.KindConsent, Expect: 2}
		ts = append(ts, tr)
		tr.At = now.Add(47 * time.Hour)
		ts = append(ts, tr)
	}
	ts = append(ts, cms.Transmission{At: now.Add(time.Hour), Totem: "t1", Seq: 99, OpID: id(99), Kind: cms.KindConsent, Expect: 2})
	if err := s.LogRefused(ts); err != nil {
		t.Fatal(err)
	}
	at, pruned := now.Add(48*time.Hour), 0
	for from, batches := uint64(0), 0; ; batches++ {
		n, next, err := s.pruneFrom(at, from)
		if err != nil || batches > 10 {
			t.Fatalf("batch %d: %v", batches, err)
		}
		pruned += n
		if next == 0 {
			break
		}
		from = next
	}
	if pruned != 1 {
		t.Fatalf("pruned %d, want the one entry past its retention", pruned)
	}
}
