// Package outbox is the totem's durable queue of operations: every
// operation a citizen makes is committed (fsynced) to a local bbolt file
// before it is acknowledged, then sent to the hub by the uplink until a
// final result comes back.
//
// Order comes from a per-totem sequence number kept in the store, never
// from the wall clock. Entries live in the "pending" bucket until a final
// result arrives, then move to the "done" bucket in the same transaction.
// Entries that expired, were sent too many times without a final result
// or cannot be read move to the "quarantine" bucket, where a technician
// sees them and can put them back (Requeue).
//
// The hub applies a totem's operations strictly in sequence, so a sequence
// number must never just disappear. An entry that can never be sent — its
// record does not decode, its payload cannot be opened, its envelope would
// be refused by the hub — and a telemetry entry shed under quota pressure
// leave a void in their place: a tiny pending record the uplink sends as
// an operation of kind protocol.KindVoid, which the hub records as such
// and which moves the totem's sequence on. A void that got its final
// result is deleted; the quarantined original stays for the technician.
//
// All writes go through one committer goroutine that applies every queued
// request in one bbolt transaction (one fsync): producers share commits,
// and each returns only once its own commit is durable. The one exception
// is the uplink's attempt marks (MarkSentAll), bookkeeping that rides with
// the next commit of any kind instead of one of its own (marks.go): an
// operation and its result are durable when acknowledged, exactly as
// before; a power cut may lose a few rounds' attempt counts, never the
// first round after Open, so a crash loop still ends in poison quarantine.
//
// Layout of the file:
//
//	pending     8-byte big-endian seq → entry (record.go), or a void:
//	            'v', the 16-byte raw id, the reason (ASCII)
//	done        8-byte big-endian seq → entry
//	quarantine  8-byte big-endian seq → entry with a reason
//	telemetry   8-byte big-endian seq → stored size: pending entries that may be shed
//	sent        8-byte big-endian seq → 4-byte attempts, 8-byte unix nanoseconds of the
//	            last: sends recorded apart from a pending entry's record, so that
//	            recording a send never rewrites the record; added to the record's own
//	            Attempts when read, folded into the record whenever it is rewritten
//	index       16-byte raw id        → 8-byte big-endian seq (ids of older versions only)
//	seq         its NextSequence gives sequence numbers; keys "depth",
//	            "quarantined", "shed", "voids" are counters ("depth"
//	            counts the pending entries that are not voids), "salt"
//	            8 bytes, "idkey" the 16-byte AES key of the ids, "idfrom" the
//	            first seq whose id is keyed (8 bytes big-endian)
//	meta        firmware key → value
//
// An id is the AES-128 encryption, under the database's random "idkey",
// of the 8-byte salt followed by the big-endian seq, in hex: 128 bits no
// one without the key can tell from random or predict (a totem that
// could would send another's next ids), unique because AES is a
// permutation, and derived from the seq, so neither the record nor an
// index stores it and a lookup decrypts it. Ids assigned before the key
// existed (seq below "idfrom") are the salt and seq in clear; ids of
// still older versions are random and found through "index".
//
// Entries are stored in a compact binary record with a checksum; the JSON
// objects older versions wrote are still read (record.go).
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
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aslcns/totem/sync/protocol"
	fastjson "github.com/segmentio/encoding/json"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrNotFound is returned for an id the outbox does not hold.
var ErrNotFound = errors.New("outbox: not found")

// ErrMismatch is returned by Record when a result's sequence number is not
// the one of the entry its id names.
var ErrMismatch = errors.New("outbox: result does not match entry")

// ErrFull is returned (wrapped) by Enqueue when the operation does not fit
// in the quotas even after shedding telemetry: the service is unavailable.
var ErrFull = errors.New("outbox: full")

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("outbox: closed")

// ErrUnreadable is returned (wrapped) when an entry's sealed payload cannot
// be opened: its key is missing from the keyring or it was tampered with.
var ErrUnreadable = errors.New("outbox: payload cannot be opened")

// Bucket names and internal keys.
var (
	bucketPending    = []byte("pending")
	bucketDone       = []byte("done")
	bucketQuarantine = []byte("quarantine")
	bucketTelemetry  = []byte("telemetry")
	bucketSent       = []byte("sent")
	bucketIndex      = []byte("index")
	bucketSeq        = []byte("seq")
	bucketMeta       = []byte("meta")
	// bucketSettled keeps a summary of each entry Purge removed: the send
	// log still shows it, without its payload (retention.go).
	bucketSettled = []byte("settled")

	keyDepth       = []byte("depth")       // in bucketSeq: number of pending entries
	keyQuarantined = []byte("quarantined") // in bucketSeq: number of quarantined entries
	keyShed        = []byte("shed")        // in bucketSeq: telemetry entries shed, ever
	keySalt        = []byte("salt")        // in bucketSeq: 8 random bytes, the id prefix
	keyVoids       = []byte("voids")       // in bucketSeq: number of voids in pending
	keyIDKey       = []byte("idkey")       // in bucketSeq: 16 random bytes, the AES key of the ids
	keyIDFrom      = []byte("idfrom")      // in bucketSeq: first seq with a keyed id (8 bytes BE)
	keySettled     = []byte("settled")     // in bucketSeq: number of summaries in bucketSettled
)

var allBuckets = [][]byte{bucketPending, bucketDone, bucketQuarantine, bucketTelemetry, bucketIndex, bucketSeq, bucketMeta, bucketSent, bucketSettled}

// DefaultTimeout is how long Open waits for the file lock by default.
const DefaultTimeout = 2 * time.Second

// Defaults of Options.
//
// The hub applies a totem's operations strictly in sequence, so an entry
// taken out of the queue leaves a hole nothing after it can pass: the
// outbox never quarantines on its own what the hub can still answer. Poison
// detection is off unless asked for, and an expired entry is still sent
// (the hub answers OP_EXPIRED, which ends it with both outcomes); only
// Sweep, called by a technician's command, moves expired entries aside.
const (
	DefaultMaxAttempts = -1
	DefaultAlarmAt     = 0.8
)

