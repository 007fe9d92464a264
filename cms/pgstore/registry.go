package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// LastSeq returns the last sequence number applied for totem.
func (s *Store) LastSeq(ctx context.Context, totem string) (uint64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT last_seq FROM ledger WHERE totem = $1`, totem).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return uint64(n), classify("ledger", err)
}

// AuditEntry is one record of the audit trail (refcms.AuditRecord with
// its number).
type AuditEntry struct {
	N        uint64
	At       time.Time
	Totem    string
	Seq      uint64
	OpID     string
	Kind     string
	Serial   string
	Channel  string
	Operator string
	Protocol string
	Accepted bool
	Codes    []string
	Ref      string
}

// Audit returns the audit records of totem ("" = all) in order.
func (s *Store) Audit(ctx context.Context, totem string) ([]AuditEntry, error) {
	rows, err := s.pool.Query(ctx, `SELECT n, at, totem, seq, op_id, kind, serial, channel, operator, protocol, accepted, codes, ref
		FROM audit WHERE $1 = '' OR totem = $1 ORDER BY n`, totem)
	if err != nil {
		return nil, classify("audit", err)
	}
	var out []AuditEntry
	for rows.Next() {
		var a AuditEntry
		var n, seq int64
		if err := rows.Scan(&n, &a.At, &a.Totem, &seq, &a.OpID, &a.Kind, &a.Serial, &a.Channel, &a.Operator,
			&a.Protocol, &a.Accepted, &a.Codes, &a.Ref); err != nil {
			return nil, classify("audit", err)
		}
		a.N, a.Seq = uint64(n), uint64(seq)
		out = append(out, a)
	}
	return out, classify("audit", rows.Err())
}

// User is a broker user of the fleet registry (sync/broker.User, which
// this package may not import: cms sits under sync).
type User struct {
	Username    string
	Role        string
	Hash        string
	Created     time.Time
	Expires     time.Time // zero: never
	Next        string
	NextExpires time.Time
	Rotated     time.Time
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// PutUser adds or replaces a broker user.
func (s *Store) PutUser(ctx context.Context, u User) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO fleet_users (username, role, hash, created, expires, next, next_expires, rotated)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (username) DO UPDATE SET role = $2, hash = $3, created = $4, expires = $5, next = $6,
			next_expires = $7, rotated = $8`,
		u.Username, u.Role, u.Hash, u.Created, nullTime(u.Expires), u.Next, nullTime(u.NextExpires), nullTime(u.Rotated))
	return classify("fleet", err)
}

// User returns the broker user username.
func (s *Store) User(ctx context.Context, username string) (User, bool, error) {
	u := User{Username: username}
	var exp, nexp, rot *time.Time
	err := s.pool.QueryRow(ctx, `SELECT role, hash, created, expires, next, next_expires, rotated FROM fleet_users
		WHERE username = $1`, username).Scan(&u.Role, &u.Hash, &u.Created, &exp, &u.Next, &nexp, &rot)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, false, nil
	}
	if err != nil {
		return User{}, false, classify("fleet", err)
	}
	u.Created = u.Created.UTC()
	u.Expires, u.NextExpires, u.Rotated = fromNull(exp), fromNull(nexp), fromNull(rot)
	return u, true, nil
}

// DeleteUser removes the broker user username.
func (s *Store) DeleteUser(ctx context.Context, username string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM fleet_users WHERE username = $1`, username)
	return classify("fleet", err)
}

// AdmitNonce records the console command (key, id), valid until expires,
// and reports whether it was new: of several hub processes handed the
// same command, exactly one admits it. Expired ids are purged as it goes.
func (s *Store) AdmitNonce(ctx context.Context, key, id string, expires time.Time) (bool, error) {
	var fresh bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`DELETE FROM command_nonces WHERE expires < now() - interval '1 hour'`)
		b.Queue(`INSERT INTO command_nonces (key, id, expires) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, key, id, expires).
			Exec(func(ct pgconn.CommandTag) error { fresh = ct.RowsAffected() == 1; return nil })
		return tx.SendBatch(ctx, b).Close()
	})
	return fresh, classify("nonces", err)
}
