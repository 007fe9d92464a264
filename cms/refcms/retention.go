package refcms

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/cmsstore"
	"github.com/aslcns/totem/internal/clock"
	json "github.com/segmentio/encoding/json"
	bolt "go.etcd.io/bbolt"
)

// The send log's own entries (duplicates, refusals) are kept for a
// retention counted from their last repeat, and pruned oldest first in
// small transactions, so that pruning never holds the store's one writer
// for long against the ingest. The audit records, the applied operations'
// entries, are the CMS's trail and are never pruned here.

// pruneBatch bounds the entries one pruning transaction deletes, and
// pruneScan those it reads.
const (
	pruneBatch = 256
	pruneScan  = 4096
)

// PruneSendLog deletes, in one transaction, up to pruneBatch send log
// entries past their retention at now, and returns how many it deleted.
func (s *Store) PruneSendLog(now time.Time) (int, error) {
	n, _, err := s.pruneFrom(now, 0)
	return n, err
}

// pruneFrom is PruneSendLog from send log key from on; it also returns
// where the next batch starts, 0 when the scan reached the entries too
// recent to go.
func (s *Store) pruneFrom(now time.Time, from uint64) (int, uint64, error) {
	rs, ok := s.st.(cmsstore.Retention)
	if !ok {
		return 0, 0, errNoRetention
	}
	return rs.PruneSendLog(context.Background(), now.Add(-s.rules.keepDup), now.Add(-s.rules.keepRef), from)
}

// errNoRetention: the store does not apply the retentions.
var errNoRetention = errors.New("refcms: this store does not apply the retentions")

func (s *boltStore) PruneSendLog(_ context.Context, dupBefore, refBefore time.Time, from uint64) (int, uint64, error) {
	oldest := dupBefore // entries received after both are all kept
	if refBefore.After(oldest) {
		oldest = refBefore
	}
	n, next := 0, uint64(0)
	err := s.db.Update(func(tx *bolt.Tx) error {
		sl, idx := tx.Bucket(bSendLog), tx.Bucket(bRepeats)
		var gone, repeats [][]byte // deleted after the scan: a cursor's Delete can skip the next key
		c := sl.Cursor()
		scanned := 0
		k, v := c.Seek(be(from))
		for ; k != nil && len(gone) < pruneBatch && scanned < pruneScan; k, v = c.Next() {
			scanned++
			var t cms.Transmission
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("send log %x: %w", k, err)
			}
			if !t.At.Before(oldest) {
				k = nil // arrival order: the rest are newer
				break
			}
			last, before := t.At, refBefore
			if t.Last.After(last) {
				last = t.Last
			}
			if t.Duplicate {
				before = dupBefore
			}
			if !last.Before(before) {
				continue
			}
			gone = append(gone, bytes.Clone(k))
			if rk := repeatKey(&t, classOf(&t)); bytes.Equal(idx.Get(rk), k) {
				repeats = append(repeats, rk)
			}
		}
		if k != nil {
			next = binary.BigEndian.Uint64(k)
		}
		for _, rk := range repeats {
			if err := idx.Delete(rk); err != nil {
				return err
			}
		}
		for _, k := range gone {
			if err := sl.Delete(k); err != nil {
				return err
			}
		}
		n = len(gone)
		return nil
	})
	if err != nil {
		return n, 0, fmt.Errorf("refcms: prune send log: %w", err)
	}
	return n, next, nil
}

// RunSendLogPrune prunes the send log every interval until ctx is done,
// batch after batch (entries kept for a recent repeat are stepped over)
// until the entries too recent to go.
func (s *Store) RunSendLogPrune(ctx context.Context, every time.Duration) error {
	return onTicks(ctx, every, func() error {
		for from := uint64(0); ctx.Err() == nil; {
			_, next, err := s.pruneFrom(time.Now(), from)
			if err != nil {
				return err
			}
			if next == 0 {
				break
			}
			from = next
		}
		return nil
	})
}

// onTicks calls fn every interval until ctx is done (nil) or fn fails
// (its error); the first call is one interval after the start.
func onTicks(ctx context.Context, every time.Duration, fn func() error) (err error) {
	clock.Every(ctx, every, func() bool {
		err = fn()
		return err != nil
	})
	return err
}
