package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/cmsstore"
	"github.com/jackc/pgx/v5"
	json "github.com/segmentio/encoding/json"
)

// CMS is the store as cmsstore.Store: the frame of ApplyBatch with the
// CMS's records (migration 00002) for refcms's rules (refcms.New). Its
// Close closes the store.
func (s *Store) CMS() cmsstore.Store { return cmsStore{s} }

// cmsStore is Store as cmsstore.Store.
type cmsStore struct{ s *Store }

var _ cmsstore.Store = cmsStore{}

func (c cmsStore) ApplyBatch(ctx context.Context, ops []cms.Op, effect cmsstore.Effect) ([]cms.Outcome, error) {
	return c.s.ApplyBatch(ctx, ops, func(ctx context.Context, tx *Tx, op cms.Op, protocol string) (Applied, error) {
		return effect(recTx{t: tx, ctx: ctx}, op, protocol)
	})
}

// View reads in one REPEATABLE READ, read-only transaction: one snapshot.
func (c cmsStore) View(ctx context.Context, fn func(cmsstore.Reader) error) error {
	err := pgx.BeginTxFunc(ctx, c.s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error { return fn(recTx{t: &Tx{tx: tx}, ctx: ctx}) })
	return classify("view", err)
}

// Update takes the numbering counters first, like an applying
// transaction (lockCounters): the rules it runs never interleave with
// those of a batch.
func (c cmsStore) Update(ctx context.Context, fn func(cmsstore.Tx) error) error {
	err := pgx.BeginFunc(ctx, c.s.pool, func(tx pgx.Tx) error {
		t := &Tx{tx: tx}
		var counters map[string]int64
		if err := lockCounters(ctx, t, &counters); err != nil {
			return err
		}
		if err := fn(recTx{t: t, ctx: ctx}); err != nil {
			return err
		}
		return t.flush(ctx)
	})
	return classify("update", err)
}

func (c cmsStore) LogRefused(ctx context.Context, ts []cms.Transmission) error {
	return c.s.LogRefused(ctx, ts)
}

func (c cmsStore) Writable(ctx context.Context) error { return c.s.Ping(ctx) }

func (c cmsStore) Close() error {
	c.s.Close()
	return nil
}

// recTx is the CMS's records in a transaction (cmsstore.Tx): reads are
// queries (the writes queued before them go first), writes are queued.
type recTx struct {
	t   *Tx
	ctx context.Context
}

var _ cmsstore.Tx = recTx{}

