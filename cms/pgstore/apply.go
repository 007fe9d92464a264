package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/cmsstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	json "github.com/segmentio/encoding/json"
)

// Applied is what the rules of one operation gave: the card it
// concerned, who drove it, the refusals, and the Data of an accepted
// online operation (marshalled into the outcome).
type Applied = cmsstore.Applied

// Effect applies the rules of op, numbered protocol, inside tx. An error
// aborts the whole batch (nothing written); refusals are Rejects.
type Effect func(ctx context.Context, tx *Tx, op cms.Op, protocol string) (Applied, error)

// Tx is the applying transaction as an Effect sees it. Writes given to
// Queue travel together with the next read (or the commit): a rule that
// only writes costs no round trip of its own.
type Tx struct {
	tx pgx.Tx
	b  pgx.Batch
	// cache is the records this transaction read or wrote, by table and
	// key, as JSON (nil: there is none): see recTx.cached.
	cache map[string][]byte
	// The frame's own rows, and the history's, sent as one INSERT …
	// unnest per table.
	ops     opRows
	audit   auditRows
	history historyRows
	// pushes are the consent records given in this transaction and not
	// sent yet, one per card: sent together (queuePushes).
	pushes map[string]*consentPush
}

// consentPush is a consent record given (cmsstore.Tx.PushConsent) not
// sent yet.
type consentPush struct {
	opID, protocol, cur string
	// prev is the record it replaces when given in this transaction
	// too; nil: the one in force in the database.
	prev *string
}

// queuePushes queues the consents given (those of serial only, if not
// ""): one INSERT … unnest, a card at most once.
func (t *Tx) queuePushes(serial string) {
	if len(t.pushes) == 0 {
		return
	}
	var serials, ops, protocols, curs []string
	var prevs []*string
	for k, p := range t.pushes {
		if serial != "" && k != serial {
			continue
		}
		serials, ops, protocols, curs = append(serials, k), append(ops, p.opID), append(protocols, p.protocol), append(curs, p.cur)
		prevs = append(prevs, p.prev)
		delete(t.pushes, k)
	}
	if len(serials) == 0 {
		return
	}
	t.b.Queue(`INSERT INTO consents (serial, op_id, protocol, cur, prev)
		SELECT serial, op_id, protocol, cur::json, prev::json
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS r(serial, op_id, protocol, cur, prev)
		ON CONFLICT (serial) DO UPDATE SET prev = coalesce(EXCLUDED.prev, consents.cur), cur = EXCLUDED.cur,
			op_id = EXCLUDED.op_id, protocol = EXCLUDED.protocol`, serials, ops, protocols, curs, prevs)
}

// historyRows are rows of history, column by column, in order.
type historyRows struct {
	serial []string
	event  []string
}

// opCols are the columns ops and audit both have: the operation, its
// protocol and outcome, when it was received.
type opCols struct {
	totem, id, kind, protocol, codes []string
	seq                              []int64
	accepted                         []bool
	at                               []time.Time
}

func (c *opCols) add(op *cms.Op, protocol string, accepted bool, codes []string) {
	c.totem = append(c.totem, op.Totem)
	c.id = append(c.id, op.ID)
	c.seq = append(c.seq, int64(op.Seq))
	c.kind = append(c.kind, op.Kind)
	c.protocol = append(c.protocol, protocol)
	c.accepted = append(c.accepted, accepted)
	c.codes = append(c.codes, codeList(codes))
	c.at = append(c.at, op.Received)
}

// opRows are rows of ops, column by column.
type opRows struct {
	opCols
	rejects []*string
	data    [][]byte
}

// auditRows are rows of audit, column by column.
type auditRows struct {
	opCols
	serial, channel, operator, ref []string
	stamp                          []*string
}

// codeList is codes as one column value (codes hold no comma).
func codeList(codes []string) string { return strings.Join(codes, ",") }

const codesSQL = `coalesce(string_to_array(nullif(c, ''), ','), '{}')`

