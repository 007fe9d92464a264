package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/cms/pgstore/pgtest"
)

// Two hub processes apply batches holding the same totems in opposite
// orders, at the same time: the ledger rows are locked in sorted order,
// so they wait for each other and never deadlock (PostgreSQL would
// abort one with 40P01 after deadlock_timeout otherwise).
func TestSortedLocking(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	stores := []*pgstore.Store{open(t, url), open(t, url)}
	const totems, rounds = 20, 30
	var wg sync.WaitGroup
	applied := make([][]int, 2)
	for w, s := range stores {
		wg.Go(func() {
			applied[w] = make([]int, 0, rounds)
			for r := uint64(1); r <= rounds; r++ {
				var ops []cms.Op
				for i := range totems {
					ops = append(ops, op(fmt.Sprintf("t%02d", i), r, "x"))
				}
				if w == 1 {
					slices.Reverse(ops)
				}
				outs, err := s.ApplyBatch(ctx, ops, effect)
				if err != nil {
					t.Errorf("worker %d round %d: %v", w, r, err)
					return
				}
				n := 0
				for _, o := range outs {
					if o.OutOfOrder || !o.Accepted {
						t.Errorf("worker %d round %d: %+v", w, r, o)
					}
					if !o.Duplicate {
						n++
					}
				}
				applied[w] = append(applied[w], n)
			}
		})
	}
	wg.Wait()
	total := 0
	for _, a := range applied {
		for _, n := range a {
			total += n
		}
	}
	if total != totems*rounds {
		t.Errorf("%d operations applied (not duplicates), want %d", total, totems*rounds)
	}
	if n := query[int64](t, url, `SELECT count(*) FROM effects`); n != totems*rounds {
		t.Errorf("%d effects, want %d", n, totems*rounds)
	}
	if n := query[int64](t, url, `SELECT count(*) FROM ledger WHERE last_seq = $1`, rounds); n != totems {
		t.Errorf("%d totems at seq %d, want %d", n, rounds, totems)
	}
}

// Two hubs (two pools) handed consecutive sequence numbers of one totem
// at the same moment: whichever comes first, the later number waits for
// or is refused until the earlier is applied (the totem sends it again,
// here the loop), and each is applied exactly once, in order.
func TestConsecutiveOnTwoHubs(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	a, b := open(t, url), open(t, url)
	const pairs = 100
	protocols := make([]string, 2*pairs+1)
	send := func(s *pgstore.Store, seq uint64) error {
		o := op("solo", seq, "x")
		for range 100000 { // bounded: the other hub applies seq-1 meanwhile
			out, err := s.Apply(ctx, o, effect)
			if err != nil {
				return err
			}
			if out.OutOfOrder {
				if out.Expect != seq-1 {
					return fmt.Errorf("seq %d: expect %d", seq, out.Expect)
				}
				continue
			}
			if out.Duplicate || !out.Accepted {
				return fmt.Errorf("seq %d: %+v", seq, out)
			}
			protocols[seq] = out.Protocol
			// The totem resends (it missed the answer): the stored outcome.
			again, err := s.Apply(ctx, o, effect)
			if err != nil || !again.Duplicate || again.Protocol != out.Protocol {
				return fmt.Errorf("seq %d resent: %+v %v", seq, again, err)
			}
			return nil
		}
		return fmt.Errorf("seq %d never applied", seq)
	}
	for p := uint64(1); p <= pairs; p++ {
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, s := range []*pgstore.Store{a, b} {
			wg.Go(func() {
				<-start
				if err := send(s, 2*p-1+uint64(i)); err != nil {
					t.Error(err)
				}
			})
		}
		close(start)
		wg.Wait()
		if t.Failed() {
			return
		}
	}
	for seq := 2; seq <= 2*pairs; seq++ {
		if protocols[seq] <= protocols[seq-1] {
			t.Fatalf("seq %d protocol %s not after seq %d's %s", seq, protocols[seq], seq-1, protocols[seq-1])
		}
	}
	if n := query[int64](t, url, `SELECT count(DISTINCT seq) FROM effects WHERE totem = 'solo' AND seq BETWEEN 1 AND $1`, 2*pairs); n != 2*pairs {
		t.Errorf("%d effects", n)
	}
	if n := query[int64](t, url, `SELECT count(*) FROM audit`); n != 2*pairs {
		t.Errorf("%d audit records, want %d", n, 2*pairs)
	}
}

// The database stops like a crash (pg_ctl stop -m immediate) in the
// middle of a batch: the error is ErrUnavailable (the hub answers
// refused), nothing of the batch is written, calls meanwhile are
// ErrUnavailable too, and after the restart the same batch applies once,
// with protocol numbers that skip nothing.
func TestDatabaseCrashMidBatch(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Private(t, pgtest.Options{Migrate: migrate}) // fsync on: a crash suite
	url, err := srv.NewDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, url)
	var first []cms.Op
	for seq := uint64(1); seq <= 5; seq++ {
		first = append(first, op("c", seq, "x"))
	}
	if _, err := s.ApplyBatch(ctx, first, effect); err != nil {
		t.Fatal(err)
	}
	var batch []cms.Op
	for seq := uint64(6); seq <= 15; seq++ {
		batch = append(batch, op("c", seq, "x"), op("d", seq-5, "x"))
	}
	killed := false
	crash := func(ctx context.Context, tx *pgstore.Tx, o cms.Op, protocol string) (pgstore.Applied, error) {
		if o.Seq == 10 && !killed {
			killed = true
			if _, err := tx.Exec(ctx, `SELECT 1`); err != nil { // what is queued so far reaches the server
				return pgstore.Applied{}, err
			}
			if err := srv.Kill(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return effect(ctx, tx, o, protocol)
	}
	_, err = s.ApplyBatch(ctx, batch, crash)
	if !killed || !errors.Is(err, pgstore.ErrUnavailable) {
		t.Fatalf("batch cut by the crash: killed %v, %v", killed, err)
	}
	if _, err := s.Apply(ctx, op("c", 6, "x"), effect); !errors.Is(err, pgstore.ErrUnavailable) {
		t.Fatalf("while the database is down: %v", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, pgstore.ErrUnavailable) {
		t.Fatalf("ping while down: %v", err)
	}
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	var outs []cms.Outcome
	for try := 0; ; try++ { // the pool may still hold connections of the old server
		if outs, err = s.ApplyBatch(ctx, batch, effect); err == nil {
			break
		}
		if !errors.Is(err, pgstore.ErrUnavailable) || try == 20 {
			t.Fatalf("retry %d: %v", try, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i, o := range outs {
		if o.Duplicate || !o.Accepted {
			t.Errorf("op %d after the restart: %+v", i, o)
		}
	}
	if n, _ := s.LastSeq(ctx, "c"); n != 15 {
		t.Errorf("last seq %d", n)
	}
	if n := query[int64](t, url, `SELECT count(*) FROM effects`); n != 25 {
		t.Errorf("%d effects, want 25", n)
	}
	if n := query[int64](t, url, `SELECT count(*) FROM audit`); n != 25 {
		t.Errorf("%d audit records, want 25", n)
	}
	// Gapless: the numbers the rolled-back batch had drawn are given again.
	if n := query[int64](t, url, `SELECT count(DISTINCT right(protocol, 9)::int) FROM ops WHERE right(protocol, 9)::int BETWEEN 1 AND 25`); n != 25 {
		t.Errorf("protocol numbers 1..25: %d distinct", n)
	}
}
