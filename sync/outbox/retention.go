package outbox

import (
	"bytes"
	"context"
	"time"

	"github.com/aslcns/totem/internal/clock"
	"github.com/aslcns/totem/sync/protocol"
	bolt "go.etcd.io/bbolt"
)

// RunPurge purges, at start and then every interval until ctx is done, the
// entries settled (a final result received) more than retention ago, with
// Purge: their payloads — the citizen's data — leave the totem; the hub's
// send log keeps each one's summary. now is the wall clock and whether it
// is synchronised: a round with an unsynchronised clock (a board without
// RTC that has not reached NTP yet) purges nothing, so a clock set in the
// future cannot empty the outbox. report, if not nil, is told the outcome
// of every round.
func (o *Outbox) RunPurge(ctx context.Context, every, retention time.Duration, now func() (time.Time, bool), report func(n int, err error)) {
	clock.NowAndEvery(ctx, every, func() bool {
		n, err := 0, error(nil)
		if wall, synced := now(); synced {
			n, err = o.Purge(wall.Add(-retention))
		}
		if report != nil {
			report(n, err)
		}
		return false
	})
}

// MaxSettled bounds the summaries Purge keeps, the oldest going first:
// about 150 bytes each, so at most a couple of MiB of the outbox's quota.
var MaxSettled uint64 = 10000

// keepSummary stores what the send log shows of the settled entry r,
// purged now: its id, kind, times, clocks and outcomes with the error
// codes — not the payload, not the result's data (first halves of PIN and
// PUK, a card's history), not the CMS's messages (they may quote the
// request).
func (o *Outbox) keepSummary(tx *bolt.Tx, seq uint64, r *record) error {
	sum := record{ID: r.ID, Kind: r.Kind, Created: r.Created, Expires: r.Expires, Attempts: r.Attempts,
		LastSent: r.LastSent, Completed: r.Completed, Stamp: r.Stamp}
	if r.Result != nil {
		res := *r.Result
		res.Data = nil
		res.Processing.Errors = nil
		for _, e := range r.Result.Processing.Errors {
			res.Processing.Errors = append(res.Processing.Errors, protocol.Error{Code: e.Code})
		}
		sum.Result = &res
	}
	val, err := o.encodeRecord(seq, &sum)
	if err != nil {
		return err
	}
	b := tx.Bucket(bucketSettled)
	if b.Get(seqKey(seq)) == nil {
		if err := addCounter(tx, keySettled, 1); err != nil {
			return err
		}
	}
	return b.Put(seqKey(seq), val)
}

// trimSettled deletes the oldest summaries beyond MaxSettled.
func trimSettled(tx *bolt.Tx) error {
	n := counter(tx, keySettled)
	if n <= MaxSettled {
		return nil
	}
	b := tx.Bucket(bucketSettled)
	var gone [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && uint64(len(gone)) < n-MaxSettled; k, _ = c.Next() {
		gone = append(gone, bytes.Clone(k))
	}
	for _, k := range gone {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return addCounter(tx, keySettled, -int64(len(gone)))
}