func (t *Tx) queueRows() {
	t.queuePushes("")
	if o := &t.ops; len(o.totem) > 0 {
		t.b.Queue(`INSERT INTO ops (totem, op_id, seq, kind, protocol, accepted, codes, rejects, data, at)
			SELECT totem, op_id, seq, kind, protocol, accepted, `+codesSQL+`, rejects::jsonb, data, at
			FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bool[], $7::text[], $8::text[], $9::bytea[], $10::timestamptz[])
				AS r(totem, op_id, seq, kind, protocol, accepted, c, rejects, data, at)`,
			o.totem, o.id, o.seq, o.kind, o.protocol, o.accepted, o.codes, o.rejects, o.data, o.at)
		t.ops = opRows{}
	}
	if a := &t.audit; len(a.totem) > 0 {
		t.b.Queue(`INSERT INTO audit (at, totem, seq, op_id, kind, serial, channel, operator, protocol, accepted, codes, stamp, ref)
			SELECT at, totem, seq, op_id, kind, serial, channel, operator, protocol, accepted, `+codesSQL+`, stamp::jsonb, ref
			FROM unnest($1::timestamptz[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
				$9::text[], $10::bool[], $11::text[], $12::text[], $13::text[]) WITH ORDINALITY
				AS r(at, totem, seq, op_id, kind, serial, channel, operator, protocol, accepted, c, stamp, ref, i) ORDER BY i`,
			a.at, a.totem, a.seq, a.id, a.kind, a.serial, a.channel, a.operator, a.protocol, a.accepted, a.codes, a.stamp, a.ref)
		t.audit = auditRows{}
	}
	if h := &t.history; len(h.serial) > 0 {
		t.b.Queue(`INSERT INTO history (serial, event)
			SELECT serial, event::json FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS r(serial, event, i) ORDER BY i`,
			h.serial, h.event)
		t.history = historyRows{}
	}
}

func (t *Tx) addAudit(op *cms.Op, res *Applied, protocol string, accepted bool, codes []string) {
	a := &t.audit
	a.add(op, protocol, accepted, codes)
	a.serial = append(a.serial, res.Serial)
	a.channel = append(a.channel, res.Channel)
	a.operator = append(a.operator, res.Operator)
	a.stamp = append(a.stamp, stampJSON(op.Stamp))
	a.ref = append(a.ref, res.Ref)
}

func (t *Tx) addOp(op *cms.Op, out *cms.Outcome, codes []string) {
	o := &t.ops
	o.add(op, out.Protocol, out.Accepted, codes)
	var rejects *string
	if len(out.Rejects) > 0 {
		b, _ := json.Marshal(out.Rejects)
		r := string(b)
		rejects = &r
	}
	o.rejects = append(o.rejects, rejects)
	var data []byte
	if len(out.Data) > 0 {
		data = out.Data
	}
	o.data = append(o.data, data)
}

// Queue adds a write to be sent before the next read or the commit. Its
// error, if any, aborts the batch.
func (t *Tx) Queue(sql string, args ...any) { t.b.Queue(sql, args...) }

// flush sends the queued writes.
func (t *Tx) flush(ctx context.Context) error {
	t.queueRows()
	if t.b.Len() == 0 {
		return nil
	}
	br := t.tx.SendBatch(ctx, &t.b)
	t.b = pgx.Batch{}
	return br.Close()
}

// Exec sends the queued writes, then runs sql.
func (t *Tx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := t.flush(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	return t.tx.Exec(ctx, sql, args...)
}

// Query sends the queued writes, then runs sql.
func (t *Tx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.tx.Query(ctx, sql, args...)
}

// QueryRow sends the queued writes, then runs sql.
func (t *Tx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.flush(ctx); err != nil {
		return errRow{err}
	}
	return t.tx.QueryRow(ctx, sql, args...)
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// stored is an applied operation's record (ops).
type stored struct {
	seq     uint64
	outcome cms.Outcome
}

type opKey struct{ totem, id string }

// batch is the state of one ApplyBatch transaction.
type batch struct {
	tx       Tx
	last     map[string]uint64 // totem → last_seq, as this transaction leaves it
	ops      map[opKey]stored  // the batch's ids found applied, and those it applies
	counters map[string]int64  // protocol, queries: as this transaction leaves them; nil = not read yet
	counted  bool
}

// Apply applies one operation (ApplyBatch of one).
func (s *Store) Apply(ctx context.Context, op cms.Op, effect Effect) (cms.Outcome, error) {
	outs, err := s.ApplyBatch(ctx, []cms.Op{op}, effect)
	if err != nil {
		return cms.Outcome{}, err
	}
	return outs[0], nil
}

// ApplyBatch applies ops in order in one transaction, exactly once per
// (totem, op id) and in sequence per totem (see the package comment),
// with effect running the rules of each operation that gets a protocol
// number. A transient failure is ErrUnavailable: the same batch may be
// given again (see ErrUnavailable).
func (s *Store) ApplyBatch(ctx context.Context, ops []cms.Op, effect Effect) ([]cms.Outcome, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	now := time.Now()
	ops = slices.Clone(ops) // the caller's are left as they were
	for i := range ops {
		if ops[i].Received.IsZero() {
			ops[i].Received = now
		}
	}
	totems := make([]string, 0, 4)
	for _, op := range ops {
		totems = append(totems, op.Totem)
	}
	slices.Sort(totems)
	totems = slices.Compact(totems)
	if err := s.ensureLedger(ctx, totems); err != nil {
		return nil, classify("apply", err)
	}
	var outs []cms.Outcome
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		outs, err = s.applyTx(ctx, tx, totems, ops, effect)
		return err
	})
	if err != nil {
		return nil, classify("apply", err)
	}
	return outs, nil
}

