package outbox

import (
	"errors"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Commits returns how many transactions the committer committed.
func Commits(o *Outbox) int64 { return o.commits.Load() }

// Full returns how many times the committer paused for readers and how
// many writes it tried again when the file reached MaxSize.
func Full(o *Outbox) (waits, retries int64) { return o.waits.Load(), o.retries.Load() }

// Idle submits a request that runs fn and writes nothing: with no
// attempt marks waiting, its transaction is rolled back, not committed.
func Idle(o *Outbox, fn func()) error {
	err := o.do(func(*bolt.Tx, *batch) error { fn(); return reject(errUnchanged) })
	if errors.Is(err, errUnchanged) {
		return nil
	}
	return err
}

// SetPause replaces the committer's pauses for readers (time.Sleep) with
// pause. Call it while the committer is idle.
func SetPause(o *Outbox, pause func(time.Duration)) { o.pause = pause }

// HoldReader opens a read transaction, as a reader of the outbox would,
// until release: the pages commits free meanwhile cannot be reused.
func HoldReader(o *Outbox) (release func()) {
	tx, err := o.db.Begin(false)
	if err != nil {
		panic(err)
	}
	return sync.OnceFunc(func() { tx.Rollback() })
}

// Queued returns how many requests wait for the committer.
func Queued(o *Outbox) int { return len(o.reqs) }

// Do submits fn to the committer like any write.
func Do(o *Outbox, fn func(tx *bolt.Tx) error) error {
	return o.do(func(tx *bolt.Tx, _ *batch) error { return fn(tx) })
}

// Stored is the stored form of an entry, for tests that damage records.
type Stored = record

// EditStored decodes a stored pending record, lets fn change it and
// returns it encoded again, checksum and all.
func EditStored(key, v []byte, fn func(r *Stored)) ([]byte, error) {
	o := &Outbox{} // any salt: an id left out stays left out
	seq, r, err := o.decodeRecord(key, v)
	if err != nil {
		return nil, err
	}
	fn(&r)
	return o.encodeRecord(seq, &r)
}

// Crash stops o as a power cut would: the committer ends after the writes
// already submitted, the attempt marks still in memory are lost.
func Crash(o *Outbox) {
	o.closeMu.Lock()
	o.closed = true
	close(o.reqs)
	o.closeMu.Unlock()
	<-o.stopped
	o.marks.stop()
	o.alarm.stop()
	o.db.Close()
}

// SetMarkDelay sets how long attempt marks wait for a commit before the
// timer commits them.
func SetMarkDelay(o *Outbox, d time.Duration) {
	o.marks.mu.Lock()
	o.marks.delay = d
	o.marks.mu.Unlock()
}
