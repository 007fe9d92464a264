package refcms

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/aslcns/totem/cms/cmsstore"
	"github.com/aslcns/totem/internal/clock"
	json "github.com/segmentio/encoding/json"
	bolt "go.etcd.io/bbolt"
)

// The citizen's data an operation leaves beside the card's record are
// purged CitizenRetention after the operation: the notifications (the
// second halves of PIN and PUK and the phone or e-mail they went to) and,
// in the record kept to answer a duplicate, the result's data (the first
// halves of PIN and PUK, a CIP, a card's history). The card, its consents,
// its history of operations, the payments, the audit trail and the send
// log stay: they are the CMS's own record. Like the send log's pruning,
// it goes in small transactions so the ingest never waits long for the
// store's one writer.

// DefaultCitizenRetention is Options.CitizenRetention's default: 90 days.
const DefaultCitizenRetention = 2160 * time.Hour

// PurgeReport says what one purge removed.
type PurgeReport struct {
	Notifications int // notifications deleted
	Results       int // stored results whose data were removed
}

// PurgeCitizenData purges, in batches, the notifications and the stored
// results' data older than the citizen retention at now.
func (s *Store) PurgeCitizenData(now time.Time) (PurgeReport, error) {
	var rep PurgeReport
	rs, ok := s.st.(cmsstore.Retention)
	if !ok {
		return rep, errNoRetention
	}
	cutoff := now.Add(-s.rules.keepCitizen)
	for { // the notifications are in order of time: the oldest first
		n, more, err := rs.PurgeNotifications(context.Background(), cutoff)
		rep.Notifications += n
		if err != nil || !more {
			if err != nil {
				return rep, err
			}
			break
		}
	}
	for from := []byte{}; from != nil; {
		n, next, err := rs.PurgeResults(context.Background(), cutoff, from)
		rep.Results += n
		if err != nil {
			return rep, err
		}
		from = next
	}
	return rep, nil
}

// purgeNotifications deletes up to pruneBatch notifications sent before
// cutoff; more says whether older ones may remain.
func (s *boltStore) PurgeNotifications(_ context.Context, cutoff time.Time) (n int, more bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bNotify)
		var gone [][]byte
		c := b.Cursor()
		for k, v := c.First(); k != nil && len(gone) < pruneBatch; k, v = c.Next() {
			var nt Notification
			if err := json.Unmarshal(v, &nt); err != nil {
				return fmt.Errorf("notification %x: %w", k, err)
			}
			if !nt.At.Before(cutoff) {
				break
			}
			gone = append(gone, bytes.Clone(k))
		}
		for _, k := range gone {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n, more = len(gone), len(gone) == pruneBatch
		return nil
	})
	if err != nil {
		return n, false, fmt.Errorf("refcms: purge notifications: %w", err)
	}
	return n, more, nil
}

// purgeResults removes the data of up to pruneBatch stored results of
// operations applied before cutoff, scanning up to pruneScan records from
// key from; next is where to go on, nil at the end.
func (s *boltStore) PurgeResults(_ context.Context, cutoff time.Time, from []byte) (n int, next []byte, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bOps)
		type put struct {
			k   []byte
			rec opRecord
		}
		var puts []put
		c := b.Cursor()
		scanned := 0
		k, v := c.Seek(from)
		for ; k != nil && len(puts) < pruneBatch && scanned < pruneScan; k, v = c.Next() {
			scanned++
			if !bytes.Contains(v, []byte(`"Data"`)) {
				continue // nothing to purge: no need to decode it
			}
			var rec opRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("op record %q: %w", k, err)
			}
			if len(rec.Outcome.Data) == 0 || !rec.Outcome.At.Before(cutoff) {
				continue
			}
			rec.Outcome.Data = nil
			puts = append(puts, put{bytes.Clone(k), rec})
		}
		if k != nil {
			next = bytes.Clone(k)
		}
		for _, p := range puts { // after the scan: a cursor's Put can move it
			if err := putJSON(b, p.k, p.rec); err != nil {
				return err
			}
		}
		n = len(puts)
		return nil
	})
	if err != nil {
		return n, nil, fmt.Errorf("refcms: purge results: %w", err)
	}
	return n, next, nil
}

// RunCitizenPurge purges the citizen's data past their retention at start
// and then every interval until ctx is done; report, if not nil, is told
// the outcome of every round.
func (s *Store) RunCitizenPurge(ctx context.Context, every time.Duration, report func(PurgeReport, error)) {
	clock.NowAndEvery(ctx, every, func() bool {
		rep, err := s.PurgeCitizenData(time.Now())
		if report != nil {
			report(rep, err)
		}
		return false
	})
}
