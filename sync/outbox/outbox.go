// Package outbox is the totem's durable queue of operations: every
// operation a citizen makes is committed (fsynced) to a local bbolt file
// before it is acknowledged, then sent to the hub by the uplink until a
// final result comes back.
//
// Order comes from a per-totem sequence number kept in the store, never
// from the wall clock. Entries live in the "pending" bucket until a final
// result arrives, then move to the "done" bucket in the same transaction.
//
// Layout of the file:
//
//	pending  8-byte big-endian seq → entry (JSON object)
//	done     8-byte big-endian seq → entry (JSON object)
//	index    16-byte raw id        → 8-byte big-endian seq
//	seq      its NextSequence gives sequence numbers; key "depth" counts pending
//	meta     firmware key → value
//
// Stored entries are JSON objects, so their first byte is '{': a later
// compact encoding can be told apart by its first byte.
package outbox

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aslcns/totem/sync/protocol"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrNotFound is returned for an id the outbox does not hold.
var ErrNotFound = errors.New("outbox: not found")

// ErrMismatch is returned by Record when a result's sequence number is not
// the one of the entry its id names.
var ErrMismatch = errors.New("outbox: result does not match entry")

// Bucket names and internal keys.
var (
	bucketPending = []byte("pending")
	bucketDone    = []byte("done")
	bucketIndex   = []byte("index")
	bucketSeq     = []byte("seq")
	bucketMeta    = []byte("meta")

	keyDepth = []byte("depth") // in bucketSeq: number of pending entries
)

var allBuckets = [][]byte{bucketPending, bucketDone, bucketIndex, bucketSeq, bucketMeta}

// DefaultTimeout is how long Open waits for the file lock by default.
const DefaultTimeout = 2 * time.Second

// Entry is one operation in the outbox.
type Entry struct {
	ID       string // 32 lowercase hex digits from crypto/rand
	Seq      uint64 // per-totem sequence from the store; starts at 1, never reused
	Kind     string
	Payload  []byte
	Created  time.Time // wall clock, data only
	Expires  time.Time // zero = never
	Attempts int       // how many times the uplink sent it (MarkSent)
	LastSent time.Time
	Result   *protocol.Result // the last result from the hub, nil until one arrives
	Done     bool             // a final result arrived: the entry left the pending queue
}

// Options configures Open. A nil *Options means the defaults.
type Options struct {
	Timeout time.Duration // bbolt file lock timeout, default 2s
}

// Outbox is a durable queue of operations. It is safe for concurrent use.
type Outbox struct {
	db     *bolt.DB
	notify chan struct{}
}