// ensureLedger creates the ledger rows of totems not seen yet, in its own
// statement: the applying transaction then only locks existing rows, in
// sorted order.
func (s *Store) ensureLedger(ctx context.Context, totems []string) error {
	var missing []string
	for _, t := range totems {
		if _, ok := s.known.Load(t); !ok {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO ledger (totem, last_seq) SELECT t, 0 FROM unnest($1::text[]) AS t ORDER BY t
		ON CONFLICT (totem) DO NOTHING`, missing)
	if err != nil {
		return err
	}
	for _, t := range missing {
		s.known.Store(t, struct{}{})
	}
	return nil
}

func (s *Store) applyTx(ctx context.Context, tx pgx.Tx, totems []string, ops []cms.Op, effect Effect) ([]cms.Outcome, error) {
	b := &batch{tx: Tx{tx: tx}, last: make(map[string]uint64, len(totems)), ops: make(map[opKey]stored, len(ops))}
	// The ledger rows first, in sorted order: no deadlock between
	// batches, one totem's operations one batch at a time. Then the
	// batch's ids already applied (one round trip for the batch).
	ids := make([]string, len(ops))
	ots := make([]string, len(ops))
	for i, op := range ops {
		ids[i], ots[i] = op.ID, op.Totem
	}
	rows, err := tx.Query(ctx, `SELECT totem, last_seq FROM ledger WHERE totem = ANY($1) ORDER BY totem FOR UPDATE`, totems)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var t string
		var n int64
		if err := rows.Scan(&t, &n); err != nil {
			return nil, err
		}
		b.last[t] = uint64(n)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(b.last) != len(totems) {
		return nil, errors.New("ledger rows missing")
	}
	rows, err = tx.Query(ctx, `SELECT o.totem, o.op_id, o.seq, o.protocol, o.accepted, o.rejects, o.data, o.at
		FROM ops o JOIN unnest($1::text[], $2::text[]) AS k(totem, op_id) USING (totem, op_id)`, ots, ids)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var k opKey
		var st stored
		var seq int64
		var rejects, data []byte
		if err := rows.Scan(&k.totem, &k.id, &seq, &st.outcome.Protocol, &st.outcome.Accepted, &rejects, &data, &st.outcome.At); err != nil {
			return nil, err
		}
		st.seq = uint64(seq)
		if len(rejects) > 0 {
			if err := json.Unmarshal(rejects, &st.outcome.Rejects); err != nil {
				return nil, fmt.Errorf("op %s rejects: %w", k.id, err)
			}
		}
		if len(data) > 0 {
			st.outcome.Data = data
		}
		b.ops[k] = st
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	outs := make([]cms.Outcome, len(ops))
	for i, op := range ops {
		if outs[i], err = s.applyOne(ctx, b, op, effect); err != nil {
			return nil, err
		}
	}
	for _, t := range totems {
		b.tx.Queue(`UPDATE ledger SET last_seq = $2 WHERE totem = $1`, t, int64(b.last[t]))
	}
	if b.counted {
		b.tx.Queue(`UPDATE counters SET value = c.v FROM (VALUES ('protocol', $1::bigint), ('queries', $2::bigint)) AS c(n, v)
			WHERE name = c.n AND value <> c.v`, b.counters["protocol"], b.counters["queries"])
	}
	return outs, b.tx.flush(ctx)
}

var errSeqReused = cmsstore.ErrSeqReused()

// lockCounters reads the numbering counters FOR UPDATE, both in one
// order: after the ledger rows, in every transaction (no deadlock). From
// then on, the transaction has the rules to itself: every transaction
// that numbers an operation (or that Update runs) waits here for the one
// before it to commit, so the rules' reads then writes of a record never
// interleave with another hub's (no lost update under READ COMMITTED).
func lockCounters(ctx context.Context, tx *Tx, into *map[string]int64) error {
	rows, err := tx.Query(ctx, `SELECT name, value FROM counters WHERE name IN ('protocol', 'queries') ORDER BY name FOR UPDATE`)
	if err != nil {
		return fmt.Errorf("counters: %w", err)
	}
	m := make(map[string]int64, 2)
	for rows.Next() {
		var n string
		var v int64
		if err := rows.Scan(&n, &v); err != nil {
			return fmt.Errorf("counters: %w", err)
		}
		m[n] = v
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("counters: %w", err)
	}
	*into = m
	return nil
}

// applyOne is one operation's life in the batch: dedup, sequence, protocol
// number, rules, record, audit (refcms applyTx).
func (s *Store) applyOne(ctx context.Context, b *batch, op cms.Op, effect Effect) (cms.Outcome, error) {
	rec, found := b.ops[opKey{op.Totem, op.ID}]
	if found && rec.seq == op.Seq {
		out := rec.outcome
		out.Duplicate = true
		logRepeat(&b.tx, 'd', transmission(op, out))
		return out, nil
	}
	last := b.last[op.Totem]
	switch {
	case op.Seq > last+1:
		return cms.Outcome{OutOfOrder: true, Expect: last + 1, At: op.Received}, nil
	case op.Seq <= last:
		out := cms.Outcome{Rejects: []cms.Reject{errSeqReused}, At: op.Received}
		logRepeat(&b.tx, 'r', transmission(op, out))
		return out, nil
	case found:
		// The next number under an id this totem already used: refused
		// and consumed (ledger and audit; the id's record stays the
		// original's).
		b.last[op.Totem] = op.Seq
		b.tx.addAudit(&op, &Applied{}, "", false, []string{cms.CodeSeqReused})
		return cms.Outcome{Rejects: []cms.Reject{errSeqReused}, At: op.Received}, nil
	}
	if b.counters == nil {
		if err := lockCounters(ctx, &b.tx, &b.counters); err != nil {
			return cms.Outcome{}, err
		}
	}
	register, prefix := cmsstore.Series(op.Kind)
	b.counters[register]++
	b.counted = true
	out := cms.Outcome{Protocol: cmsstore.Number(prefix, op.Received, uint64(b.counters[register])), At: op.Received}
	var res Applied
	if effect != nil {
		var err error
		if res, err = effect(ctx, &b.tx, op, out.Protocol); err != nil {
			return cms.Outcome{}, err
		}
	}
	out.Rejects = res.Rejects
	out.Accepted = len(res.Rejects) == 0
	if out.Accepted && res.Data != nil {
		var err error
		if out.Data, err = json.Marshal(res.Data); err != nil {
			return cms.Outcome{}, err
		}
	}
	codes := make([]string, 0, len(out.Rejects))
	for _, r := range out.Rejects {
		codes = append(codes, r.Code)
	}
	b.tx.addOp(&op, &out, codes)
	b.tx.addAudit(&op, &res, out.Protocol, out.Accepted, codes)
	b.last[op.Totem] = op.Seq
	b.ops[opKey{op.Totem, op.ID}] = stored{seq: op.Seq, outcome: out}
	return out, nil
}

func stampJSON(st *cms.Stamp) *string {
	if st == nil {
		return nil
	}
	b, _ := json.Marshal(st)
	s := string(b)
	return &s
}

// transmission is the send log entry of op with outcome out.
func transmission(op cms.Op, out cms.Outcome) cms.Transmission { return cmsstore.Transmission(op, out) }

// logRepeat queues t, a transmission that changes nothing: the first time
// a send log entry, every time after a count on it.
func logRepeat(tx *Tx, class byte, t cms.Transmission) {
	t.N = 0
	entry, _ := json.Marshal(t)
	tx.Queue(`INSERT INTO sendlog (totem, class, op_id, seq, at, entry) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (totem, class, op_id, seq) DO UPDATE SET repeats = sendlog.repeats + 1, last = EXCLUDED.at`,
		t.Totem, string(rune(class)), t.OpID, int64(t.Seq), t.At, entry)
}

// LogRefused records transmissions the hub refused without applying them
// (class 'g').
func (s *Store) LogRefused(ctx context.Context, ts []cms.Transmission) error {
	if len(ts) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		t := Tx{tx: tx}
		for _, tr := range ts {
			tr.Transport, tr.Processing = cms.TxRefused, cms.TxPending
			logRepeat(&t, 'g', tr)
		}
		return t.flush(ctx)
	})
	return classify("send log", err)
}
