// Package pgstore keeps the hub's state in PostgreSQL, so that several
// totemhub processes on several machines share one dedup ledger,
// sequence, send log, audit, fleet registry and set of command nonces,
// and still apply every operation exactly once, in order per totem
// (docs/protocol.md "Delivery guarantees"; the pattern of
// ../shared/docs/fleet.md).
//
// # The exactly-once transaction
//
// ApplyBatch applies a batch in one transaction. The ledger rows of the
// batch's totems are locked first, in sorted order (SELECT … ORDER BY
// totem FOR UPDATE): two batches touching the same totems in different
// orders wait for each other instead of deadlocking, and two hub
// processes handed consecutive operations of one totem apply them one
// after the other. Then, per operation in the batch's order, with the
// semantics of refcms: an id this totem already applied at that sequence
// number is a duplicate answered with the stored outcome; a gap is
// answered OutOfOrder with Expect = last_seq+1 and writes nothing; a
// sequence number already taken is refused SEQ_REUSED; the next number
// under an id the totem already used is refused and consumed. Otherwise
// the operation gets a protocol number, its Effect (the CMS rules) runs
// in the same transaction, and its record (ops: primary key (totem,
// op_id), unique (totem, seq)), its audit record and the ledger are
// written with it. COMMIT; only then may the hub publish the results: a
// crash in between costs a duplicate answer, never a second application.
//
// # Protocol numbers: a gapless counter row, not a SEQUENCE
//
// refcms makes them YYMMDD followed by nine digits of a counter that
// bbolt's NextSequence keeps inside the applying transaction, so a
// rolled-back batch gives its numbers back and the register has no hole.
// A PostgreSQL SEQUENCE is not transactional: every rolled-back batch (a
// hub killed mid-batch, the database restarting, a statement timeout)
// would leave holes in a legal register. So the counter is a row
// (counters 'protocol') read FOR UPDATE and written in the same
// transaction. The price is that batches that assign numbers serialise
// on that row for the rest of their transaction; a batch holds it for a
// few milliseconds (see BenchmarkApplyBatch), and the lock is taken after
// the ledger rows, always in that order, so it adds no deadlock. The
// audit and send log numbers (n), which only order and page the send
// log, come from a SEQUENCE: gaps there are harmless.
//
// # Errors
//
// A lost connection, a database down or restarting, a statement timeout,
// a serialisation failure: errors.Is(err, ErrUnavailable); the hub
// answers transport "refused" (sync/hub does so for any error of the
// backend) and the totem sends again.
// At start (Open, Migrate) a wrong URL, a wrong password, an unreachable
// server, a schema this code does not know are errors that say which,
// without the password.
//
// # The CMS's records: cmsstore.Store
//
// CMS returns the store as cms/cmsstore's Store, the interface refcms's
// rules run against (refcms.New(store.CMS(), opts)): the rules are
// written once, in refcms; bbolt (refcms.Open) and this package
// implement what is below them. The records are one table each
// (migration 00002: cards, consents, history, notifications, payments,
// reissue, cipfail, fse, tickets, refunds, meta), a record kept as its
// JSON beside the columns it is found by. Reads are queries (the writes
// queued before them go first); writes are queued (Queue) and sent with
// the next read or the commit, so a rule that only writes costs no round
// trip of its own.
//
// Isolation: READ COMMITTED, and every transaction that numbers an
// operation takes the counter rows FOR UPDATE before it runs the rules
// (as does Update): the rules of two hub processes never interleave, so
// a rule's read then write of a record (a card's reader counter) loses
// no update, and each read sees the commits before it. Queries (the
// Storico, cms.KindHistory) are numbered in a series of their own,
// 'queries' ("C" and the same digits), helpdesk tickets by 'tickets':
// gapless counters too.
//
// The retentions (cmsstore.Retention: the send log's own entries, the
// citizen's data) are one bounded statement per batch (retention.go).
//
// totemhub with [store] url runs its CMS (ledger, send log, audit,
// records) here; `totemhub migrate` applies the migrations.
package pgstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Options configures a Store.
type Options struct {
	// PoolSize is the most connections the store opens (default 8).
	PoolSize int
	// StatementTimeout ends a statement that runs longer (0: the
	// server's setting). A batch cut short is rolled back and
	// ErrUnavailable: the totems send again.
	StatementTimeout time.Duration
}