// Open opens or creates the outbox at path. A new database is created
// atomically: initialised in a temp file in the same directory, fsynced and
// renamed into place, so a power cut during creation never leaves a
// half-written store behind. An existing file that is not a valid outbox is
// reported as an error and left untouched.
func Open(path string, opts *Options) (*Outbox, error) {
	timeout := DefaultTimeout
	if opts != nil && opts.Timeout > 0 {
		timeout = opts.Timeout
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("outbox: open %s: directory: %w", path, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("outbox: open %s: %s is not a directory", path, dir)
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) || err == nil && fi.Mode().IsRegular() && fi.Size() == 0:
		if err := create(path, timeout); err != nil {
			return nil, fmt.Errorf("outbox: create %s: %w", path, err)
		}
	case err != nil:
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("outbox: open %s: not a regular file", path)
	}

	db, err := openBolt(path, timeout)
	if err != nil {
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	if err := ensureLayout(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	removeStaleTemps(path)
	return &Outbox{db: db, notify: make(chan struct{}, 1)}, nil
}

// openBolt opens an existing or new bbolt file. A file that is not a bbolt
// database is an error, never a panic.
func openBolt(path string, timeout time.Duration) (db *bolt.DB, err error) {
	defer func() {
		if p := recover(); p != nil {
			db, err = nil, fmt.Errorf("invalid database: %v", p)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("locked by another process: %w", err)
	}
	if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrVersionMismatch) {
		return nil, fmt.Errorf("not an outbox database: %w", err)
	}
	return db, err
}

// tempPrefix names the temp files create uses for path.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".creating-" }

// create makes a fully initialised outbox at path atomically.
func create(path string, timeout time.Duration) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPrefix(path)+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		return err
	}
	if err := ensureLayout(db); err != nil {
		db.Close()
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	// bbolt fdatasyncs its commits; sync once more for the file's metadata.
	if err := syncPath(tmp); err != nil {
		return err
	}
	// Link refuses to replace an outbox another process created meanwhile;
	// Rename is the fallback where links are unsupported and replaces an
	// empty file.
	if err := os.Link(tmp, path); err == nil {
		os.Remove(tmp)
	} else if !errors.Is(err, fs.ErrExist) {
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	} else if fi, serr := os.Stat(path); serr == nil && fi.Size() == 0 {
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	} else {
		os.Remove(tmp)
	}
	return syncPath(dir)
}

// syncPath fsyncs a file or directory.
func syncPath(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeStaleTemps removes temp files a crash during creation left behind.
// It runs while we hold the lock on the real file.
func removeStaleTemps(path string) {
	dir := filepath.Dir(path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := tempPrefix(path)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// ensureLayout creates missing buckets; it writes only when one is missing.
func ensureLayout(db *bolt.DB) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("invalid database: %v", p)
		}
	}()
	complete := true
	err = db.View(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				complete = false
			}
		}
		if complete && len(tx.Bucket(bucketSeq).Get(keyDepth)) != 8 {
			complete = false
		}
		return nil
	})
	if err != nil || complete {
		return err
	}
	return db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
		}
		if len(tx.Bucket(bucketSeq).Get(keyDepth)) != 8 {
			return putDepth(tx, uint64(tx.Bucket(bucketPending).Stats().KeyN))
		}
		return nil
	})
}

// Close closes the store. Entries already acknowledged stay on disk.
func (o *Outbox) Close() error {
	if err := o.db.Close(); err != nil {
		return fmt.Errorf("outbox: close: %w", err)
	}
	return nil
}

// Notify returns a channel that receives (non-blocking, capacity 1) after
// each successful Enqueue, so the uplink can wake up.
func (o *Outbox) Notify() <-chan struct{} { return o.notify }

// update runs fn in a write transaction and commits it (write + fsync).
// It is the one place writes happen: group commit, quotas and encryption
// hook in here.
func (o *Outbox) update(fn func(tx *bolt.Tx) error) error {
	return o.db.Update(fn)
}

// view runs fn in a read transaction.
func (o *Outbox) view(fn func(tx *bolt.Tx) error) error {
	return o.db.View(fn)
}

// Enqueue makes an operation durable and returns it with its id and
// sequence number. It returns only after the commit (fsync) succeeded:
// acknowledged means on disk.
func (o *Outbox) Enqueue(kind string, payload []byte, created, expires time.Time) (Entry, error) {
	if kind == "" {
		return Entry{}, errors.New("outbox: enqueue: empty kind")
	}
	if len(payload) > protocol.MaxPayload {
		return Entry{}, fmt.Errorf("outbox: enqueue: payload of %d bytes: %w", len(payload), protocol.ErrTooLarge)
	}
	e := Entry{
		Kind:    kind,
		Payload: bytes.Clone(payload),
		Created: created.Round(0),
		Expires: expires.Round(0),
	}
	err := o.update(func(tx *bolt.Tx) error {
		index := tx.Bucket(bucketIndex)
		var raw [16]byte
		for {
			rand.Read(raw[:])
			if index.Get(raw[:]) == nil {
				break
			}
		}
		seq, err := tx.Bucket(bucketSeq).NextSequence()
		if err != nil {
			return err
		}
		e.ID, e.Seq = hex.EncodeToString(raw[:]), seq
		val, err := encode(&e)
		if err != nil {
			return err
		}
		key := seqKey(seq)
		if err := tx.Bucket(bucketPending).Put(key, val); err != nil {
			return err
		}
		if err := index.Put(raw[:], key); err != nil {
			return err
		}
		return addDepth(tx, 1)
	})
	if err != nil {
		return Entry{}, fmt.Errorf("outbox: enqueue: %w", err)
	}
	select {
	case o.notify <- struct{}{}:
	default:
	}
	return e, nil
}