// Quarantine reasons.
const (
	ReasonExpired    = "expired"    // Expires passed before a final result
	ReasonPoison     = "poison"     // sent MaxAttempts times without a final result
	ReasonUnreadable = "unreadable" // sealed payload cannot be opened with the keyring
	ReasonCorrupt    = "corrupt"    // stored record cannot be decoded; kept raw
	ReasonInvalid    = "invalid"    // envelope the hub would refuse (kind, id, payload)
	ReasonShed       = "shed"       // a void's reason: telemetry shed under quota pressure
)

// voids reports whether a quarantine reason leaves a void in the queue:
// the entry can never be sent as it is.
func voids(reason string) bool {
	return reason == ReasonCorrupt || reason == ReasonUnreadable || reason == ReasonInvalid
}

// Entry is one operation in the outbox.
type Entry struct {
	ID       string // 32 lowercase hex digits, unpredictable: the seq encrypted under a per-database key
	Seq      uint64 // per-totem sequence from the store; starts at 1, never reused
	Kind     string
	Payload  []byte
	Created  time.Time // wall clock, data only
	Expires  time.Time // zero = never
	Attempts int       // how many times the uplink sent it (MarkSent)
	LastSent time.Time
	Result   *protocol.Result // the last result from the hub, nil until one arrives
	Done     bool             // a final result arrived: the entry left the pending queue
	// Completed is when the final result was recorded (wall clock); zero
	// while pending.
	Completed time.Time
	// Quarantine is why the entry was quarantined (Reason…), "" otherwise.
	Quarantine string
	// Stamp is the totem's clocks at enqueue (Options.Stamp), nil without.
	Stamp *protocol.Stamp
	// Purged: the entry is the summary Purge kept of a settled
	// operation: no payload, no result data, error codes without their
	// messages. Get no longer finds it; Recent lists it.
	Purged bool
}

// Class is a priority class of operation kinds under quota pressure.
type Class int

// Priority classes. Citizen and audit entries are never dropped; when the
// outbox is full, pending telemetry is shed, oldest first.
const (
	ClassCitizen   Class = iota // the default for kinds not in Options.Classes
	ClassAudit                  // never dropped either
	ClassTelemetry              // shed first
)

// Options configures Open. A nil *Options means the defaults.
type Options struct {
	Timeout time.Duration // bbolt file lock timeout, default 2s

	// MaxSize bounds the database file in bytes (bbolt's Options.MaxSize);
	// 0 means no bound. Enqueue keeps room below it so that results can
	// still be recorded when the queue is full.
	MaxSize int
	// MaxPending bounds the number of pending entries; 0 means no bound.
	MaxPending int
	// AlarmAt is the fraction of a quota at which OnAlarm fires; default 0.8.
	AlarmAt float64
	// OnAlarm is called, from a goroutine the Outbox owns, when usage
	// crosses AlarmAt and again when it falls back below. It may call any
	// method of the Outbox.
	OnAlarm func(Usage)
	// Classes maps kinds to priority classes; unknown kinds are ClassCitizen.
	Classes map[string]Class
	// MaxAttempts is how many sends without a final result quarantine an
	// entry as poison; 0 means DefaultMaxAttempts, negative never.
	MaxAttempts int
	// Keys, when set, seals every new payload with AES-GCM.
	Keys *Keyring
	// Now is the wall clock used for expiry and completion times;
	// default time.Now.
	Now func() time.Time
	// Stamp, when set, stamps every entry at enqueue with the totem's
	// clocks (boot id, monotonic offset, wall time, synchronised flag);
	// the stamp travels with the operation. Order stays by Seq.
	Stamp func() protocol.Stamp
}

// Usage is how full the outbox is.
type Usage struct {
	Pending     int    // entries waiting for a final result, voids excluded
	Voids       int    // voids waiting for their final result
	Quarantined int    // entries in quarantine
	Shed        uint64 // telemetry entries shed under quota pressure, ever
	Bytes       int64  // bytes of the file in use (not free pages)
	MaxSize     int    // Options.MaxSize
	MaxPending  int    // Options.MaxPending
	// Fraction is the fuller of Pending/MaxPending and Bytes against the
	// part of MaxSize Enqueue may use (the rest is the reserve for results
	// and bbolt's growth steps): at 1, citizen operations are refused.
	Fraction float64
	Alarm    bool // Fraction reached AlarmAt (cleared a little below it)
}

// Outbox is a durable queue of operations. It is safe for concurrent use.
type Outbox struct {
	db       *bolt.DB
	pageSize int // read once: bbolt's DB.Info races with a remap
	notify   chan struct{}
	codec    // ids, sealing and the stored form of records (record.go)

	classes     map[string]Class
	maxPending  int
	maxSize     int
	softSize    int64 // Enqueue keeps estimated use below this; 0 = no bound
	maxAttempts int
	now         func() time.Time
	stamp       func() protocol.Stamp
	pause       func(time.Duration) // time.Sleep; tests count the pauses

	reqs    chan *request
	closeMu sync.RWMutex
	closed  bool
	stopped chan struct{} // closed when the committer returned

	used    atomic.Int64 // bytes in use after the last commit
	commits atomic.Int64 // transactions committed by the committer
	waits   atomic.Int64 // pauses for readers when the file reached MaxSize
	retries atomic.Int64 // writes tried again when the file reached MaxSize
	alarm   *alarm       // the quota alarm and its delivery (alarm.go)
}

