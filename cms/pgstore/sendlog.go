package pgstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/cmsstore"
	"github.com/jackc/pgx/v5"
	json "github.com/segmentio/encoding/json"
)

// The send log is the audit (applied operations, numbers consumed) and
// the table sendlog (duplicates, refusals), both numbered from the
// sequence sendlog_n: one ORDER BY n over both is the hub's order of
// arrival.

// sendLogSQL lists both, newest first, from below n = $1 (0: the newest).
const sendLogSQL = `SELECT n AS k, true, ` + auditColumns + `, NULL::jsonb, 0::bigint, NULL::timestamptz FROM audit
		WHERE $1 = 0 OR n < $1
	UNION ALL
	SELECT n, false, n, at, totem, seq, op_id, '', '', '', '', '', false, '{}'::text[], NULL::jsonb, '', entry, repeats, last
		FROM sendlog WHERE $1 = 0 OR n < $1
	ORDER BY k DESC`

// scanEntry reads a row of sendLogSQL.
func scanEntry(row pgx.Row) (cms.Transmission, error) {
	var n, seq, repeats int64
	var fromAudit bool
	var a cmsstore.AuditRecord
	var stamp, entry []byte
	var last *time.Time
	if err := row.Scan(&n, &fromAudit, &n, &a.At, &a.Totem, &seq, &a.OpID, &a.Kind, &a.Serial, &a.Channel, &a.Operator,
		&a.Protocol, &a.Accepted, &a.Codes, &stamp, &a.Ref, &entry, &repeats, &last); err != nil {
		return cms.Transmission{}, err
	}
	if fromAudit {
		err := finishAudit(&a, n, seq, stamp)
		return cmsstore.FromAudit(a), err
	}
	var t cms.Transmission
	if err := json.Unmarshal(entry, &t); err != nil {
		return cms.Transmission{}, fmt.Errorf("send log %d: %w", n, err)
	}
	t.N, t.Repeats = uint64(n), int(repeats)
	if last != nil {
		t.Last = last.UTC()
	}
	return t, nil
}

func (c cmsStore) SendLog(ctx context.Context, f cms.SendLogFilter) ([]cms.Transmission, uint64, error) {
	var out []cms.Transmission
	var next uint64
	err := pgx.BeginTxFunc(ctx, c.s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sendLogSQL, int64(f.Before))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if len(out) == f.Max {
				next = out[len(out)-1].N
				return nil
			}
			t, err := scanEntry(rows)
			if err != nil {
				return err
			}
			if cmsstore.Matches(&f, &t) {
				out = append(out, t)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, classify("send log", err)
	}
	return out, next, nil
}

func (c cmsStore) Transmission(ctx context.Context, n uint64) (cms.Transmission, error) {
	var t cms.Transmission
	err := pgx.BeginTxFunc(ctx, c.s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		t, err = scanEntry(tx.QueryRow(ctx, `SELECT * FROM (`+sendLogSQL+`) e WHERE k = $2`, int64(n+1), int64(n)))
		if errors.Is(err, pgx.ErrNoRows) {
			return cms.ErrNotFound
		}
		if err != nil {
			return err
		}
		return cmsstore.FillErrors(recTx{t: &Tx{tx: tx}, ctx: ctx}, &t)
	})
	if err != nil {
		if errors.Is(err, cms.ErrNotFound) {
			return t, fmt.Errorf("pgstore: send log %d: %w", n, err)
		}
		return t, classify(fmt.Sprintf("send log %d", n), err)
	}
	return t, nil
}

// Ledger reads the audit records of totem with Seq in [from, from+max)
// and the stored outcomes of those applied.
func (c cmsStore) Ledger(ctx context.Context, totem string, from uint64, max int) (uint64, []cms.LedgerEntry, error) {
	var last uint64
	var out []cms.LedgerEntry
	err := pgx.BeginTxFunc(ctx, c.s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		r := recTx{t: &Tx{tx: tx}, ctx: ctx}
		var err error
		if last, err = r.LastSeq(totem); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+auditColumns+` FROM audit WHERE totem = $1 AND seq >= $2 AND seq < $3 ORDER BY n`,
			totem, int64(from), int64(from)+int64(max))
		if err != nil {
			return err
		}
		var audit []cmsstore.AuditRecord
		for rows.Next() {
			a, err := scanAudit(rows)
			if err != nil {
				rows.Close()
				return err
			}
			audit = append(audit, a)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, a := range audit {
			rec, found, err := r.Op(totem, a.OpID)
			if err != nil {
				return err
			}
			if !found || rec.Seq != a.Seq {
				if slices.Equal(a.Codes, []string{cms.CodeSeqReused}) {
					out = append(out, cms.LedgerEntry{OpID: a.OpID, Seq: a.Seq, Kind: a.Kind,
						Outcome: cms.Outcome{Rejects: []cms.Reject{cmsstore.ErrSeqReused()}, At: a.At}})
				}
				continue
			}
			out = append(out, cms.LedgerEntry{OpID: a.OpID, Seq: a.Seq, Kind: a.Kind, Outcome: rec.Outcome})
		}
		return nil
	})
	if err != nil {
		return 0, nil, classify("ledger", err)
	}
	slices.SortFunc(out, func(a, b cms.LedgerEntry) int { return cmp.Compare(a.Seq, b.Seq) })
	return last, out, nil
}
