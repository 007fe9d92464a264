package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/cmsstore"
	"github.com/jackc/pgx/v5"
)

// ErrNotEmpty says Load was asked to fill a database that already holds
// operations: loading would mix two hubs' ledgers.
var ErrNotEmpty = errors.New("pgstore: load: the database already holds operations")

// Load runs fn in one transaction of a database that holds no operation
// yet (no ledger, ops or audit row: the cards and the key a hub seeds at
// start are overwritten): another store's content, moved whole (totemhub
// migrate --from-bbolt). All or nothing.
func (s *Store) Load(ctx context.Context, fn func(cmsstore.Loader) error) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		t := &Tx{tx: tx}
		var counters map[string]int64
		if err := lockCounters(ctx, t, &counters); err != nil {
			return err
		}
		var used bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ledger) OR EXISTS (SELECT 1 FROM ops)
			OR EXISTS (SELECT 1 FROM audit) OR EXISTS (SELECT 1 FROM sendlog)`).Scan(&used); err != nil {
			return err
		}
		if used {
			return ErrNotEmpty
		}
		if err := fn(loader{recTx{t: t, ctx: ctx}}); err != nil {
			return err
		}
		return t.flush(ctx)
	})
	if errors.Is(err, ErrNotEmpty) {
		return err
	}
	return classify("load", err)
}

// loader is a transaction of Load as cmsstore.Loader.
type loader struct{ recTx }

var _ cmsstore.Loader = loader{}

func codesOf(rs []cms.Reject) []string {
	codes := make([]string, 0, len(rs))
	for _, r := range rs {
		codes = append(codes, r.Code)
	}
	return codes
}

func (l loader) PutOp(id string, rec cmsstore.OpRecord) error {
	out := rec.Outcome
	out.Duplicate = false
	l.t.addOp(&cms.Op{Totem: rec.Totem, ID: id, Seq: rec.Seq, Kind: rec.Kind, Received: out.At}, &out, codesOf(out.Rejects))
	return nil
}

func (l loader) PutAudit(a cmsstore.AuditRecord) error {
	l.t.addAudit(&cms.Op{Totem: a.Totem, ID: a.OpID, Seq: a.Seq, Kind: a.Kind, Received: a.At, Stamp: a.Stamp},
		&Applied{Serial: a.Serial, Channel: a.Channel, Operator: a.Operator, Ref: a.Ref}, a.Protocol, a.Accepted, a.Codes)
	return nil
}

func (l loader) SetLedger(totem string, last uint64) error {
	l.t.Queue(`INSERT INTO ledger (totem, last_seq) VALUES ($1, $2)`, totem, int64(last))
	return nil
}

func (l loader) SetCounter(name string, last uint64) error {
	l.t.Queue(`INSERT INTO counters (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = $2`, name, int64(last))
	return nil
}

// PutSendLog sends the audit rows queued before it first: audit and send
// log draw their numbers from one sequence, in the order of the source.
func (l loader) PutSendLog(t cms.Transmission, class byte, repeats uint64) error {
	last := t.Last
	t.N, t.Repeats, t.Last = 0, 0, time.Time{}
	entry, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("send log entry: %w", err)
	}
	var lastAt any
	if !last.IsZero() {
		lastAt = last
	}
	l.t.queueRows()
	l.t.Queue(`INSERT INTO sendlog (totem, class, op_id, seq, at, last, repeats, entry) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		t.Totem, string(rune(class)), t.OpID, int64(t.Seq), t.At, lastAt, int64(repeats), entry)
	return nil
}
