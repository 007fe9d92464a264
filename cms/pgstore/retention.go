package pgstore

import (
	"context"
	"time"

	"github.com/aslcns/totem/cms/cmsstore"
)

// The retentions of refcms (cmsstore.Retention), each batch one
// statement: pruneBatch rows at most, so the ingest never waits long.

var _ cmsstore.Retention = cmsStore{}

const pruneBatch = 256

// PruneSendLog deletes the send log's own entries (duplicates, refusals:
// the table sendlog, never the audit) past their retention, counted from
// their last repeat; the cursor is the entries' number n.
func (c cmsStore) PruneSendLog(ctx context.Context, dupBefore, refBefore time.Time, from uint64) (int, uint64, error) {
	rows, err := c.s.pool.Query(ctx, `DELETE FROM sendlog WHERE n IN (
		SELECT n FROM sendlog WHERE n >= $1
			AND greatest(at, coalesce(last, at)) < CASE WHEN class = 'd' THEN $2::timestamptz ELSE $3::timestamptz END
		ORDER BY n LIMIT $4) RETURNING n`, int64(from), dupBefore, refBefore, pruneBatch)
	if err != nil {
		return 0, 0, classify("prune send log", err)
	}
	defer rows.Close()
	var n int
	var top int64
	for rows.Next() {
		var k int64
		if err := rows.Scan(&k); err != nil {
			return n, 0, classify("prune send log", err)
		}
		n, top = n+1, max(top, k)
	}
	if err := rows.Err(); err != nil {
		return n, 0, classify("prune send log", err)
	}
	if n < pruneBatch {
		return n, 0, nil
	}
	return n, uint64(top) + 1, nil
}

// PurgeNotifications deletes the notifications made before cutoff.
func (c cmsStore) PurgeNotifications(ctx context.Context, cutoff time.Time) (int, bool, error) {
	tag, err := c.s.pool.Exec(ctx, `DELETE FROM notifications WHERE n IN (
		SELECT n FROM notifications WHERE (record->>'at')::timestamptz < $1 ORDER BY n LIMIT $2)`, cutoff, pruneBatch)
	if err != nil {
		return 0, false, classify("purge notifications", err)
	}
	n := int(tag.RowsAffected())
	return n, n == pruneBatch, nil
}

// PurgeResults removes the data of the stored outcomes of operations
// applied before cutoff. The cursor only says whether to go on: each
// batch leaves no data behind in the rows it took.
func (c cmsStore) PurgeResults(ctx context.Context, cutoff time.Time, _ []byte) (int, []byte, error) {
	tag, err := c.s.pool.Exec(ctx, `UPDATE ops SET data = NULL WHERE (totem, op_id) IN (
		SELECT totem, op_id FROM ops WHERE data IS NOT NULL AND at < $1 LIMIT $2)`, cutoff, pruneBatch)
	if err != nil {
		return 0, nil, classify("purge results", err)
	}
	n := int(tag.RowsAffected())
	if n < pruneBatch {
		return n, nil, nil
	}
	return n, []byte{}, nil
}
