package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aslcns/totem/internal/fleetuser"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The fleet registry on PostgreSQL (migration 00003): the broker users
// and their locks and enrollment codes (sync/broker.Registry's records)
// and the fleet's presence (sync/hub.Fleet's entries), so that every hub
// process on the database provisions, locks, enrolls and lists the same
// totems. This package knows them as JSON records: sync/broker and
// sync/hub (which cms may not import) define them, and sync/pgshare
// adapts this API to their store interfaces.

// The fleet registry's tables, by the names of the bbolt buckets they
// replace (sync/broker: fleet.db).
const (
	FleetUsers  = "users"  // fleet_users: sync/broker.User
	FleetLocks  = "locks"  // fleet_locks: sync/broker.Lock
	FleetEnroll = "enroll" // fleet_enroll: sync/broker.Enrollment
)

// RegistryTx is one transaction on the fleet registry's tables, a record
// being its JSON under its key (the user name, or the totem).
type RegistryTx struct {
	ctx context.Context
	tx  pgx.Tx
}

// RegistryView runs fn in a read-only transaction that sees one snapshot
// (REPEATABLE READ): a list of users and their locks agree.
func (s *Store) RegistryView(ctx context.Context, fn func(*RegistryTx) error) error {
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error { return fn(&RegistryTx{ctx: ctx, tx: tx}) })
	return classify("fleet registry", err)
}