// Open opens or creates the outbox at path. A new database is created
// atomically: initialised in a temp file in the same directory, fsynced and
// renamed into place, so a power cut during creation never leaves a
// half-written store behind. An existing file that is not a valid outbox is
// reported as an error and left untouched.
func Open(path string, opts *Options) (*Outbox, error) {
	if opts == nil {
		opts = &Options{}
	}
	timeout := DefaultTimeout
	if opts.Timeout > 0 {
		timeout = opts.Timeout
	}
	if err := prepare(path, opts, timeout); err != nil {
		return nil, err
	}
	db, err := openBolt(path, timeout, opts.MaxSize)
	if err != nil {
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	if err := ensureLayout(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	removeStaleTemps(path)
	o, u, err := newOutbox(db, opts)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	o.used.Store(u.Bytes)
	go o.committer()
	go o.alarm.run()
	o.alarm.check(u)
	return o, nil
}

// prepare checks the options and the place of the database at path, and
// creates it when it is missing (or empty).
func prepare(path string, opts *Options, timeout time.Duration) error {
	if opts.MaxSize < 0 || opts.MaxPending < 0 || opts.AlarmAt < 0 || opts.AlarmAt > 1 {
		return fmt.Errorf("outbox: open %s: invalid quota options", path)
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("outbox: open %s: directory: %w", path, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("outbox: open %s: %s is not a directory", path, dir)
	}
	if opts.Keys != nil && sameFile(opts.Keys.path, path) {
		return fmt.Errorf("outbox: open %s: the keyring must live outside the database", path)
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) || err == nil && fi.Mode().IsRegular() && fi.Size() == 0:
		if err := create(path, timeout); err != nil {
			return fmt.Errorf("outbox: create %s: %w", path, err)
		}
	case err != nil:
		return fmt.Errorf("outbox: open %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("outbox: open %s: not a regular file", path)
	}
	return nil
}

// newOutbox returns the Outbox on the open db, with its ids' salt and key
// read, and the use it starts from; it starts no goroutine.
func newOutbox(db *bolt.DB, opts *Options) (*Outbox, Usage, error) {
	alarmAt := opts.AlarmAt
	if alarmAt == 0 {
		alarmAt = DefaultAlarmAt
	}
	o := &Outbox{
		db: db, notify: make(chan struct{}, 1),
		classes: make(map[string]Class, len(opts.Classes)), maxPending: opts.MaxPending,
		maxSize: opts.MaxSize, maxAttempts: opts.MaxAttempts,
		codec: codec{keys: opts.Keys, marks: newMarks()}, now: opts.Now, stamp: opts.Stamp,
		pause: time.Sleep,
		alarm: newAlarm(alarmAt, opts.MaxPending != 0 || opts.MaxSize != 0, opts.OnAlarm),
		reqs:  make(chan *request, maxBatch), stopped: make(chan struct{}),
	}
	maps.Copy(o.classes, opts.Classes)
	if o.maxAttempts == 0 {
		o.maxAttempts = DefaultMaxAttempts
	}
	if o.now == nil {
		o.now = time.Now
	}
	o.pageSize = db.Info().PageSize // before any writer can remap
	if o.maxSize > 0 {
		// Grow in steps small against the bound, and keep a reserve so
		// that results and sends can still be recorded when Enqueue
		// reports the outbox full.
		db.AllocSize = min(max(o.maxSize/32, 64<<10), 16<<20)
		o.softSize = int64(o.maxSize - db.AllocSize - max(o.maxSize/10, 16*o.pageSize))
		if o.softSize <= 0 {
			return nil, Usage{}, fmt.Errorf("MaxSize %d too small", o.maxSize)
		}
	}
	if err := db.View(o.codec.load); err != nil {
		return nil, Usage{}, err
	}
	u, err := o.readUsage()
	return o, u, err
}

func sameFile(a, b string) bool {
	fa, erra := os.Stat(a)
	fb, errb := os.Stat(b)
	if erra == nil && errb == nil {
		return os.SameFile(fa, fb)
	}
	aa, _ := filepath.Abs(a)
	ab, _ := filepath.Abs(b)
	return aa == ab
}

// openBolt opens an existing or new bbolt file. A file that is not a bbolt
// database is an error, never a panic.
func openBolt(path string, timeout time.Duration, maxSize int) (db *bolt.DB, err error) {
	defer func() {
		if p := recover(); p != nil {
			db, err = nil, fmt.Errorf("invalid database: %v", p)
		}
	}()
	dropCache(path) // before bbolt maps it: single-page folios
	// The freelist is rebuilt by a scan at open instead of being
	// rewritten by every commit: fewer bytes written per operation.
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, MaxSize: maxSize,
		NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("locked by another process: %w", err)
	}
	if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrVersionMismatch) {
		return nil, fmt.Errorf("not an outbox database: %w", err)
	}
	return db, err
}

// Temp files next to the database: creation and compaction.
func tempPrefix(path string) string        { return "." + filepath.Base(path) + ".creating-" }
func compactTempPrefix(path string) string { return "." + filepath.Base(path) + ".compacting-" }

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

// removeStaleTemps removes temp files a crash during creation or
// compaction left behind. It runs while we hold the lock on the real file.
func removeStaleTemps(path string) {
	dir := filepath.Dir(path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if (strings.HasPrefix(e.Name(), tempPrefix(path)) || strings.HasPrefix(e.Name(), compactTempPrefix(path))) && e.Type().IsRegular() {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// ensureLayout creates missing buckets and keys; it writes only when one
// is missing.
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
		if seq := tx.Bucket(bucketSeq); complete && (len(seq.Get(keyDepth)) != 8 || len(seq.Get(keySalt)) != 8 ||
			len(seq.Get(keyIDKey)) != 16 || len(seq.Get(keyIDFrom)) != 8) {
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
		seq := tx.Bucket(bucketSeq)
		if len(seq.Get(keySalt)) != 8 {
			var salt [8]byte
			rand.Read(salt[:])
			if err := seq.Put(keySalt, salt[:]); err != nil {
				return err
			}
		}
		if len(seq.Get(keyIDKey)) != 16 || len(seq.Get(keyIDFrom)) != 8 {
			// The entries already queued keep their ids in clear.
			key := make([]byte, 16)
			rand.Read(key)
			if err := seq.Put(keyIDKey, key); err != nil {
				return err
			}
			if err := seq.Put(keyIDFrom, seqKey(seq.Sequence()+1)); err != nil {
				return err
			}
		}
		if len(seq.Get(keyDepth)) != 8 {
			return seq.Put(keyDepth, seqKey(uint64(tx.Bucket(bucketPending).Stats().KeyN)))
		}
		return nil
	})
}

// Close stops the committer after the writes already submitted, then
// closes the store. Entries already acknowledged stay on disk.
func (o *Outbox) Close() error {
	o.closeMu.Lock()
	if o.closed {
		o.closeMu.Unlock()
		return nil
	}
	o.closed = true
	close(o.reqs)
	o.closeMu.Unlock()
	<-o.stopped
	o.marks.stop()
	// The attempt marks still waiting (marks.go).
	merr := o.db.Update(func(tx *bolt.Tx) error {
		_, err := o.writeMarks(tx, o.marks.take(tx))
		return err
	})
	o.alarm.stop()
	if err := o.db.Close(); err != nil {
		return fmt.Errorf("outbox: close: %w", err)
	}
	if merr != nil {
		return fmt.Errorf("outbox: close: attempts: %w", merr)
	}
	return nil
}

// Commits returns how many write transactions (each one fdatasync of
// the pages and one of the meta page) the outbox committed since Open.
func (o *Outbox) Commits() int64 { return o.commits.Load() }

// Notify returns a channel that receives (non-blocking, capacity 1) after
// each successful Enqueue, so the uplink can wake up.
func (o *Outbox) Notify() <-chan struct{} { return o.notify }

// idFor is the id of the entry with seq.
func (c *codec) idFor(seq uint64) string {
	var raw [16]byte
	copy(raw[:8], c.salt[:])
	binary.BigEndian.PutUint64(raw[8:], seq)
	if c.idc != nil && seq >= c.idFrom {
		c.idc.Encrypt(raw[:], raw[:])
	}
	return hex.EncodeToString(raw[:])
}

// ownSeq returns the seq of a raw id this database assigned, keyed or in
// clear. It only says which entry the id would be: callers compare the
// id with idFor of that seq, or with the entry's record.
func (c *codec) ownSeq(raw []byte) (uint64, bool) {
	if len(raw) != 16 {
		return 0, false
	}
	if bytes.Equal(raw[:8], c.salt[:]) {
		return binary.BigEndian.Uint64(raw[8:]), true
	}
	if c.idc == nil {
		return 0, false
	}
	var pt [16]byte
	c.idc.Decrypt(pt[:], raw)
	if !bytes.Equal(pt[:8], c.salt[:]) {
		return 0, false
	}
	return binary.BigEndian.Uint64(pt[8:]), true
}

// Enqueue makes an operation durable and returns it with its id and
// sequence number. kind must be a valid kind (protocol.ValidKind) and
// payload a JSON object that fits in one message. It returns only after the commit (fsync) succeeded:
// acknowledged means on disk. When the quotas are reached it sheds pending
// telemetry, oldest first; if that is not enough it returns an error
// wrapping ErrFull and stores nothing.
func (o *Outbox) Enqueue(kind string, payload []byte, created, expires time.Time) (Entry, error) {
	if !protocol.ValidKind(kind) {
		return Entry{}, fmt.Errorf("outbox: enqueue: invalid kind %q", kind)
	}
	if len(payload)+envelopeRoom > protocol.MaxPayload {
		return Entry{}, fmt.Errorf("outbox: enqueue: payload of %d bytes: %w", len(payload), protocol.ErrTooLarge)
	}
	// Never acknowledge what the hub would refuse: it could never leave.
	if p := bytes.TrimLeft(payload, " \t\r\n"); len(p) == 0 || p[0] != '{' || !fastjson.Valid(p) {
		return Entry{}, errors.New("outbox: enqueue: payload is not a JSON object")
	}
	e := Entry{
		Kind:    kind,
		Payload: bytes.Clone(payload),
		Created: created.Round(0),
		Expires: expires.Round(0),
	}
	if o.stamp != nil {
		st := o.stamp()
		e.Stamp = &st
	}
	class := o.classes[kind] // ClassCitizen when absent
	// The compact record is the payload (sealed: 28 bytes more) and about
	// 100 bytes of envelope and stamp.
	estimate := int64(len(payload)) + int64(len(kind)) + 160
	var full error
	err := o.do(func(tx *bolt.Tx, b *batch) error {
		full = nil
		if n, err := o.makeRoom(tx, b, estimate); err != nil {
			if n > 0 && errors.Is(err, ErrFull) {
				// Keep what was shed: telemetry goes first, even when
				// it was not enough for this entry.
				full = err
				return nil
			}
			return err
		}
		seq, err := tx.Bucket(bucketSeq).NextSequence()
		if err != nil {
			return err
		}
		id := o.idFor(seq)
		r := record{ID: id, Kind: kind, Created: e.Created, Expires: e.Expires, Stamp: e.Stamp}
		if err := o.seal(&r, seq, e.Payload); err != nil {
			return err
		}
		val, err := r.encode(true)
		if err != nil {
			return err
		}
		key := seqKey(seq)
		if err := tx.Bucket(bucketPending).Put(key, val); err != nil {
			return err
		}
		if class == ClassTelemetry {
			if err := tx.Bucket(bucketTelemetry).Put(key, seqKey(uint64(len(val)))); err != nil {
				return err
			}
		}
		b.added += footprint(len(val))
		e.ID, e.Seq = id, seq
		return addCounter(tx, keyDepth, 1)
	})
	if err == nil {
		err = full
	}
	if err != nil {
		return Entry{}, fmt.Errorf("outbox: enqueue: %w", err)
	}
	select {
	case o.notify <- struct{}{}:
	default:
	}
	return e, nil
}

// footprint estimates the bytes of file an entry of n bytes takes: leaf
// pages fill to 95% on append, less after deletes.
func footprint(n int) int64 { return int64(n+32) * 3 / 2 }

// Pending returns up to max pending (not Done) entries with Seq > after,
// in Seq order, voids included (Kind protocol.KindVoid). Poison entries
// found on the way are not returned: they move to quarantine before it
// returns. Corrupt and unreadable entries, and entries whose envelope the
// hub would refuse, move to quarantine too and a void takes their place
// (returned by the next call). Sealed entries with no keyring configured
// are an error.
func (o *Outbox) Pending(after uint64, max int) ([]Entry, error) {
	if max <= 0 {
		return nil, nil
	}
	now := o.now()
	var out []Entry
	var bad []lapse
	err := o.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketPending).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < max; k, v = c.Next() {
			seq, r, err := o.decodeIn(tx, k, v)
			if err != nil {
				bad = append(bad, lapse{seq, ReasonCorrupt})
				continue
			}
			if r.void != "" {
				e := Entry{ID: r.ID, Seq: seq, Kind: r.Kind, Payload: r.Payload}
				if !o.sendable(&e) {
					bad = append(bad, lapse{seq, ReasonCorrupt}) // a damaged void: written again
					continue
				}
				out = append(out, e)
				continue
			}
			if reason := o.lapsed(&r, now); reason == ReasonPoison {
				bad = append(bad, lapse{seq, reason})
				continue
			}
			e, err := o.entry(seq, &r, bucketPending)
			if errors.Is(err, errNoKeyring) {
				return err
			}
			if err != nil {
				bad = append(bad, lapse{seq, ReasonUnreadable})
				continue
			}
			if !o.sendable(&e) {
				bad = append(bad, lapse{seq, ReasonInvalid})
				continue
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: pending: %w", err)
	}
	if len(bad) > 0 {
		// Best effort: Sweep retries whatever is left.
		o.quarantine(bad, now)
	}
	return out, nil
}

// envelopeRoom is what an operation's envelope adds to its payload on the
// wire, at most: the hub refuses messages over protocol.MaxPayload.
const envelopeRoom = 512

// sendable reports whether the hub would take e's envelope: a 32-hex id
// that is its own (for ids with this database's salt), a valid kind, and a
// payload that is a JSON object small enough for one message.
func (c *codec) sendable(e *Entry) bool {
	raw, err := hex.DecodeString(e.ID)
	if err != nil || len(raw) != 16 || strings.ToLower(e.ID) != e.ID {
		return false
	}
	if _, own := c.ownSeq(raw); own && e.ID != c.idFor(e.Seq) {
		return false
	}
	if !protocol.ValidKind(e.Kind) || len(e.Payload)+envelopeRoom > protocol.MaxPayload {
		return false
	}
	p := bytes.TrimLeft(e.Payload, " \t\r\n")
	return len(p) > 0 && p[0] == '{' && fastjson.Valid(p)
}

// lapsed says why a pending entry must leave the queue, or "".
func (o *Outbox) lapsed(r *record, now time.Time) string {
	switch {
	case r.void != "":
		return ""
	case !r.Expires.IsZero() && !now.Before(r.Expires):
		return ReasonExpired
	case o.maxAttempts > 0 && r.Attempts >= o.maxAttempts:
		return ReasonPoison
	}
	return ""
}

// MarkSent records one more attempt (Attempts++, LastSent = at). A pending
// entry sent MaxAttempts times without a final result moves to quarantine
// as poison. Unknown id: ErrNotFound.
func (o *Outbox) MarkSent(id string, at time.Time) error {
	full := o.softSize > 0 && o.used.Load() >= o.softSize
	err := o.do(func(tx *bolt.Tx, _ *batch) error {
		// As MarkSentAll: a pending entry's send is recorded apart, and
		// not at all when the outbox is full, unless poison detection
		// needs the count on the record.
		if key := o.ownKey(id); key != nil && o.maxAttempts <= 0 {
			if v := tx.Bucket(bucketPending).Get(key); v != nil {
				if full || len(v) > 0 && v[0] == voidTag {
					return reject(errUnchanged) // a void keeps no attempts
				}
				return addSent(tx, key, 1, at.Round(0))
			}
		}
		seq, r, b, err := o.lookup(tx, id)
		if err != nil {
			return reject(err)
		}
		if r.void != "" {
			return reject(errUnchanged) // a void keeps no attempts: it stays tiny
		}
		r.Attempts++
		r.LastSent = at.Round(0)
		if bytes.Equal(b, bucketPending) && o.maxAttempts > 0 && r.Attempts >= o.maxAttempts {
			return o.moveToQuarantine(tx, seq, &r, ReasonPoison, o.now())
		}
		return o.putRecord(tx.Bucket(b), seq, &r)
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return wrapID("mark sent", id, err)
	}
	return nil
}

// MarkSentAll is MarkSent for several entries sent at the same time. Ids
// the outbox does not hold are skipped; it returns how many entries it
// marked. The marks are not committed on their own: they ride with the
// next commit of any kind, and are committed at once only for the first
// round since Open, every maxMarkRounds rounds and when one brings an
// entry to MaxAttempts (marks.go); Close commits what is left. Reads count
// them before they are written. When the outbox is full it records
// nothing (unless poison detection needs the counts): the room left is for
// results.
func (o *Outbox) MarkSentAll(ids []string, at time.Time) (int, error) {
	if o.softSize > 0 && o.used.Load() >= o.softSize && o.maxAttempts <= 0 {
		// Full: the room left is kept for results, which empty the
		// queue; the attempts are bookkeeping (nothing counts them
		// unless poison detection is on) and are not recorded.
		return 0, nil
	}
	at = at.Round(0)
	known := make([]string, 0, len(ids))
	poison := false
	err := o.db.View(func(tx *bolt.Tx) error {
		pending := tx.Bucket(bucketPending)
		for _, id := range ids {
			if key := o.ownKey(id); key != nil && o.maxAttempts <= 0 && pending.Get(key) != nil {
				known = append(known, id)
				continue
			}
			_, r, b, err := o.lookup(tx, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("%s: %w", id, err)
			}
			known = append(known, id)
			if bytes.Equal(b, bucketPending) && o.maxAttempts > 0 && r.Attempts+1 >= o.maxAttempts {
				poison = true
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("outbox: mark sent: %w", err)
	}
	if len(known) == 0 {
		return 0, nil
	}
	o.closeMu.RLock()
	if o.closed {
		o.closeMu.RUnlock()
		return 0, fmt.Errorf("outbox: mark sent: %w", ErrClosed)
	}
	// flush commits the marks waiting, with whatever else is queued; the
	// function it returns waits for the commit.
	flush := func() func() error {
		wait := o.submit(func(*bolt.Tx, *batch) error { return reject(errUnchanged) })
		return func() error {
			if err := wait(); err != nil && !errors.Is(err, errUnchanged) {
				return err
			}
			return nil
		}
	}
	now := o.marks.add(known, at, func() { flush() })
	o.closeMu.RUnlock()
	if now || poison {
		if err := flush()(); err != nil {
			return 0, fmt.Errorf("outbox: mark sent: %w", err)
		}
		o.marks.committed()
	}
	return len(known), nil
}

// errUnchanged rejects a request that had nothing to write.
var errUnchanged = errors.New("unchanged")

// Record stores a result from the hub on its entry, matched by res.OpID;
// a final result for a void deletes it.
// res.Seq must be the entry's Seq (ErrMismatch otherwise). A final result
// moves the entry from pending (or quarantine) to done in the same
// transaction. A result for an entry already done keeps the first final
// result and returns the entry unchanged. Unknown id: ErrNotFound. It
// returns the updated entry; its Payload is nil if it cannot be opened.
func (o *Outbox) Record(res *protocol.Result) (Entry, error) {
	es, errs := o.RecordAll([]*protocol.Result{res})
	return es[0], errs[0]
}

// RecordAll records each result of rs as Record does, all handed to the
// committer at once: they share a commit (one fsync) instead of each
// waiting for its own. es[i] and errs[i] are Record's answers for rs[i].
func (o *Outbox) RecordAll(rs []*protocol.Result) (es []Entry, errs []error) {
	es, errs = make([]Entry, len(rs)), make([]error, len(rs))
	waits := make([]func(), len(rs))
	for i, res := range rs {
		if res == nil {
			errs[i] = errors.New("outbox: record: nil result")
			waits[i] = func() {}
			continue
		}
		waits[i] = o.record(res, &es[i], &errs[i])
	}
	for _, w := range waits {
		w()
	}
	return es, errs
}

// record hands res's recording to the committer; the function returned
// waits for it and sets *e and *err.
func (o *Outbox) record(res *protocol.Result, e *Entry, errp *error) func() {
	stored := cloneResult(res) // a private copy
	var (
		seq uint64
		r   record
		in  []byte
	)
	wait := o.submit(func(tx *bolt.Tx, _ *batch) error {
		var err error
		if seq, r, in, err = o.resultEntry(tx, res); err != nil {
			return err
		}
		if bytes.Equal(in, bucketDone) || r.Voided {
			// Done, or voided: a late result for the void that took its
			// place leaves the original in quarantine for the technician.
			return reject(errUnchanged)
		}
		if r.void != "" {
			if !res.Final() {
				return reject(errUnchanged)
			}
			// The hub recorded the void: the sequence number is settled
			// and nothing is left to keep (the original, if any, stays in
			// quarantine).
			r.Result, in = res, bucketDone
			if err := tx.Bucket(bucketPending).Delete(seqKey(seq)); err != nil {
				return err
			}
			if err := o.dropIndex(tx, r.ID); err != nil {
				return err
			}
			return addCounter(tx, keyVoids, -1)
		}
		r.Result = stored
		if !res.Final() {
			return o.putRecord(tx.Bucket(in), seq, &r)
		}
		key := seqKey(seq)
		if err := tx.Bucket(in).Delete(key); err != nil {
			return err
		}
		if bytes.Equal(in, bucketPending) {
			if err := tx.Bucket(bucketTelemetry).Delete(key); err != nil {
				return err
			}
			if err := addCounter(tx, keyDepth, -1); err != nil {
				return err
			}
		} else if err := addCounter(tx, keyQuarantined, -1); err != nil {
			return err
		}
		r.Quarantine, r.QuarantinedAt = "", time.Time{}
		r.Completed = o.now().Round(0)
		in = bucketDone
		return o.putRecord(tx.Bucket(bucketDone), seq, &r)
	})
	return func() {
		if err := wait(); err != nil && !errors.Is(err, errUnchanged) {
			*errp = wrapID("record", res.OpID, err)
			return
		}
		*e, _ = o.entry(seq, &r, in)
	}
}

// resultEntry finds the entry res is the result of, and where it is; it
// rejects an unknown id and a result whose seq is not the entry's.
func (c *codec) resultEntry(tx *bolt.Tx, res *protocol.Result) (uint64, record, []byte, error) {
	seq, r, in, err := c.lookup(tx, res.OpID)
	if err != nil {
		return seq, r, in, reject(err)
	}
	if res.Seq != seq {
		return seq, r, in, reject(fmt.Errorf("%w: result seq %d, entry seq %d", ErrMismatch, res.Seq, seq))
	}
	return seq, r, in, nil
}

// Adopt makes res, a final result from the hub's own record
// (resynchronisation), the entry's result whatever the entry holds: a
// pending or quarantined entry becomes done, a done entry's result is
// replaced. It returns the entry before and after. res.Seq must be the
// entry's Seq (ErrMismatch otherwise); a result that is not final is
// refused. Unknown id: ErrNotFound.
func (o *Outbox) Adopt(res *protocol.Result) (before, after Entry, err error) {
	if res == nil || !res.Final() {
		return Entry{}, Entry{}, errors.New("outbox: adopt: not a final result")
	}
	stored, err := json.Marshal(res)
	if err != nil {
		return Entry{}, Entry{}, fmt.Errorf("outbox: adopt %s: %w", res.OpID, err)
	}
	var (
		seq uint64
		r   record
		in  []byte
	)
	err = o.do(func(tx *bolt.Tx, _ *batch) error {
		var err error
		if seq, r, in, err = o.resultEntry(tx, res); err != nil {
			return err
		}
		before, _ = o.entry(seq, &r, in)
		before.Payload = nil
		r.Result = new(protocol.Result)
		if err := json.Unmarshal(stored, r.Result); err != nil {
			return reject(err)
		}
		key := seqKey(seq)
		switch {
		case bytes.Equal(in, bucketPending):
			if err := tx.Bucket(bucketTelemetry).Delete(key); err != nil {
				return err
			}
			if err := addCounter(tx, keyDepth, -1); err != nil {
				return err
			}
		case bytes.Equal(in, bucketQuarantine):
			if err := addCounter(tx, keyQuarantined, -1); err != nil {
				return err
			}
		}
		if !bytes.Equal(in, bucketDone) {
			if err := tx.Bucket(in).Delete(key); err != nil {
				return err
			}
			r.Quarantine, r.QuarantinedAt = "", time.Time{}
			r.Completed = o.now().Round(0)
			in = bucketDone
		}
		return o.putRecord(tx.Bucket(bucketDone), seq, &r)
	})
	if err != nil {
		return Entry{}, Entry{}, wrapID("adopt", res.OpID, err)
	}
	after, _ = o.entry(seq, &r, in)
	after.Payload = nil
	return before, after, nil
}

// cloneResult is a deep copy of res: the caller keeps its own.
func cloneResult(res *protocol.Result) *protocol.Result {
	c := *res
	c.Processing.Errors = slices.Clone(res.Processing.Errors)
	c.Data = bytes.Clone(res.Data)
	return &c
}

// Get returns the entry with id, pending, done or quarantined. If its
// sealed payload cannot be opened it returns the entry without payload
// (the envelope stays readable) and an error wrapping ErrUnreadable.
func (o *Outbox) Get(id string) (Entry, error) {
	var e Entry
	err := o.db.View(func(tx *bolt.Tx) error {
		seq, r, in, err := o.lookup(tx, id)
		if err != nil {
			return err
		}
		e, err = o.entry(seq, &r, in)
		return err
	})
	if err != nil {
		return e, wrapID("get", id, err)
	}
	return e, nil
}

// Stats returns the number of pending entries (voids included), the oldest pending
// sequence number and its Created time, and the last assigned sequence
// number. It reads one entry and two counters, whatever the depth.
func (o *Outbox) Stats() (protocol.Queue, error) {
	var q protocol.Queue
	err := o.db.View(func(tx *bolt.Tx) error {
		seq := tx.Bucket(bucketSeq)
		q.LastSeq = seq.Sequence()
		depth := seq.Get(keyDepth)
		if len(depth) != 8 {
			return errors.New("corrupt depth counter")
		}
		q.Depth = int(binary.BigEndian.Uint64(depth) + counter(tx, keyVoids))
		k, v := tx.Bucket(bucketPending).Cursor().First()
		if k == nil {
			return nil
		}
		s, r, err := o.decodeRecord(k, v)
		q.OldestSeq = s
		if err == nil {
			q.Oldest = r.Created
		}
		return nil
	})
	if err != nil {
		return protocol.Queue{}, fmt.Errorf("outbox: stats: %w", err)
	}
	return q, nil
}

// Usage reports how full the outbox is against its quotas.
func (o *Outbox) Usage() (Usage, error) {
	u, err := o.readUsage()
	if err != nil {
		return Usage{}, fmt.Errorf("outbox: usage: %w", err)
	}
	return u, nil
}

func (o *Outbox) readUsage() (Usage, error) {
	u := Usage{MaxSize: o.maxSize, MaxPending: o.maxPending, Alarm: o.alarm.on.Load()}
	var size int64
	err := o.db.View(func(tx *bolt.Tx) error {
		size = tx.Size()
		u.Pending = int(counter(tx, keyDepth))
		u.Quarantined = int(counter(tx, keyQuarantined))
		u.Shed = counter(tx, keyShed)
		u.Voids = int(counter(tx, keyVoids))
		return nil
	})
	if err != nil {
		return Usage{}, err
	}
	st := o.db.Stats()
	u.Bytes = size - int64(st.FreePageN+st.PendingPageN)*int64(o.pageSize)
	if o.maxSize > 0 {
		u.Fraction = float64(u.Bytes) / float64(o.softSize)
	}
	if o.maxPending > 0 {
		u.Fraction = max(u.Fraction, float64(u.Pending)/float64(o.maxPending))
	}
	return u, nil
}

// Meta returns the value stored under key, or nil, nil when absent.
func (o *Outbox) Meta(key string) ([]byte, error) {
	var val []byte
	err := o.db.View(func(tx *bolt.Tx) error {
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
	val = bytes.Clone(val) // bbolt keeps it until the commit
	err := o.do(func(tx *bolt.Tx, _ *batch) error {
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

// entry converts a record to an Entry, opening its payload. On an error
// the envelope is still filled in.
func (c *codec) entry(seq uint64, r *record, in []byte) (Entry, error) {
	e := Entry{
		ID: r.ID, Seq: seq, Kind: r.Kind, Payload: r.Payload,
		Created: r.Created, Expires: r.Expires, Attempts: r.Attempts, LastSent: r.LastSent,
		Result: r.Result, Done: bytes.Equal(in, bucketDone) || bytes.Equal(in, bucketSettled), Completed: r.Completed,
		Quarantine: r.Quarantine, Stamp: r.Stamp, Purged: bytes.Equal(in, bucketSettled),
	}
	if r.Sealed == nil {
		return e, nil
	}
	p, err := c.open(r, seq)
	if err != nil {
		return e, err
	}
	e.Payload = p
	return e, nil
}

// putRecord stores r, which holds every send recorded for it (read with
// decodeIn): the sends recorded apart are dropped.
func (c *codec) putRecord(b *bolt.Bucket, seq uint64, r *record) error {
	val, err := c.encodeRecord(seq, r)
	if err != nil {
		return err
	}
	if err := dropSent(b.Tx(), seqKey(seq)); err != nil {
		return err
	}
	return b.Put(seqKey(seq), val)
}

// decodeIn is decodeRecord with the sends recorded apart added in.
func (c *codec) decodeIn(tx *bolt.Tx, key, val []byte) (uint64, record, error) {
	seq, r, err := c.decodeRecord(key, val)
	if err == nil {
		n, at := sentOf(tx, key)
		r.Attempts += n
		if at.After(r.LastSent) {
			r.LastSent = at
		}
		n, at = c.marks.overlay(tx, r.ID)
		r.Attempts += n
		if at.After(r.LastSent) {
			r.LastSent = at
		}
	}
	return seq, r, err
}

// sentOf returns the sends recorded apart for the entry at key. A value
// of the wrong size counts as none.
func sentOf(tx *bolt.Tx, key []byte) (int, time.Time) {
	b := tx.Bucket(bucketSent)
	if b == nil {
		return 0, time.Time{}
	}
	v := b.Get(key)
	if len(v) != 12 {
		return 0, time.Time{}
	}
	return int(binary.BigEndian.Uint32(v)), time.Unix(0, int64(binary.BigEndian.Uint64(v[4:])))
}

// addSent records add more sends of the entry at key, the last at at.
func addSent(tx *bolt.Tx, key []byte, add int, at time.Time) error {
	n, _ := sentOf(tx, key)
	v := binary.BigEndian.AppendUint32(make([]byte, 0, 12), uint32(n+add))
	v = binary.BigEndian.AppendUint64(v, uint64(at.UnixNano()))
	return tx.Bucket(bucketSent).Put(key, v)
}

// dropSent forgets the sends recorded apart for the entry at key.
func dropSent(tx *bolt.Tx, key []byte) error {
	if b := tx.Bucket(bucketSent); b != nil {
		return b.Delete(key)
	}
	return nil
}

// lookup finds the entry with id and the bucket holding it. Errors are
// found before anything is written.
func (c *codec) lookup(tx *bolt.Tx, id string) (uint64, record, []byte, error) {
	raw, err := hex.DecodeString(id)
	if err != nil || len(raw) != 16 || strings.ToLower(id) != id {
		return 0, record{}, nil, ErrNotFound
	}
	var key []byte
	seq, own := c.ownSeq(raw)
	if own {
		key = seqKey(seq)
	} else if key = tx.Bucket(bucketIndex).Get(raw); key == nil {
		return 0, record{}, nil, ErrNotFound
	}
	for _, name := range [][]byte{bucketPending, bucketDone, bucketQuarantine} {
		if v := tx.Bucket(name).Get(key); v != nil {
			seq, r, err := c.decodeIn(tx, key, v)
			if err == nil && r.ID != id {
				return 0, record{}, nil, ErrNotFound
			}
			return seq, r, name, err
		}
	}
	if own {
		return 0, record{}, nil, ErrNotFound // purged, shed or never assigned
	}
	return 0, record{}, nil, fmt.Errorf("index names missing entry %x", key)
}

// ownKey is the key of an id this database assigned, or nil.
func (c *codec) ownKey(id string) []byte {
	raw, err := hex.DecodeString(id)
	if err != nil || strings.ToLower(id) != id {
		return nil
	}
	seq, own := c.ownSeq(raw)
	if !own || c.idFor(seq) != id {
		return nil
	}
	return seqKey(seq)
}

// dropIndex removes the index key of an id from an older version.
func (c *codec) dropIndex(tx *bolt.Tx, id string) error {
	raw, err := hex.DecodeString(id)
	if err != nil || len(raw) != 16 {
		return nil
	}
	if _, own := c.ownSeq(raw); own {
		return nil
	}
	return tx.Bucket(bucketIndex).Delete(raw)
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

// counter reads a counter of bucketSeq; a missing one is 0.
func counter(tx *bolt.Tx, key []byte) uint64 {
	if v := tx.Bucket(bucketSeq).Get(key); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func addCounter(tx *bolt.Tx, key []byte, delta int64) error {
	b := tx.Bucket(bucketSeq)
	v := b.Get(key)
	if len(v) != 8 && bytes.Equal(key, keyDepth) {
		return errors.New("corrupt depth counter")
	}
	n := int64(counter(tx, key)) + delta
	if n < 0 {
		n = 0
	}
	return b.Put(key, seqKey(uint64(n)))
}

// SetAlarmAt changes the fraction of a quota at which the alarm fires
// (outbox.alarm_at changed live); it takes effect at the next commit.
func (o *Outbox) SetAlarmAt(f float64) error {
	if f <= 0 || f > 1 {
		return fmt.Errorf("outbox: alarm threshold %v: want more than 0 and at most 1", f)
	}
	o.alarm.bits.Store(math.Float64bits(f))
	return nil
}

// AlarmAt returns the alarm threshold in force.
func (o *Outbox) AlarmAt() float64 { return o.alarm.threshold() }