// Pending returns up to max pending (not Done) entries with Seq > after,
// in Seq order.
func (o *Outbox) Pending(after uint64, max int) ([]Entry, error) {
	if max <= 0 {
		return nil, nil
	}
	var out []Entry
	err := o.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketPending).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < max; k, v = c.Next() {
			e, err := decode(k, v, false)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: pending: %w", err)
	}
	return out, nil
}

// MarkSent records one more attempt (Attempts++, LastSent = at).
// Unknown id: ErrNotFound.
func (o *Outbox) MarkSent(id string, at time.Time) error {
	err := o.update(func(tx *bolt.Tx) error {
		e, b, err := lookup(tx, id)
		if err != nil {
			return err
		}
		e.Attempts++
		e.LastSent = at.Round(0)
		return put(b, &e)
	})
	if err != nil {
		return wrapID("mark sent", id, err)
	}
	return nil
}

// errUnchanged rolls back a write transaction that had nothing to write.
var errUnchanged = errors.New("unchanged")

// Record stores a result from the hub on its entry, matched by res.OpID;
// res.Seq must be the entry's Seq (ErrMismatch otherwise). A final result
// moves the entry from pending to done in the same transaction. A result
// for an entry already done keeps the first final result and returns the
// entry unchanged. Unknown id: ErrNotFound. It returns the updated entry.
func (o *Outbox) Record(res *protocol.Result) (Entry, error) {
	if res == nil {
		return Entry{}, errors.New("outbox: record: nil result")
	}
	stored, err := json.Marshal(res) // a private copy
	if err != nil {
		return Entry{}, fmt.Errorf("outbox: record %s: %w", res.OpID, err)
	}
	var e Entry
	err = o.update(func(tx *bolt.Tx) error {
		var b *bolt.Bucket
		var err error
		e, b, err = lookup(tx, res.OpID)
		if err != nil {
			return err
		}
		if res.Seq != e.Seq {
			return fmt.Errorf("%w: result seq %d, entry seq %d", ErrMismatch, res.Seq, e.Seq)
		}
		if e.Done {
			return errUnchanged
		}
		e.Result = new(protocol.Result)
		if err := json.Unmarshal(stored, e.Result); err != nil {
			return err
		}
		if !res.Final() {
			return put(b, &e)
		}
		e.Done = true
		key := seqKey(e.Seq)
		if err := b.Delete(key); err != nil {
			return err
		}
		if err := put(tx.Bucket(bucketDone), &e); err != nil {
			return err
		}
		return addDepth(tx, -1)
	})
	if err != nil && err != errUnchanged {
		return Entry{}, wrapID("record", res.OpID, err)
	}
	return e, nil
}

// Get returns the entry with id, pending or done.
func (o *Outbox) Get(id string) (Entry, error) {
	var e Entry
	err := o.view(func(tx *bolt.Tx) error {
		var err error
		e, _, err = lookup(tx, id)
		return err
	})
	if err != nil {
		return Entry{}, wrapID("get", id, err)
	}
	return e, nil
}

// Stats returns the number of pending entries, the oldest pending
// sequence number and its Created time, and the last assigned sequence
// number. It reads one entry and two counters, whatever the depth.
func (o *Outbox) Stats() (protocol.Queue, error) {
	var q protocol.Queue
	err := o.view(func(tx *bolt.Tx) error {
		seq := tx.Bucket(bucketSeq)
		q.LastSeq = seq.Sequence()
		depth := seq.Get(keyDepth)
		if len(depth) != 8 {
			return errors.New("corrupt depth counter")
		}
		q.Depth = int(binary.BigEndian.Uint64(depth))
		k, v := tx.Bucket(bucketPending).Cursor().First()
		if k == nil {
			return nil
		}
		e, err := decode(k, v, false)
		if err != nil {
			return err
		}
		q.OldestSeq, q.Oldest = e.Seq, e.Created
		return nil
	})
	if err != nil {
		return protocol.Queue{}, fmt.Errorf("outbox: stats: %w", err)
	}
	return q, nil
}