// RegistryUpdate runs fn in a transaction that holds the registry's lock
// on key (a transaction-scoped advisory lock): the read-check-write of
// one user's records (a failure counted, a code redeemed, a rotation
// confirmed) by two hub processes at once happen one after the other,
// even for a user that has no row yet.
func (s *Store) RegistryUpdate(ctx context.Context, key string, fn func(*RegistryTx) error) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('fleet:' || $1, 0))`, key); err != nil {
			return err
		}
		return fn(&RegistryTx{ctx: ctx, tx: tx})
	})
	return classify("fleet registry", err)
}

func tableOf(table string) (string, string, error) {
	switch table {
	case FleetLocks:
		return "fleet_locks", "username", nil
	case FleetEnroll:
		return "fleet_enroll", "totem", nil
	}
	return "", "", fmt.Errorf("pgstore: no fleet registry table %q", table)
}

// Get returns the record under key in table, nil if there is none.
func (t *RegistryTx) Get(table, key string) ([]byte, error) {
	if table == FleetUsers {
		var u fleetuser.User
		var exp, nexp, rot *time.Time
		err := t.tx.QueryRow(t.ctx, `SELECT username, role, hash, created, expires, next, next_expires, rotated
			FROM fleet_users WHERE username = $1`, key).Scan(&u.Username, &u.Role, &u.Hash, &u.Created, &exp, &u.Next, &nexp, &rot)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		u.Created = u.Created.UTC()
		u.Expires, u.NextExpires, u.Rotated = fromNull(exp), fromNull(nexp), fromNull(rot)
		return json.Marshal(u)
	}
	tab, col, err := tableOf(table)
	if err != nil {
		return nil, err
	}
	var v []byte
	err = t.tx.QueryRow(t.ctx, `SELECT record FROM `+tab+` WHERE `+col+` = $1`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return v, err
}

// Put writes v, the JSON record, under key in table.
func (t *RegistryTx) Put(table, key string, v []byte) error {
	switch table {
	case FleetUsers:
		var u fleetuser.User
		if err := json.Unmarshal(v, &u); err != nil {
			return fmt.Errorf("pgstore: fleet user: %w", err)
		}
		if u.Username != key {
			return errors.New("pgstore: fleet user: the record is another user's")
		}
		_, err := t.tx.Exec(t.ctx, `INSERT INTO fleet_users (username, role, hash, created, expires, next, next_expires, rotated)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (username) DO UPDATE SET role = $2, hash = $3, created = $4, expires = $5, next = $6,
				next_expires = $7, rotated = $8`,
			u.Username, u.Role, u.Hash, u.Created, nullTime(u.Expires), u.Next, nullTime(u.NextExpires), nullTime(u.Rotated))
		return err
	case FleetLocks:
		var lk struct {
			Locked bool `json:"locked"`
		}
		if err := json.Unmarshal(v, &lk); err != nil {
			return fmt.Errorf("pgstore: fleet lock: %w", err)
		}
		_, err := t.tx.Exec(t.ctx, `INSERT INTO fleet_locks (username, locked, record) VALUES ($1, $2, $3)
			ON CONFLICT (username) DO UPDATE SET locked = $2, record = $3`, key, lk.Locked, v)
		return err
	}
	tab, col, err := tableOf(table)
	if err != nil {
		return err
	}
	_, err = t.tx.Exec(t.ctx, `INSERT INTO `+tab+` (`+col+`, record) VALUES ($1, $2)
		ON CONFLICT (`+col+`) DO UPDATE SET record = $2`, key, v)
	return err
}

// Delete removes the record under key in table, if any.
func (t *RegistryTx) Delete(table, key string) error {
	tab, col := "fleet_users", "username"
	if table != FleetUsers {
		var err error
		if tab, col, err = tableOf(table); err != nil {
			return err
		}
	}
	_, err := t.tx.Exec(t.ctx, `DELETE FROM `+tab+` WHERE `+col+` = $1`, key)
	return err
}

// ForEach calls fn with every record of table, by key.
func (t *RegistryTx) ForEach(table string, fn func(key string, v []byte) error) error {
	var q string
	if table == FleetUsers {
		q = `SELECT username, json_build_object('username', username, 'role', role, 'hash', hash, 'created', created,
			'expires', expires, 'next', next, 'next_expires', next_expires, 'rotated', rotated)::text FROM fleet_users ORDER BY username`
	} else {
		tab, col, err := tableOf(table)
		if err != nil {
			return err
		}
		q = `SELECT ` + col + `, record::text FROM ` + tab + ` ORDER BY ` + col
	}
	rows, err := t.tx.Query(t.ctx, q)
	if err != nil {
		return err
	}
	type kv struct{ k, v string }
	var all []kv
	for rows.Next() {
		var r kv
		if err := rows.Scan(&r.k, &r.v); err != nil {
			rows.Close()
			return err
		}
		all = append(all, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range all {
		v := []byte(r.v)
		if table == FleetUsers {
			// json_build_object writes NULL as null: back to
			// sync/broker.User's JSON (zero times omitted).
			var u struct {
				fleetuser.User
				Expires     *time.Time `json:"expires"`
				NextExpires *time.Time `json:"next_expires"`
				Rotated     *time.Time `json:"rotated"`
			}
			if err := json.Unmarshal(v, &u); err != nil {
				return err
			}
			u.User.Created = u.User.Created.UTC()
			u.User.Expires, u.User.NextExpires, u.User.Rotated = fromNull(u.Expires), fromNull(u.NextExpires), fromNull(u.Rotated)
			if v, err = json.Marshal(u.User); err != nil {
				return err
			}
		}
		if err := fn(r.k, v); err != nil {
			return err
		}
	}
	return nil
}

// FleetEntry is one entry of the fleet's presence (sync/hub.TotemStatus
// as JSON, in two halves: fleet_totems).
type FleetEntry struct {
	Totem string
	Entry []byte    // all but the last operation's answer (JSON)
	Seen  time.Time // the entry's last_seen: zero for a totem never heard from
	// Last is the answer to the totem's latest operation (JSON; nil:
	// none known) and LastSeq its sequence number.
	Last    []byte
	LastSeq uint64
	Changed time.Time // the database's clock at its last write (read only)
}

// SaveFleet writes entries in one statement: a row's entry is replaced
// unless the row's seen is newer than the entry's, its last unless the
// row's last_seq is higher; a totem that has no row gets one. It returns
// nothing of the merge: the writers read the rows back (FleetSince).
func (s *Store) SaveFleet(ctx context.Context, entries []FleetEntry) error {
	_, err := saveFleet(ctx, s.pool, entries)
	return classify("fleet presence", err)
}

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func saveFleet(ctx context.Context, db execer, entries []FleetEntry) (pgconn.CommandTag, error) {
	if len(entries) == 0 {
		return pgconn.CommandTag{}, nil
	}
	totems := make([]string, len(entries))
	docs := make([]string, len(entries))
	seen := make([]*time.Time, len(entries))
	last := make([]*string, len(entries))
	seqs := make([]int64, len(entries))
	for i, e := range entries {
		totems[i], docs[i], seen[i], seqs[i] = e.Totem, string(e.Entry), nullTime(e.Seen), int64(e.LastSeq)
		if e.Last != nil {
			l := string(e.Last)
			last[i] = &l
		}
	}
	return db.Exec(ctx, `INSERT INTO fleet_totems AS f (totem, entry, seen, last, last_seq)
		SELECT t, e::jsonb, s, l::jsonb, coalesce(n, 0) FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::bigint[]) AS u(t, e, s, l, n)
		ON CONFLICT (totem) DO UPDATE SET
			entry = CASE WHEN f.seen IS NULL OR excluded.seen >= f.seen THEN excluded.entry ELSE f.entry END,
			seen = CASE WHEN f.seen IS NULL OR excluded.seen >= f.seen THEN excluded.seen ELSE f.seen END,
			last = CASE WHEN excluded.last IS NOT NULL AND excluded.last_seq >= f.last_seq THEN excluded.last ELSE f.last END,
			last_seq = CASE WHEN excluded.last IS NOT NULL AND excluded.last_seq >= f.last_seq THEN excluded.last_seq ELSE f.last_seq END,
			changed = clock_timestamp()`, totems, docs, seen, last, seqs)
}

// ErrFleetNotEmpty says LoadFleet was asked to fill a database whose
// fleet registry already has users or entries: loading would mix two
// hubs' registries.
var ErrFleetNotEmpty = errors.New("pgstore: load: the database's fleet registry already holds users or totems")

// LoadFleet fills an empty fleet registry in one transaction: fn puts
// the records (a stopped bbolt hub's fleet.db, totemhub migrate
// --from-bbolt), then entries are written. All or nothing.
func (s *Store) LoadFleet(ctx context.Context, fn func(*RegistryTx) error, entries []FleetEntry) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE fleet_users, fleet_locks, fleet_enroll, fleet_totems IN EXCLUSIVE MODE`); err != nil {
			return err
		}
		var used bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM fleet_users) OR EXISTS (SELECT 1 FROM fleet_totems)`).Scan(&used); err != nil {
			return err
		}
		if used {
			return ErrFleetNotEmpty
		}
		if err := fn(&RegistryTx{ctx: ctx, tx: tx}); err != nil {
			return err
		}
		_, err := saveFleet(ctx, tx, entries)
		return err
	})
	if errors.Is(err, ErrFleetNotEmpty) {
		return err
	}
	return classify("load fleet", err)
}

// AddFleet adds the totems that have no row yet with the entry made by
// entry (a provisioned totem never heard from); the others are left
// alone.
func (s *Store) AddFleet(ctx context.Context, totems []string, entry func(totem string) []byte) error {
	if len(totems) == 0 {
		return nil
	}
	docs := make([]string, len(totems))
	for i, t := range totems {
		docs[i] = string(entry(t))
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO fleet_totems (totem, entry)
		SELECT t, e::jsonb FROM unnest($1::text[], $2::text[]) AS u(t, e) ON CONFLICT (totem) DO NOTHING`, totems, docs)
	return classify("fleet presence", err)
}

