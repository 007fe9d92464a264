package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// maxBatch bounds how many requests share one transaction.
const maxBatch = 256

// A request is one write, applied by the committer inside a transaction
// it may share with other requests. fn must be repeatable (it may run
// again alone after its batch failed) and must report an error it finds
// before writing anything with reject, so that the batch goes on without it.
type request struct {
	fn   func(tx *bolt.Tx, b *batch) error
	done chan error
}

// batch is the state requests of one transaction share.
type batch struct {
	added int64 // estimated file bytes this transaction adds (negative: frees)
}

// rejected is an error a request found before writing anything.
type rejected struct{ err error }

func (r rejected) Error() string { return r.err.Error() }

func (r rejected) Unwrap() error { return r.err }

func reject(err error) error { return rejected{err} }

// errNothing rolls back a transaction in which every request was rejected.
var errNothing = errors.New("nothing to commit")

// do hands fn to the committer and waits until its commit is durable.
func (o *Outbox) do(fn func(tx *bolt.Tx, b *batch) error) error {
	wait := o.submit(fn)
	return wait()
}

// submit hands fn to the committer and returns at once; wait waits until
// its commit is durable. Requests submitted one after the other without
// waiting share a commit.
func (o *Outbox) submit(fn func(tx *bolt.Tx, b *batch) error) (wait func() error) {
	r := &request{fn: fn, done: make(chan error, 1)}
	o.closeMu.RLock()
	if o.closed {
		o.closeMu.RUnlock()
		return func() error { return ErrClosed }
	}
	o.reqs <- r
	o.closeMu.RUnlock()
	return func() error { return <-r.done }
}

// committer applies requests until Close closes o.reqs: whatever queued
// while the previous commit was being fsynced goes into the next one.
func (o *Outbox) committer() {
	defer close(o.stopped)
	batch := make([]*request, 0, maxBatch)
	wait := time.NewTimer(0)
	<-wait.C
	last := 0 // requests in the previous commit
	for r := range o.reqs {
		batch = append(batch[:0], r)
		// Take what is queued; then yield (twice: with 16 producers on
		// two CPUs, 12.5 → 14-15 requests per commit) so that producers
		// just answered by the previous commit, runnable but not yet
		// running, can queue their next request and share this commit.
		batch = gather(o.reqs, batch)
		for range 2 {
			if len(batch) < maxBatch {
				runtime.Gosched()
				batch = gather(o.reqs, batch)
			}
		}
		// Then, as PostgreSQL's commit_delay with commit_siblings: when
		// the previous commit was shared and fewer came back so far,
		// wait a little for the rest. Every commit writes the meta page,
		// the root and the branch pages whatever it holds: the more
		// requests share it, the fewer bytes per operation on the SD
		// card. A lone producer never waits.
		if last > 1 && len(batch) < last {
			wait.Reset(siblingWait)
			batch = await(o.reqs, batch, last, wait.C)
			if !wait.Stop() {
				select {
				case <-wait.C:
				default:
				}
			}
		}
		last = len(batch)
		o.commit(batch, &room{o: o})
		if u, err := o.readUsage(); err == nil {
			o.used.Store(u.Bytes)
			o.alarm.check(u)
		}
		clear(batch)
	}
}

// siblingWait bounds how long a commit waits for the producers the
// previous commit answered: about what 16 producers on two CPUs take to
// come back, small against an fsync (0.3 ms here, 2-20 ms on SD cards).
const siblingWait = 200 * time.Microsecond

// await appends requests from reqs to batch until it holds n or timeout
// fires.
func await(reqs <-chan *request, batch []*request, n int, timeout <-chan time.Time) []*request {
	for len(batch) < n && len(batch) < maxBatch {
		select {
		case r, ok := <-reqs:
			if !ok {
				return batch
			}
			batch = append(batch, r)
		case <-timeout:
			return batch
		}
	}
	return batch
}