// Store is the hub's state in one PostgreSQL database.
type Store struct {
	pool  *pgxpool.Pool
	known sync.Map // totem → struct{}: its ledger row exists (rows are never deleted)

	leasesMu sync.Mutex
	leases   []*Leases // leases.go: closed with the store
	closed   bool
}

// ErrUnavailable is the class of errors after which the same call may
// succeed later: the connection lost, the database down or restarting, a
// statement timeout, a serialisation failure. The hub answers transport
// "refused" and the totem sends again. The transaction was rolled back,
// except when the connection died during COMMIT itself: then it may have
// been applied, and the resend is answered as a duplicate with the stored
// outcome. Either way nothing is applied twice.
var ErrUnavailable = errors.New("pgstore: database unavailable")

// ErrSchema says the database's schema is not the one this code knows.
var ErrSchema = errors.New("pgstore: schema version")

// unavailable wraps err so that errors.Is(err, ErrUnavailable).
type unavailable struct{ err error }

func (u *unavailable) Error() string        { return "pgstore: database unavailable: " + u.err.Error() }
func (u *unavailable) Unwrap() []error      { return []error{ErrUnavailable, u.err} }
func (u *unavailable) Temporary() bool      { return true }
func (u *unavailable) Is(target error) bool { return target == ErrUnavailable }

// classify returns err wrapped as ErrUnavailable when it is transient.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if transient(err) {
		return fmt.Errorf("pgstore: %s: %w", op, &unavailable{err})
	}
	return fmt.Errorf("pgstore: %s: %w", op, err)
}

// transient reports whether err says the database could not answer now
// (as opposed to refusing what was asked).
func transient(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"),       // insufficient resources (too many connections, disk full)
			strings.HasPrefix(pe.Code, "57"),       // operator intervention: shutdown, query canceled (statement timeout)
			strings.HasPrefix(pe.Code, "58"),       // system error (I/O)
			pe.Code == "40001", pe.Code == "40P01", // serialization failure, deadlock: retry
			pe.Code == "55P03", pe.Code == "25P03": // lock not available, idle in transaction timeout
			return true
		}
		return false
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), pgconn.SafeToRetry(err), pgconn.Timeout(err),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ENOENT),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed), errors.Is(err, context.DeadlineExceeded):
		return true
	}
	// pgx reports a connection that died mid-statement as "conn closed",
	// "unexpected EOF" or a failed write, without a type of its own.
	msg := err.Error()
	for _, s := range []string{"conn closed", "unexpected EOF", "EOF", "conn busy", "broken pipe", "connection reset"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// Open connects to the database at rawURL (postgres://…) and checks that
// its schema is the one this code knows: a database not migrated, behind
// or newer is an error (ErrSchema) that says what to do.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	cfg, err := poolConfig(rawURL, opts)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, startError(rawURL, err)
	}
	s := &Store{pool: pool}
	if err := s.checkSchema(ctx, rawURL); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the pool; a second Close does nothing.
func (s *Store) Close() {
	s.leasesMu.Lock()
	if s.closed { // the CMS and the fleet registry share the store
		s.leasesMu.Unlock()
		return
	}
	s.closed = true
	ls := s.leases
	s.leasesMu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	s.pool.Close()
}

func (s *Store) isClosed() bool {
	s.leasesMu.Lock()
	defer s.leasesMu.Unlock()
	return s.closed
}

// closeWait bounds the goodbye to a session being closed.
const closeWait = 2 * time.Second

// Pool is the store's connection pool, for the rules' own tables.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping reports whether the database answers (for /readyz).
func (s *Store) Ping(ctx context.Context) error { return classify("ping", s.pool.Ping(ctx)) }

func poolConfig(rawURL string, opts Options) (*pgxpool.Config, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("pgstore: [store] url %q is not a postgres:// URL", redact(rawURL))
	}
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("pgstore: [store] url %s: %s", redact(rawURL), firstLine(stripURL(err.Error(), rawURL)))
	}
	cfg.MaxConns = 8
	if opts.PoolSize > 0 {
		cfg.MaxConns = int32(opts.PoolSize)
	}
	if opts.StatementTimeout > 0 {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = fmt.Sprint(opts.StatementTimeout.Milliseconds())
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "totemhub"
	return cfg, nil
}