// FleetSince returns the rows written at or after since (the database's
// clock; zero: all), and the latest changed among them (since when none).
func (s *Store) FleetSince(ctx context.Context, since time.Time) ([]FleetEntry, time.Time, error) {
	rows, err := s.pool.Query(ctx, `SELECT totem, entry::text, seen, last::text, last_seq, changed FROM fleet_totems
		WHERE changed >= $1 ORDER BY totem`, since)
	if err != nil {
		return nil, since, classify("fleet presence", err)
	}
	defer rows.Close()
	var out []FleetEntry
	top := since
	for rows.Next() {
		var e FleetEntry
		var entry string
		var last *string
		var seen *time.Time
		var seq int64
		if err := rows.Scan(&e.Totem, &entry, &seen, &last, &seq, &e.Changed); err != nil {
			return nil, since, classify("fleet presence", err)
		}
		e.Entry, e.Seen, e.LastSeq = []byte(entry), fromNull(seen), uint64(seq)
		if last != nil {
			e.Last = []byte(*last)
		}
		if e.Changed.After(top) {
			top = e.Changed
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, since, classify("fleet presence", err)
	}
	return out, top, nil
}

// Now returns the database's clock (FleetSince's).
func (s *Store) Now(ctx context.Context) (time.Time, error) {
	var t time.Time
	err := s.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&t)
	return t, classify("clock", err)
}