// row scans the one row of sql into dst; false when there is none.
func (r recTx) row(sql string, args []any, dst ...any) (bool, error) {
	err := r.t.QueryRow(r.ctx, sql, args...).Scan(dst...)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// cached returns the JSON of record key (table and key), from the
// transaction's cache or else from the one row of sql, which it caches.
// Within an applying transaction (or Update) the counter rows are held
// (lockCounters): no other hub process changes a record until the
// commit, so what this transaction read or wrote is what the database
// holds. A batch draining one card's operations reads the card once, not
// once per operation.
func (r recTx) cached(key, sql string, args ...any) ([]byte, error) {
	if b, ok := r.t.cache[key]; ok {
		return b, nil
	}
	var b []byte
	if _, err := r.row(sql, args, &b); err != nil {
		return nil, err
	}
	if r.t.cache == nil {
		r.t.cache = make(map[string][]byte)
	}
	r.t.cache[key] = b
	return b, nil
}

// cachedRecord is record through the cache.
func cachedRecord[T any](r recTx, what, key, sql string, args ...any) (*T, error) {
	b, err := r.cached(key, sql, args...)
	if b == nil || err != nil {
		return nil, err
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return &v, nil
}

// remember puts record key's JSON (nil: gone) in the cache.
func (r recTx) remember(key string, b []byte) {
	if r.t.cache == nil {
		r.t.cache = make(map[string][]byte)
	}
	r.t.cache[key] = b
}

// Cache keys: the table, a NUL, the key.
func cardKey(serial string) string { return "cards\x00" + serial }
func fseKey(cf string) string      { return "fse\x00" + cf }
func paymentKey(ref string) string { return "payments\x00" + ref }
func reissueKey(serial string) string {
	return "reissue\x00" + serial
}

// record decodes the JSON of the one row of sql; nil when there is none.
func record[T any](r recTx, what, sql string, args ...any) (*T, error) {
	var b []byte
	if ok, err := r.row(sql, args, &b); !ok || err != nil {
		return nil, err
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return &v, nil
}

// records decodes the JSON of every row of sql, in order.
func records[T any](r recTx, what, sql string, args ...any) ([]T, error) {
	rows, err := r.t.Query(r.ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func (r recTx) Card(serial string) (*cms.Card, error) {
	return cachedRecord[cms.Card](r, "card", cardKey(serial), `SELECT card FROM cards WHERE serial = $1`, serial)
}

func (r recTx) CardByTEAM(team string) (*cms.Card, error) {
	return record[cms.Card](r, "card", `SELECT card FROM cards WHERE team = $1 ORDER BY serial LIMIT 1`, team)
}

func (r recTx) CardsOf(cf string) ([]cms.Card, error) {
	return records[cms.Card](r, "card", `SELECT card FROM cards WHERE cf = $1 ORDER BY serial`, cf)
}

func (r recTx) Consent(serial string) (*cmsstore.ConsentRecord, error) {
	return record[cmsstore.ConsentRecord](r, "consents", `SELECT cur FROM consents WHERE serial = $1`, serial)
}

func (r recTx) PreviousConsent(serial string) (*cmsstore.ConsentRecord, error) {
	p, err := record[cmsstore.ConsentRecord](r, "previous consents",
		`SELECT prev FROM consents WHERE serial = $1 AND prev IS NOT NULL`, serial)
	if p != nil {
		p.Previous = nil
	}
	return p, err
}

func (r recTx) ConsentOf(opID, protocol string) (string, *cmsstore.ConsentRecord, error) {
	return keyedRecord[cmsstore.ConsentRecord](r, "consents",
		`SELECT serial, cur FROM consents WHERE op_id = $1 AND protocol = $2 ORDER BY serial LIMIT 1`, opID, protocol)
}

// keyedRecord is record for a query of the key and the JSON of a record.
func keyedRecord[T any](r recTx, what, sql string, args ...any) (string, *T, error) {
	var key string
	var b []byte
	if ok, err := r.row(sql, args, &key, &b); !ok || err != nil {
		return "", nil, err
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return "", nil, fmt.Errorf("%s: %w", what, err)
	}
	return key, &v, nil
}

func (r recTx) History(serial string) ([]cms.HistoryEvent, error) {
	return records[cms.HistoryEvent](r, "history", `SELECT event FROM history WHERE serial = $1 ORDER BY n`, serial)
}

func (r recTx) Notifications(serial string) ([]cmsstore.Notification, error) {
	return records[cmsstore.Notification](r, "notification",
		`SELECT record FROM notifications WHERE $1 = '' OR serial = $1 ORDER BY n`, serial)
}

func (r recTx) Payment(ref string) (*cmsstore.PaymentRecord, error) {
	return cachedRecord[cmsstore.PaymentRecord](r, "payments", paymentKey(ref), `SELECT record FROM payments WHERE ref = $1`, ref)
}

func (r recTx) PaymentOf(opID, protocol string) (string, *cmsstore.PaymentRecord, error) {
	return keyedRecord[cmsstore.PaymentRecord](r, "payments",
		`SELECT ref, record FROM payments WHERE op_id = $1 AND protocol = $2 ORDER BY ref LIMIT 1`, opID, protocol)
}

func (r recTx) Reissue(serial string) (*cmsstore.ReissueRecord, error) {
	return cachedRecord[cmsstore.ReissueRecord](r, "reissue", reissueKey(serial), `SELECT record FROM reissue WHERE serial = $1`, serial)
}

func (r recTx) CIPFailures(serial string) (int, error) {
	var n int32
	_, err := r.row(`SELECT n FROM cipfail WHERE serial = $1`, []any{serial}, &n)
	return int(n), err
}

func (r recTx) FSE(cf string) (*cmsstore.FSERecord, error) {
	return cachedRecord[cmsstore.FSERecord](r, "fse record", fseKey(cf), `SELECT record FROM fse WHERE cf = $1`, cf)
}

func (r recTx) PendingFSE() ([]cmsstore.FSERecord, error) {
	return records[cmsstore.FSERecord](r, "fse record", `SELECT record FROM fse WHERE state = $1 ORDER BY cf`, cms.FSEPending)
}

func (r recTx) Tickets() ([]cmsstore.Ticket, error) {
	return records[cmsstore.Ticket](r, "ticket", `SELECT record FROM tickets ORDER BY n`)
}

func (r recTx) Refund(totem, ref string) (*cmsstore.RefundRecord, error) {
	return record[cmsstore.RefundRecord](r, "refund", `SELECT record FROM refunds WHERE totem = $1 AND ref = $2`, totem, ref)
}

func (r recTx) Op(totem, id string) (cmsstore.OpRecord, bool, error) {
	rec := cmsstore.OpRecord{Totem: totem}
	var seq int64
	var rejects, data []byte
	ok, err := r.row(`SELECT seq, kind, protocol, accepted, rejects, data, at FROM ops WHERE totem = $1 AND op_id = $2`,
		[]any{totem, id}, &seq, &rec.Kind, &rec.Outcome.Protocol, &rec.Outcome.Accepted, &rejects, &data, &rec.Outcome.At)
	if !ok || err != nil {
		return cmsstore.OpRecord{}, false, err
	}
	rec.Seq = uint64(seq)
	rec.Outcome.At = rec.Outcome.At.UTC()
	if len(rejects) > 0 {
		if err := json.Unmarshal(rejects, &rec.Outcome.Rejects); err != nil {
			return cmsstore.OpRecord{}, false, fmt.Errorf("op %s rejects: %w", id, err)
		}
	}
	if len(data) > 0 {
		rec.Outcome.Data = data
	}
	return rec, true, nil
}

// auditColumns are read by scanAudit.
const auditColumns = `n, at, totem, seq, op_id, kind, serial, channel, operator, protocol, accepted, codes, stamp, ref`

func scanAudit(rows pgx.Row) (cmsstore.AuditRecord, error) {
	var a cmsstore.AuditRecord
	var n, seq int64
	var stamp []byte
	if err := rows.Scan(&n, &a.At, &a.Totem, &seq, &a.OpID, &a.Kind, &a.Serial, &a.Channel, &a.Operator,
		&a.Protocol, &a.Accepted, &a.Codes, &stamp, &a.Ref); err != nil {
		return a, err
	}
	return a, finishAudit(&a, n, seq, stamp)
}

// finishAudit completes a scanned audit record: its number, its
// sequence number, its time in UTC, no empty codes (as bbolt gives
// them), its stamp decoded.
func finishAudit(a *cmsstore.AuditRecord, n, seq int64, stamp []byte) error {
	a.N, a.Seq, a.At = uint64(n), uint64(seq), a.At.UTC()
	if len(a.Codes) == 0 {
		a.Codes = nil
	}
	if len(stamp) > 0 {
		a.Stamp = new(cms.Stamp)
		if err := json.Unmarshal(stamp, a.Stamp); err != nil {
			return fmt.Errorf("audit %d stamp: %w", n, err)
		}
	}
	return nil
}

func (r recTx) Audit(fn func(cmsstore.AuditRecord) error) error {
	rows, err := r.t.Query(r.ctx, `SELECT `+auditColumns+` FROM audit ORDER BY n`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		a, err := scanAudit(rows)
		if err != nil {
			return err
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (r recTx) LastSeq(totem string) (uint64, error) {
	var n int64
	_, err := r.row(`SELECT last_seq FROM ledger WHERE totem = $1`, []any{totem}, &n)
	return uint64(n), err
}

func (r recTx) Meta(name string) ([]byte, error) {
	var v []byte
	_, err := r.row(`SELECT value FROM meta WHERE name = $1`, []any{name}, &v)
	return v, err
}

// queue queues sql with v marshalled as its last argument, and caches
// it under key (if not "").
func (r recTx) queue(key, sql string, v any, args ...any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	r.t.Queue(sql, append(args, b)...)
	if key != "" {
		r.remember(key, b)
	}
	return nil
}

func (r recTx) PutCard(c cms.Card) error {
	return r.queue(cardKey(c.Serial), `INSERT INTO cards (serial, team, cf, card) VALUES ($1, $2, $3, $4)
		ON CONFLICT (serial) DO UPDATE SET team = $2, cf = $3, card = $4`, c, c.Serial, cms.TEAM(c.Serial), c.CF)
}

// PushConsent keeps the record for the transaction's one write of the
// card's consents (queuePushes): a batch draining one card's consents
// sends one row, not one statement per consent.
func (r recTx) PushConsent(serial string, rec cmsstore.ConsentRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	p := &consentPush{opID: rec.OpID, protocol: rec.Protocol, cur: string(b)}
	if was, ok := r.t.pushes[serial]; ok {
		p.prev = &was.cur
	}
	if r.t.pushes == nil {
		r.t.pushes = make(map[string]*consentPush)
	}
	r.t.pushes[serial] = p
	return nil
}

func (r recTx) PutConsent(serial string, rec cmsstore.ConsentRecord) error {
	r.t.queuePushes(serial) // the order of the card's writes
	return r.queue("", `INSERT INTO consents (serial, op_id, protocol, cur) VALUES ($1, $2, $3, $4)
		ON CONFLICT (serial) DO UPDATE SET cur = $4, op_id = $2, protocol = $3`, rec, serial, rec.OpID, rec.Protocol)
}

func (r recTx) RestoreConsent(serial string, prev *cmsstore.ConsentRecord) error {
	r.t.queuePushes(serial)
	if prev == nil {
		r.t.Queue(`DELETE FROM consents WHERE serial = $1`, serial)
		return nil
	}
	return r.queue("", `UPDATE consents SET cur = $4, prev = NULL, op_id = $2, protocol = $3 WHERE serial = $1`,
		prev, serial, prev.OpID, prev.Protocol)
}

func (r recTx) AppendHistory(serial string, e cms.HistoryEvent) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	// One INSERT … unnest for the transaction's events (queueRows).
	r.t.history.serial = append(r.t.history.serial, serial)
	r.t.history.event = append(r.t.history.event, string(b))
	return nil
}

func (r recTx) AppendNotification(n cmsstore.Notification) error {
	return r.queue("", `INSERT INTO notifications (serial, record) VALUES ($1, $2)`, n, n.Serial)
}

func (r recTx) PutPayment(ref string, rec cmsstore.PaymentRecord) error {
	return r.queue(paymentKey(ref), `INSERT INTO payments (ref, op_id, protocol, record) VALUES ($1, $2, $3, $4)
		ON CONFLICT (ref) DO UPDATE SET op_id = $2, protocol = $3, record = $4`, rec, ref, rec.OpID, rec.Protocol)
}

func (r recTx) DeletePayment(ref string) error {
	r.t.Queue(`DELETE FROM payments WHERE ref = $1`, ref)
	r.remember(paymentKey(ref), nil)
	return nil
}

func (r recTx) PutReissue(rec cmsstore.ReissueRecord) error {
	return r.queue(reissueKey(rec.Serial), `INSERT INTO reissue (serial, record) VALUES ($1, $2)
		ON CONFLICT (serial) DO UPDATE SET record = $2`, rec, rec.Serial)
}

func (r recTx) SetCIPFailures(serial string, n int) error {
	if n <= 0 {
		r.t.Queue(`DELETE FROM cipfail WHERE serial = $1`, serial)
		return nil
	}
	r.t.Queue(`INSERT INTO cipfail (serial, n) VALUES ($1, $2) ON CONFLICT (serial) DO UPDATE SET n = $2`, serial, int32(n))
	return nil
}

func (r recTx) PutFSE(rec cmsstore.FSERecord) error {
	return r.queue(fseKey(rec.CF), `INSERT INTO fse (cf, state, record) VALUES ($1, $2, $3)
		ON CONFLICT (cf) DO UPDATE SET state = $2, record = $3`, rec, rec.CF, rec.State)
}

// NextTicket draws from the counter 'tickets', in the transaction: no
// gap after a rollback.
func (r recTx) NextTicket() (uint64, error) {
	var n int64
	ok, err := r.row(`UPDATE counters SET value = value + 1 WHERE name = 'tickets' RETURNING value`, nil, &n)
	if err == nil && !ok {
		err = errors.New("no tickets counter")
	}
	return uint64(n), err
}

func (r recTx) PutTicket(n uint64, t cmsstore.Ticket) error {
	return r.queue("", `INSERT INTO tickets (n, record) VALUES ($1, $2)`, t, int64(n))
}

func (r recTx) PutRefund(totem, ref string, rec cmsstore.RefundRecord) error {
	return r.queue("", `INSERT INTO refunds (totem, ref, record) VALUES ($1, $2, $3)
		ON CONFLICT (totem, ref) DO UPDATE SET record = $3`, rec, totem, ref)
}

func (r recTx) PutMeta(name string, v []byte) error {
	r.t.Queue(`INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = $2`, name, v)
	return nil
}