// Meta returns the value stored under key, or nil, nil when absent.
func (o *Outbox) Meta(key string) ([]byte, error) {
	var val []byte
	err := o.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get([]byte(key)); v != nil {
			val = bytes.Clone(v)
			if val == nil {
				val = []byte{}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: meta %q: %w", key, err)
	}
	return val, nil
}

// SetMeta durably stores val under key; a nil val deletes the key.
func (o *Outbox) SetMeta(key string, val []byte) error {
	if key == "" {
		return errors.New("outbox: set meta: empty key")
	}
	err := o.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		if val == nil {
			return b.Delete([]byte(key))
		}
		return b.Put([]byte(key), val)
	})
	if err != nil {
		return fmt.Errorf("outbox: set meta %q: %w", key, err)
	}
	return nil
}

// record is the stored form of an Entry; Seq is the key, Done the bucket.
type record struct {
	ID       string           `json:"id"`
	Kind     string           `json:"kind"`
	Payload  []byte           `json:"payload,omitempty"`
	Created  time.Time        `json:"created"`
	Expires  time.Time        `json:"expires,omitzero"`
	Attempts int              `json:"attempts,omitempty"`
	LastSent time.Time        `json:"last_sent,omitzero"`
	Result   *protocol.Result `json:"result,omitempty"`
}

func encode(e *Entry) ([]byte, error) {
	return json.Marshal(record{
		ID: e.ID, Kind: e.Kind, Payload: e.Payload, Created: e.Created, Expires: e.Expires,
		Attempts: e.Attempts, LastSent: e.LastSent, Result: e.Result,
	})
}

func decode(key, val []byte, done bool) (Entry, error) {
	if len(key) != 8 || len(val) == 0 || val[0] != '{' {
		return Entry{}, fmt.Errorf("corrupt entry %x", key)
	}
	var r record
	if err := json.Unmarshal(val, &r); err != nil {
		return Entry{}, fmt.Errorf("entry %d: %w", binary.BigEndian.Uint64(key), err)
	}
	return Entry{
		ID: r.ID, Seq: binary.BigEndian.Uint64(key), Kind: r.Kind, Payload: r.Payload,
		Created: r.Created, Expires: r.Expires, Attempts: r.Attempts, LastSent: r.LastSent,
		Result: r.Result, Done: done,
	}, nil
}

func put(b *bolt.Bucket, e *Entry) error {
	val, err := encode(e)
	if err != nil {
		return err
	}
	return b.Put(seqKey(e.Seq), val)
}

// lookup finds the entry with id and the bucket holding it.
func lookup(tx *bolt.Tx, id string) (Entry, *bolt.Bucket, error) {
	raw, err := hex.DecodeString(id)
	if err != nil || len(raw) != 16 || strings.ToLower(id) != id {
		return Entry{}, nil, ErrNotFound
	}
	key := tx.Bucket(bucketIndex).Get(raw)
	if key == nil {
		return Entry{}, nil, ErrNotFound
	}
	for _, name := range [][]byte{bucketPending, bucketDone} {
		b := tx.Bucket(name)
		if v := b.Get(key); v != nil {
			e, err := decode(key, v, bytes.Equal(name, bucketDone))
			return e, b, err
		}
	}
	return Entry{}, nil, fmt.Errorf("index names missing entry %x", key)
}

func wrapID(op, id string, err error) error {
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("outbox: %s %q: %w", op, id, ErrNotFound)
	}
	return fmt.Errorf("outbox: %s %s: %w", op, id, err)
}

func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}

func putDepth(tx *bolt.Tx, n uint64) error {
	return tx.Bucket(bucketSeq).Put(keyDepth, seqKey(n))
}

func addDepth(tx *bolt.Tx, delta int64) error {
	v := tx.Bucket(bucketSeq).Get(keyDepth)
	if len(v) != 8 {
		return errors.New("corrupt depth counter")
	}
	return putDepth(tx, uint64(int64(binary.BigEndian.Uint64(v))+delta))
}
