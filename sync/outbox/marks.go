package outbox

import (
	"bytes"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Attempt marks (MarkSentAll) are bookkeeping: an attempt count lost in a
// power cut undercounts one send toward poison quarantine, and LastSent
// only drives the resend timer, which restarts on boot anyway. So a
// round's marks are kept in memory and written by the next commit of any
// kind — usually the one that records the round's results — instead of
// one fsynced commit of their own per round. A round commits them itself,
// waiting as before, when:
//
//   - it is the first round since Open: a totem in a crash loop counts at
//     least one round per boot, and the entry that makes it crash, the
//     oldest the hub has not answered, is in it — poison detection still
//     ends the loop;
//   - maxMarkRounds rounds have waited for a commit;
//   - poison detection is on and a mark brings an entry to MaxAttempts:
//     it moves to quarantine in that commit, as before.
//
// Otherwise a timer commits them markDelay after the round if nothing else
// did, and Close commits what is left. Reads (Get, Pending, Recent,
// Quarantined, the poison check) count the marks not yet written.
const (
	maxMarkRounds = 8
	markDelay     = time.Second
	keepGens      = 8
)

// mark is the attempts of one entry not yet written.
type mark struct {
	n  int
	at time.Time
}

// gen is the marks a write transaction took: readers of an older snapshot
// still count them.
type gen struct {
	tx uint64
	m  map[string]mark
}

// marks holds the attempt marks not yet durable, by op id.
type marks struct {
	mu      sync.Mutex
	pending map[string]mark
	gens    []gen // the last keepGens taken, oldest first
	rounds  int   // rounds marked since the last take
	durable bool  // a round since Open was committed at once
	timer   *time.Timer
	delay   time.Duration
}

func newMarks() *marks { return &marks{pending: map[string]mark{}, delay: markDelay} }

// add records one attempt at at for each of ids and reports whether the
// round must commit at once (first since Open, or too many waiting).
func (m *marks) add(ids []string, at time.Time, flush func()) (now bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		k := m.pending[id]
		k.n++
		if at.After(k.at) {
			k.at = at
		}
		m.pending[id] = k
	}
	m.rounds++
	if !m.durable || m.rounds >= maxMarkRounds {
		return true
	}
	if m.timer == nil {
		m.timer = time.AfterFunc(m.delay, flush)
	} else if len(ids) > 0 && m.rounds == 1 {
		m.timer.Reset(m.delay)
	}
	return false
}

// overlay returns the attempts of id a transaction does not see yet: none
// for the committer's (it wrote what it took), the marks not taken and
// those taken by a commit after its snapshot for a reader. A reader older
// than keepGens commits may undercount; it never counts a mark twice.
func (m *marks) overlay(tx *bolt.Tx, id string) (int, time.Time) {
	if m == nil || tx.Writable() {
		return 0, time.Time{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.pending) == 0 && len(m.gens) == 0 {
		return 0, time.Time{}
	}
	k := m.pending[id]
	snap := uint64(tx.ID())
	for _, g := range m.gens {
		if snap < g.tx {
			if x, ok := g.m[id]; ok {
				k.n += x.n
				if x.at.After(k.at) {
					k.at = x.at
				}
			}
		}
	}
	return k.n, k.at
}

// take hands the marks waiting to the write transaction tx.
func (m *marks) take(tx *bolt.Tx) map[string]mark {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rounds = 0
	if len(m.pending) == 0 {
		return nil
	}
	g := gen{tx: uint64(tx.ID()), m: m.pending}
	m.pending = map[string]mark{}
	m.gens = append(m.gens, g)
	if len(m.gens) > keepGens {
		m.gens = slices.Delete(m.gens, 0, 1)
	}
	return g.m
}

// untake forgets the marks transaction txid took and did not commit; with
// restore they wait again for the next commit.
func (m *marks) untake(txid uint64, restore bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, g := range m.gens {
		if g.tx != txid {
			continue
		}
		m.gens = slices.Delete(m.gens, i, i+1)
		if restore {
			for id, x := range g.m {
				k := m.pending[id]
				k.n += x.n
				if x.at.After(k.at) {
					k.at = x.at
				}
				m.pending[id] = k
			}
		}
		return
	}
}

// committed notes that a round was made durable at once.
func (m *marks) committed() {
	m.mu.Lock()
	m.durable = true
	m.mu.Unlock()
}

// stop stops the timer.
func (m *marks) stop() {
	m.mu.Lock()
	if m.timer != nil {
		m.timer.Stop()
	}
	m.mu.Unlock()
}

// writeMarks writes the marks taken into tx, as MarkSent would one by
// one: a pending entry's sends apart from its record (unless poison
// detection needs them on it), others on the record; a pending entry that
// reaches MaxAttempts moves to quarantine. When the outbox is full and no
// poison detection counts them they are dropped: the room left is for
// results. It returns how many entries it changed.
func (o *Outbox) writeMarks(tx *bolt.Tx, ms map[string]mark) (int, error) {
	if len(ms) == 0 || o.softSize > 0 && o.used.Load() >= o.softSize && o.maxAttempts <= 0 {
		return 0, nil
	}
	pending := tx.Bucket(bucketPending)
	n := 0
	for id, k := range ms {
		if key := o.ownKey(id); key != nil && o.maxAttempts <= 0 && pending.Get(key) != nil {
			if err := addSent(tx, key, k.n, k.at); err != nil {
				return n, err
			}
			n++
			continue
		}
		seq, r, b, err := o.lookup(tx, id)
		if err != nil {
			// Gone, or unreadable: nothing to count it on (Pending
			// quarantines what cannot be read).
			continue
		}
		r.Attempts += k.n
		if k.at.After(r.LastSent) {
			r.LastSent = k.at
		}
		if bytes.Equal(b, bucketPending) && o.maxAttempts > 0 && r.Attempts >= o.maxAttempts {
			err = o.moveToQuarantine(tx, seq, &r, ReasonPoison, o.now())
		} else {
			err = o.putRecord(tx.Bucket(b), seq, &r)
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