// gather appends to batch the requests already queued on reqs, up to
// maxBatch.
func gather(reqs <-chan *request, batch []*request) []*request {
	for len(batch) < maxBatch {
		select {
		case r, ok := <-reqs:
			if !ok {
				return batch
			}
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// commit applies reqs in one transaction and answers each. When the file
// reached MaxSize, room is made once for the whole batch (room.retry) and
// the batch tried again. If the transaction still fails, each request is
// retried alone so that one failing request never fails the others; the
// lone requests share the batch's room, so the pauses for readers are not
// paid again for each of them.
func (o *Outbox) commit(reqs []*request, rm *room) {
	errs := make([]error, len(reqs))
	err := o.apply(reqs, errs)
	if len(reqs) > 1 && errors.Is(err, berrors.ErrMaxSizeReached) {
		err = rm.retry(err, func() error { return o.apply(reqs, errs) })
	}
	switch {
	case err == nil || errors.Is(err, errNothing):
		for i, r := range reqs {
			r.done <- errs[i]
		}
	case len(reqs) == 1:
		reqs[0].done <- rm.alone(reqs[0], err)
	default:
		for i := range reqs {
			o.commit(reqs[i:i+1], rm)
		}
	}
}

// apply runs reqs in one transaction, with the attempt marks waiting, and
// sets errs[i] to the error of each request that rejected itself. It
// returns the transaction's error: errNothing if every request rejected
// itself and there were no marks to write.
func (o *Outbox) apply(reqs []*request, errs []error) error {
	clear(errs)
	var (
		took  map[string]mark
		txid  uint64
		wrote int
	)
	err := o.db.Update(func(tx *bolt.Tx) error {
		fill(tx)
		b := &batch{}
		// The attempt marks waiting go first: a request sees them
		// (a result counts them on its record, a requeue forgets them).
		took, txid = o.marks.take(tx), uint64(tx.ID())
		var err error
		if wrote, err = o.writeMarks(tx, took); err != nil {
			return err
		}
		ok := wrote
		for i, r := range reqs {
			err := r.fn(tx, b)
			var rj rejected
			switch {
			case err == nil:
				ok++
			case errors.As(err, &rj):
				errs[i] = rj.err
			default:
				return err
			}
		}
		if ok == 0 {
			return errNothing
		}
		return nil
	})
	if err == nil {
		o.commits.Add(1)
	} else if took != nil {
		// Not written: they wait for the next commit, unless there was
		// nothing to write them on.
		o.marks.untake(txid, wrote > 0 || !errors.Is(err, errNothing))
	}
	return err
}

// fill packs the append-mostly buckets full: with bbolt's default of
// half-full pages every commit would write twice the pages, and full
// pages hold seven 512-byte operations where 95% held six.
func fill(tx *bolt.Tx) {
	for _, name := range [][]byte{bucketPending, bucketDone, bucketQuarantine, bucketTelemetry} {
		tx.Bucket(name).FillPercent = 1.0
	}
}

// maxWaits bounds how many times room.retry pauses for readers to release
// freed pages (1 ms, 2 ms, … : about 0.1 s in all) for one batch and the
// lone requests of its split.
const maxWaits = 14

// room makes room in a full file for one batch of the committer's, and
// counts what it spent so far: the lone requests of the batch's split share
// it, so that they do not pause again.
type room struct {
	o     *Outbox
	waits int // tries while readers held freed pages, maxWaits at most
}

// alone handles a request that failed alone with err: when the file
// reached MaxSize it makes room and tries again, then reports ErrFull.
func (rm *room) alone(r *request, err error) error {
	o := rm.o
	err = rm.retry(err, func() error {
		return o.db.Update(func(tx *bolt.Tx) error { fill(tx); return r.fn(tx, &batch{}) })
	})
	var rj rejected
	if errors.As(err, &rj) {
		return rj.err
	}
	if errors.Is(err, berrors.ErrMaxSizeReached) {
		return fmt.Errorf("%w: %w", ErrFull, err)
	}
	return err
}

// retry calls try again while it fails with ErrMaxSizeReached (err is
// its first failure), making room before each call: first it pauses while
// readers hold freed pages, then sheds telemetry, oldest first, then drops
// settled entries, oldest first; what is still pending is never touched.
// It returns try's last error, ErrMaxSizeReached if nothing is left to
// drop.
//
// Pages a commit freed are reused only once the readers that began before
// it are done (the uplink's Pending, telemetry's Usage), and bbolt counts
// the readers of that commit's own snapshot too: readers that overlap
// would hold them for good. Before pausing, a commit that writes nothing
// moves the snapshot new readers open past it (unpin); the readers
// already open are short.
func (rm *room) retry(err error, try func() error) error {
	o := rm.o
	// Free pages may be too fragmented for a large node: shed until the
	// request fits or no telemetry is left.
	step := 256
	unpinned := false
	for errors.Is(err, berrors.ErrMaxSizeReached) {
		// Before dropping anything, give the readers that hold freed
		// pages a moment and try again; the pauses are bounded. With no
		// page held a pause cannot help, with no reader left the next
		// write reuses them at once.
		if st := o.db.Stats(); st.PendingPageN > 0 && rm.waits < maxWaits {
			rm.waits++
			if st.OpenTxN > 0 {
				if !unpinned {
					rm.unpin()
					unpinned = true
				}
				o.waits.Add(1)
				o.pause(time.Duration(rm.waits) * time.Millisecond)
			}
			o.retries.Add(1)
			err = try()
			continue
		}
		n, serr := rm.shedOrDrop(step)
		if errors.Is(serr, berrors.ErrMaxSizeReached) && step > 1 {
			step /= 16 // voids need pages too: shed in smaller steps
			continue
		}
		if serr != nil || n == 0 {
			break
		}
		if u, err := o.readUsage(); err == nil {
			o.used.Store(u.Bytes) // makeRoom estimates from it
		}
		if o.db.Stats().OpenTxN > 0 {
			// The pages just freed are held by the readers of the
			// drop's snapshot: move past it and let them finish.
			rm.unpin()
			o.waits.Add(1)
			o.pause(time.Millisecond)
		}
		o.retries.Add(1)
		err = try()
	}
	return err
}

// unpin commits a transaction that writes nothing (it allocates no page
// and commits even at MaxSize): readers that start after it no longer hold
// the pages the last commit freed.
func (rm *room) unpin() {
	_ = rm.o.db.Update(func(*bolt.Tx) error { return nil })
}

// shedOrDrop sheds up to step telemetry entries, oldest first, or if none
// is left drops up to step settled entries, oldest first: the hub holds
// their outcome; what is still pending is never touched. Without this the
// results of a full queue could not be recorded and it would never drain.
// It returns how many entries it shed or dropped.
func (rm *room) shedOrDrop(step int) (n int, err error) {
	o := rm.o
	err = o.db.Update(func(tx *bolt.Tx) error {
		var err error
		n, err = o.shed(tx, &batch{}, step)
		return err
	})
	if err != nil || n > 0 {
		return n, err
	}
	err = o.db.Update(func(tx *bolt.Tx) error {
		var err error
		n, _, err = o.dropSettled(tx, step)
		return err
	})
	return n, err
}

// makeRoom sheds telemetry, oldest first, then (for the size quota) drops
// settled entries, oldest first, until an entry of about size bytes fits in
// the quotas; it rejects with ErrFull if it cannot: what is pending is never
// dropped. It returns how many entries it shed.
func (o *Outbox) makeRoom(tx *bolt.Tx, b *batch, size int64) (shed int, err error) {
	for {
		overCount := o.maxPending > 0 && counter(tx, keyDepth) >= uint64(o.maxPending)
		overSize := o.softSize > 0 && o.used.Load()+b.added+footprint(int(size)) > o.softSize
		if !overCount && !overSize {
			return shed, nil
		}
		n, err := o.shed(tx, b, 1)
		if err != nil {
			return shed, err
		}
		if n == 0 && !overCount {
			// No telemetry left: settled entries go next, oldest first
			// (the hub holds their outcome) — a citizen's operation is
			// worth more than an old line of the send log.
			d, freed, err := o.dropSettled(tx, 1)
			if err != nil {
				return shed, err
			}
			if d > 0 {
				b.added -= freed
				continue
			}
		}
		if n == 0 {
			if overCount {
				return shed, reject(fmt.Errorf("%w: %d pending entries", ErrFull, o.maxPending))
			}
			return shed, reject(fmt.Errorf("%w: %d bytes", ErrFull, o.maxSize))
		}
		shed += n
	}
}

// shed replaces up to n pending telemetry entries, oldest first, with
// voids, counting them in the "shed" counter. It returns how many it shed.
func (o *Outbox) shed(tx *bolt.Tx, b *batch, n int) (int, error) {
	tel, pending := tx.Bucket(bucketTelemetry), tx.Bucket(bucketPending)
	done := 0
	for done < n {
		k, size := tel.Cursor().First()
		if k == nil {
			break
		}
		key := append([]byte(nil), k...)
		if len(size) == 8 {
			b.added -= footprint(int(binary.BigEndian.Uint64(size)))
		}
		if v := pending.Get(key); v != nil {
			// The void keeps the id (the hub may have applied the entry
			// already: it answers the void as a duplicate).
			id := o.idFor(binary.BigEndian.Uint64(key))
			if _, r, err := o.decodeRecord(key, v); err == nil {
				id = r.ID
			}
			if err := o.putVoid(tx, binary.BigEndian.Uint64(key), id, ReasonShed); err != nil {
				return done, err
			}
			b.added += footprint(17 + len(ReasonShed))
			if err := dropSent(tx, key); err != nil {
				return done, err
			}
			if err := addCounter(tx, keyDepth, -1); err != nil {
				return done, err
			}
			if err := addCounter(tx, keyShed, 1); err != nil {
				return done, err
			}
			done++
		}
		if err := tel.Delete(key); err != nil {
			return done, err
		}
	}
	return done, nil
}

// dropSettled deletes up to n done entries, oldest first, and returns how
// many it deleted.
func (o *Outbox) dropSettled(tx *bolt.Tx, n int) (dropped int, freed int64, err error) {
	done := tx.Bucket(bucketDone)
	c := done.Cursor()
	for k, v := c.First(); k != nil && dropped < n; k, v = c.First() {
		size := footprint(len(v))
		if _, r, err := o.decodeRecord(k, v); err == nil {
			if err := o.dropIndex(tx, r.ID); err != nil {
				return dropped, freed, err
			}
		}
		if err := done.Delete(k); err != nil {
			return dropped, freed, err
		}
		dropped++
		freed += size
	}
	return dropped, freed, nil
}
