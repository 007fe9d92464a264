package pgstore

import (
	"context"
	"errors"
	"hash/fnv"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// Partitioned ingest ([store] partition): hub processes on an external
// broker split the totems in Buckets buckets (Bucket: FNV-1a of the
// totem id), and each bucket has one owner at a time, which alone applies
// its totems' operations: consecutive operations of a totem no longer go
// to different hubs whose batches wait on each other's ledger rows (the
// ThingsBoard pattern of ../shared/docs/fleet.md).
//
// A bucket's lease is a PostgreSQL session advisory lock (bucketClass,
// bucket) held on one connection the hub keeps for its life: when the
// hub dies its session ends and its buckets are free. Each hub also
// holds a member lock (memberClass, its backend pid) on that connection:
// the live hubs are counted from pg_locks, and each takes free buckets up
// to ceil(Buckets/live) and gives back what it holds beyond that, the
// highest numbers first (Rebalance, every second or so). The ledger stays
// exactly-once whoever applies: a bucket changing hands, or owned by no
// one for a moment, costs holds and resends, never a loss or a double.

// Buckets is the number of buckets the totems are split in.
const Buckets = 64

// The advisory lock classes (the first key of the two-key form).
const (
	memberClass = 0x546f7401 // a live hub: (memberClass, pg_backend_pid())
	bucketClass = 0x546f7402 // a bucket's owner: (bucketClass, bucket)
)

// Bucket is the bucket of a totem.
func Bucket(totem string) int {
	h := fnv.New32a()
	h.Write([]byte(totem))
	return int(h.Sum32() % Buckets)
}

// Leases are one hub process's buckets. Owns is safe for concurrent use
// and cheap (one atomic load); Rebalance and Close are called by one
// goroutine at a time.
type Leases struct {
	s    *Store
	mu   sync.Mutex // conn
	conn *pgx.Conn  // the session holding the locks; nil after a failure or Close
	held atomic.Uint64
	// grace are the buckets released by the last two Rebalances: Owns
	// still says yes for them until the next owner has surely taken
	// them (it tries as often), so that no operation falls between the
	// two and waits for its totem's resend.
	grace    atomic.Uint64
	released uint64 // by the last Rebalance
}

// Leases returns the hub's leases, holding none until Rebalance. Closing
// the store closes them.
func (s *Store) Leases() *Leases {
	l := &Leases{s: s}
	s.leasesMu.Lock()
	s.leases = append(s.leases, l)
	s.leasesMu.Unlock()
	return l
}

// Owns reports whether this hub holds the bucket of totem, or released
// it at one of the last two Rebalances (see grace).
func (l *Leases) Owns(totem string) bool {
	return (l.held.Load()|l.grace.Load())&(1<<Bucket(totem)) != 0
}

// Held returns the buckets this hub holds, in increasing order.
func (l *Leases) Held() []int {
	var out []int
	for m := l.held.Load(); m != 0; m &= m - 1 {
		out = append(out, bits.TrailingZeros64(m))
	}
	return out
}

// Live counts the hubs holding a member lock on the database.
func (l *Leases) Live(ctx context.Context) (int, error) {
	var n int
	err := l.s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid = $1::int8::oid
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, memberClass).Scan(&n)
	return n, classify("live hubs", err)
}

// errClosed is Rebalance's after Close.
var errClosed = errors.New("pgstore: leases closed")

// Rebalance takes free buckets up to this hub's share of the live hubs
// and releases those beyond it, the highest first. On an error (the
// session lost) the hub holds nothing: it says so at once (Owns), and
// the next Rebalance opens a new session.
func (l *Leases) Rebalance(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s.isClosed() {
		return errClosed
	}
	if err := l.rebalance(ctx); err != nil {
		l.drop()
		return classify("leases", err)
	}
	return nil
}

func (l *Leases) rebalance(ctx context.Context) error {
	if l.conn == nil {
		pc, err := l.s.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		l.conn = pc.Hijack() // out of the pool: its locks are the session's
		if _, err := l.conn.Exec(ctx, `SELECT pg_advisory_lock($1, pg_backend_pid())`, int32(memberClass)); err != nil {
			return err
		}
	}
	live, err := l.Live(ctx)
	if err != nil {
		return err
	}
	share := (Buckets + max(live, 1) - 1) / max(live, 1)
	held := l.held.Load()
	var released uint64
	defer func() {
		l.grace.Store((l.released | released) &^ held)
		l.released = released
	}()
	for b := Buckets - 1; b >= 0 && bits.OnesCount64(held) > share; b-- {
		if held&(1<<b) == 0 {
			continue
		}
		held &^= 1 << b // not ours any more before the lock is
		released |= 1 << b
		l.held.Store(held)
		if _, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1, $2)`, int32(bucketClass), int32(b)); err != nil {
			return err
		}
	}
	for b := 0; b < Buckets && bits.OnesCount64(held) < share; b++ {
		if held&(1<<b) != 0 {
			continue
		}
		var ok bool
		if err := l.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, int32(bucketClass), int32(b)).Scan(&ok); err != nil {
			return err
		}
		if ok {
			held |= 1 << b
			l.held.Store(held)
		}
	}
	return nil
}

// drop forgets the session and what it held (l.mu held).
func (l *Leases) drop() {
	l.held.Store(0)
	l.grace.Store(0)
	l.released = 0
	if l.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), closeWait)
		// The server frees a session's locks when its backend exits,
		// some time after the client has gone: released here, the
		// buckets are free when Close returns (a hub stopping hands them
		// over at once). On a broken session this fails, harmlessly.
		_, _ = l.conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`)
		l.conn.Close(ctx) // ends the session: its locks are free
		cancel()
		l.conn = nil
	}
}

// Close releases every bucket and the member lock (the session ends).
func (l *Leases) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drop()
}

// Totems lists every totem the database knows, unsorted: the users of
// role totem of the fleet registry (a totem's broker usernames, both of
// them: the caller maps them to the totem), the totems of the presence
// registry and those of the ledger. A partitioned hub subscribes to the
// operations of those of its buckets (sync/hub: partition.go); one read
// of the three primary keys' indexes, every second per hub.
func (l *Leases) Totems(ctx context.Context) ([]string, error) {
	rows, err := l.s.pool.Query(ctx, `SELECT username FROM fleet_users WHERE role = 'totem'
		UNION SELECT totem FROM fleet_totems UNION SELECT totem FROM ledger`)
	if err != nil {
		return nil, classify("known totems", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return out, classify("known totems", err)
}