// startError explains a failure to reach or log in to the database.
func startError(rawURL string, err error) error {
	where := redact(rawURL)
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "28P01", "28000":
			return fmt.Errorf("pgstore: %s: authentication failed (wrong user or password): %s", where, pe.Message)
		case "3D000":
			return fmt.Errorf("pgstore: %s: %s", where, pe.Message)
		}
		return fmt.Errorf("pgstore: %s: %s (SQLSTATE %s)", where, pe.Message, pe.Code)
	}
	msg := firstLine(stripURL(err.Error(), rawURL))
	if transient(err) {
		return fmt.Errorf("pgstore: cannot reach the database server at %s: %s: %w", where, msg, ErrUnavailable)
	}
	return fmt.Errorf("pgstore: %s: %s", where, msg)
}

// redact is rawURL without its password.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// stripURL removes any copy of the URL (and its password) from msg.
func stripURL(msg, rawURL string) string {
	msg = strings.ReplaceAll(msg, rawURL, redact(rawURL))
	if u, err := url.Parse(rawURL); err == nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return msg
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// Schema versions.
const gooseTable = "goose_db_version"

// Version is the schema version this code knows: its newest migration.
func Version() int64 {
	var v int64
	for _, src := range sources() {
		v = max(v, src)
	}
	return v
}

func sources() []int64 {
	fsys := migrationsFS()
	ents, _ := fs.ReadDir(fsys, ".")
	var out []int64
	for _, e := range ents {
		var n int64
		if _, err := fmt.Sscanf(e.Name(), "%d_", &n); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func migrationsFS() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err)
	}
	return sub
}

// dbVersion returns the database's schema version, -1 when it has none.
func dbVersion(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int64, error) {
	return schemaVersion(func(query string, args ...any) rowScanner { return q.QueryRow(ctx, query, args...) })
}

// rowScanner is the row pgx and database/sql both answer a query with.
type rowScanner interface{ Scan(dest ...any) error }

// schemaVersion is the version goose recorded, asked through queryRow
// (pgx or database/sql), -1 when there is no goose table.
func schemaVersion(queryRow func(query string, args ...any) rowScanner) (int64, error) {
	var exists bool
	if err := queryRow("SELECT to_regclass($1) IS NOT NULL", gooseTable).Scan(&exists); err != nil {
		return 0, err
	}
	if !exists {
		return -1, nil
	}
	var v int64
	err := queryRow("SELECT coalesce(max(version_id), 0) FROM " + gooseTable + " WHERE is_applied").Scan(&v)
	return v, err
}

func (s *Store) checkSchema(ctx context.Context, rawURL string) error {
	v, err := dbVersion(ctx, s.pool)
	if err != nil {
		return startError(rawURL, err)
	}
	return versionError(redact(rawURL), v)
}

func versionError(where string, v int64) error {
	switch want := Version(); {
	case v <= 0:
		return fmt.Errorf("%w: %s has no totemhub schema: run `totemhub migrate` first", ErrSchema, where)
	case v > want:
		return fmt.Errorf("%w: %s is at version %d, newer than this totemhub knows (%d): upgrade totemhub", ErrSchema, where, v, want)
	case v < want:
		return fmt.Errorf("%w: %s is at version %d, this totemhub needs %d: run `totemhub migrate`", ErrSchema, where, v, want)
	}
	return nil
}

// Migrate brings the database at rawURL to Version, under an advisory
// lock (two hubs migrating at once take turns), and returns the version
// it was at. A database newer than this code is refused, untouched.
func Migrate(ctx context.Context, rawURL string) (from int64, err error) {
	cfg, err := poolConfig(rawURL, Options{PoolSize: 2})
	if err != nil {
		return 0, err
	}
	db := stdlib.OpenDB(*cfg.ConnConfig)
	defer db.Close()
	c, err := db.Conn(ctx)
	if err != nil {
		return 0, startError(rawURL, err)
	}
	from, err = sqlVersion(ctx, c)
	c.Close()
	if err != nil {
		return 0, startError(rawURL, err)
	}
	if from > Version() {
		return from, versionError(redact(rawURL), from)
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return from, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrationsFS(), goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return from, fmt.Errorf("pgstore: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return from, fmt.Errorf("pgstore: migrate %s: %s", redact(rawURL), stripURL(err.Error(), rawURL))
	}
	return from, nil
}

func sqlVersion(ctx context.Context, c *sql.Conn) (int64, error) {
	return schemaVersion(func(query string, args ...any) rowScanner { return c.QueryRowContext(ctx, query, args...) })
}
