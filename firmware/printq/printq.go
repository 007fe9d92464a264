// Package printq keeps the totem's receipts durable until they are on
// paper: a receipt is stored (fsync) before it is printed; when the printer
// is out of paper, has its cover open or is switched off, the job waits and
// is printed when the printer is ready again. An attempt is recorded before
// the bytes go out, so a job retried after a fault or a power cut is
// printed marked as a reprint, never a second time as if new. Technicians
// list the jobs and reprint one on demand.
//
// A receipt with secrets (the first halves of PIN and PUK) is sealed with
// the outbox's keyring while it waits for paper, so jobs.db never holds
// them in clear, and once printed it is deleted and the file compacted.
package printq

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/outbox"
	bolt "go.etcd.io/bbolt"
)

var bJobs = []byte("jobs")

// State of a job.
const (
	Pending = "pending" // waiting for the printer
	Printed = "printed" // the printer took it
	// Unreadable: a sealed receipt whose key is gone (the keyring was
	// lost or replaced): it can never be printed, the queue goes on.
	Unreadable = "unreadable"
)

// Job is one receipt.
type Job struct {
	ID       uint64    `json:"id"`
	OpID     string    `json:"op_id,omitempty"` // the operation the receipt is for
	Doc      hal.Doc   `json:"doc"`
	Created  time.Time `json:"created"`
	State    string    `json:"state"`
	Attempts int       `json:"attempts"`
	LastErr  string    `json:"last_err,omitempty"`
	Printed  time.Time `json:"printed,omitzero"`
	Copies   int       `json:"copies"` // times printed, reprints included
	// Sealed holds the blocks of a sensitive receipt, sealed with the
	// keyring; Doc.Blocks is then empty on disk (and in List).
	Sealed *Sealed `json:"sealed,omitempty"`
}

// Sealed is a sealed copy of a receipt's blocks.
type Sealed struct {
	Key   uint32 `json:"key"`
	Nonce []byte `json:"nonce"`
	Data  []byte `json:"data"`
}

// Options configures a Queue.
type Options struct {
	Logger *slog.Logger
	// Poll is how often a waiting queue asks the printer whether it is
	// ready again. Default 2s.
	Poll time.Duration
	// OnStatus is told the printer's condition after every attempt: nil
	// when it printed, the hal sentinel otherwise.
	OnStatus func(error)
	// OnPaper is told, each time the printer answered a status query,
	// whether it reports its paper near the end (it still prints).
	OnPaper func(nearEnd bool)
	// Keys seals the receipts with secrets (the outbox's keyring). Without
	// it they are kept in clear until printed (tests, a totem whose
	// outbox has no keyring).
	Keys *outbox.Keyring
	// Clock paces the polls and stamps the jobs; default
	// hal.SystemClock.
	Clock hal.Clock
}

// Queue is the durable print queue.
type Queue struct {
	path    string
	dbmu    sync.RWMutex // compact replaces db; everyone else reads it
	db      *bolt.DB
	printer hal.Printer
	o       Options
	wake    chan struct{}

	mu      sync.Mutex
	waiters map[uint64][]chan error
}

// Open opens or creates the queue's store at path.
func Open(path string, p hal.Printer, o Options) (*Queue, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Poll == 0 {
		o.Poll = 2 * time.Second
	}
	if o.Clock == nil {
		o.Clock = hal.SystemClock{}
	}
	db, err := openDB(path)
	if err != nil {
		return nil, err
	}
	q := &Queue{path: path, db: db, printer: p, o: o, wake: make(chan struct{}, 1), waiters: make(map[uint64][]chan error)}
	var sealed bool
	db.View(func(tx *bolt.Tx) error { sealed = tx.Bucket(bMeta).Get(keySealed) != nil; return nil })
	if !sealed {
		// A file from before receipts were sealed: its freed pages may
		// hold the clear text of receipts printed and wiped. Once.
		if err := q.compact(); err != nil {
			q.Close()
			return nil, err
		}
		if err := q.update(func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Put(keySealed, []byte{1}) }); err != nil {
			q.Close()
			return nil, fmt.Errorf("printq: %w", err)
		}
	}
	return q, nil
}

// bMeta holds keySealed once the file has been compacted by a version that
// seals receipts with secrets.
var (
	bMeta     = []byte("meta")
	keySealed = []byte("sealed")
)

func openDB(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("printq: open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bJobs, bMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("printq: %w", err)
	}
	return db, nil
}

// Close closes the store. Run must have returned.
func (q *Queue) Close() error {
	q.dbmu.Lock()
	defer q.dbmu.Unlock()
	if q.db == nil {
		return nil
	}
	return q.db.Close()
}

// update and view run fn on the store, which compact may be replacing.
func (q *Queue) update(fn func(*bolt.Tx) error) error { return q.onDB((*bolt.DB).Update, fn) }

func (q *Queue) view(fn func(*bolt.Tx) error) error { return q.onDB((*bolt.DB).View, fn) }

// onDB runs fn in a transaction of kind tx (Update or View) on the store
// held open against compact.
func (q *Queue) onDB(tx func(*bolt.DB, func(*bolt.Tx) error) error, fn func(*bolt.Tx) error) error {
	q.dbmu.RLock()
	defer q.dbmu.RUnlock()
	if q.db == nil {
		return errClosed
	}
	return tx(q.db, fn)
}

var errClosed = errors.New("printq: the store is closed (a compaction failed)")

// compact rewrites the store into a new file and replaces the old one, so
// that the pages a deleted job used — a sensitive receipt's envelope, or
// its clear text in a file from before sealing — leave the file. bbolt
// never shrinks or zeroes a freed page by itself. (The old file's blocks
// go back to the file system as they are: sealing is what keeps secrets
// off the disk; compacting keeps even the sealed copy from lingering.)
func (q *Queue) compact() error {
	q.dbmu.Lock()
	defer q.dbmu.Unlock()
	tmp := q.path + ".compact"
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return fmt.Errorf("printq: compact: %w", err)
	}
	if err := bolt.Compact(dst, q.db, 0); err != nil {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("printq: compact: %w", err)
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("printq: compact: %w", err)
	}
	if err := q.db.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("printq: compact: %w", err)
	}
	q.db = nil
	err = os.Rename(tmp, q.path)
	if err == nil {
		err = syncDir(filepath.Dir(q.path))
	}
	if err != nil {
		os.Remove(tmp)
	}
	// Reopen whichever file is at path now: the compacted one, or the
	// old one when the rename failed.
	db, oerr := openDB(q.path)
	if oerr != nil {
		return oerr
	}
	q.db = db
	if err != nil {
		return fmt.Errorf("printq: compact: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func key(id uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, id)
	return b
}

// put stores j; a sensitive receipt's blocks are stored sealed when the
// queue has a keyring, bound to the job's id.
func (q *Queue) put(tx *bolt.Tx, j *Job) error {
	rec := *j
	if rec.Doc.Sensitive && q.o.Keys != nil && rec.Doc.Blocks != nil {
		b, err := json.Marshal(rec.Doc.Blocks)
		if err != nil {
			return err
		}
		s := &Sealed{}
		s.Key, s.Nonce, s.Data = q.o.Keys.Seal(b, key(j.ID))
		rec.Sealed, rec.Doc.Blocks = s, nil
	}
	b, err := json.Marshal(&rec)
	if err != nil {
		return err
	}
	return tx.Bucket(bJobs).Put(key(j.ID), b)
}

func get(tx *bolt.Tx, id uint64) (*Job, error) {
	b := tx.Bucket(bJobs).Get(key(id))
	if b == nil {
		return nil, ErrNotFound
	}
	var j Job
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("printq: job %d: %w", id, err)
	}
	return &j, nil
}

// unseal puts back the blocks of a sealed receipt, for printing.
func (q *Queue) unseal(j *Job) error {
	if j.Sealed == nil {
		return nil
	}
	if q.o.Keys == nil {
		return fmt.Errorf("printq: job %d: sealed and no keyring: %w", j.ID, outbox.ErrUnreadable)
	}
	b, err := q.o.Keys.Open(j.Sealed.Key, j.Sealed.Nonce, j.Sealed.Data, key(j.ID))
	if err != nil {
		return fmt.Errorf("printq: job %d: %w", j.ID, err)
	}
	var blocks []hal.Block
	if err := json.Unmarshal(b, &blocks); err != nil {
		return fmt.Errorf("printq: job %d: %w", j.ID, err)
	}
	j.Doc.Blocks, j.Sealed = blocks, nil
	return nil
}

// ErrNotFound is returned for an unknown job id.
var ErrNotFound = errors.New("printq: no such job")

// ErrSensitive refuses to reprint a receipt that carried secrets: no copy
// of it was kept once it was printed.
var ErrSensitive = errors.New("printq: a receipt with secrets is not kept once printed")

// Add stores doc as a new job; when it returns the job is on disk. The
// returned channel receives the outcome of the first attempt (nil: printed).
func (q *Queue) Add(doc *hal.Doc, opID string) (Job, <-chan error, error) {
	j := Job{OpID: opID, Doc: *doc, Created: q.o.Clock.Now().UTC(), State: Pending}
	err := q.update(func(tx *bolt.Tx) error {
		id, err := tx.Bucket(bJobs).NextSequence()
		if err != nil {
			return err
		}
		j.ID = id
		return q.put(tx, &j)
	})
	if err != nil {
		return Job{}, nil, fmt.Errorf("printq: add: %w", err)
	}
	ch := make(chan error, 1)
	q.mu.Lock()
	q.waiters[j.ID] = append(q.waiters[j.ID], ch)
	q.mu.Unlock()
	q.poke()
	return j, ch, nil
}

// Reprint queues a printed job again, as a reprint.
func (q *Queue) Reprint(id uint64) error {
	err := q.update(func(tx *bolt.Tx) error {
		j, err := get(tx, id)
		if err != nil {
			return err
		}
		if j.Doc.Sensitive && j.State == Printed {
			return ErrSensitive
		}
		j.State = Pending
		return q.put(tx, j)
	})
	if err != nil {
		return fmt.Errorf("printq: reprint %d: %w", id, err)
	}
	q.poke()
	return nil
}

// List returns the jobs, newest first, at most max.
func (q *Queue) List(max int) ([]Job, error) {
	var out []Job
	err := q.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bJobs).Cursor()
		for k, v := c.Last(); k != nil && len(out) < max; k, v = c.Prev() {
			var j Job
			if err := json.Unmarshal(v, &j); err != nil {
				return err
			}
			out = append(out, j)
		}
		return nil
	})
	return out, err
}

// Pending returns how many jobs wait for the printer.
func (q *Queue) Pending() (int, error) {
	n := 0
	err := q.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bJobs).ForEach(func(_, v []byte) error {
			var j Job
			if err := json.Unmarshal(v, &j); err != nil {
				return err
			}
			if j.State == Pending {
				n++
			}
			return nil
		})
	})
	return n, err
}

func (q *Queue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Run prints pending jobs in order until ctx is done.
func (q *Queue) Run(ctx context.Context) error {
	t := q.o.Clock.After(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-q.wake:
		case <-t:
			t = nil
		}
		waiting, err := q.drain(ctx)
		if err != nil && ctx.Err() == nil {
			q.o.Logger.Error("print queue", "err", err)
		}
		if waiting {
			t = q.o.Clock.After(q.o.Poll)
		}
	}
}

// drain prints every pending job; it reports whether some still wait.
func (q *Queue) drain(ctx context.Context) (bool, error) {
	for ctx.Err() == nil {
		j, err := q.next()
		if err != nil || j == nil {
			return false, err
		}
		if err := q.attempt(ctx, j); err != nil {
			return true, nil
		}
	}
	return false, nil
}

// next returns the oldest pending job, its sealed blocks opened. A sealed
// job that cannot be opened is marked Unreadable, and the next one tried.
func (q *Queue) next() (*Job, error) {
	for {
		var out *Job
		err := q.view(func(tx *bolt.Tx) error {
			return tx.Bucket(bJobs).ForEach(func(_, v []byte) error {
				if out != nil {
					return nil
				}
				var j Job
				if err := json.Unmarshal(v, &j); err != nil {
					return err
				}
				if j.State == Pending {
					out = &j
				}
				return nil
			})
		})
		if err != nil || out == nil {
			return nil, err
		}
		uerr := q.unseal(out)
		if uerr == nil {
			return out, nil
		}
		q.o.Logger.Error("receipt cannot be printed", "job", out.ID, "err", uerr)
		out.State, out.LastErr = Unreadable, uerr.Error()
		if err := q.update(func(tx *bolt.Tx) error { return q.put(tx, out) }); err != nil {
			return nil, err
		}
		q.done(out.ID, uerr)
	}
}

// attempt records the attempt, then prints. A job that had an attempt or a
// copy before is printed as a reprint.
func (q *Queue) attempt(ctx context.Context, j *Job) error {
	// A printer that cannot say it is ready (switched off, not answering)
	// is not sent the job: nothing goes out, so no reprint mark later.
	st, err := q.printer.Status(ctx)
	if err == nil {
		if q.o.OnPaper != nil {
			q.o.OnPaper(st.PaperNearEnd)
		}
		err = st.Err()
	}
	if err != nil {
		return q.failed(j, err)
	}
	reprint := j.Attempts > 0 || j.Copies > 0
	if err := q.update(func(tx *bolt.Tx) error {
		j.Attempts++
		return q.put(tx, j)
	}); err != nil {
		return err
	}
	doc := j.Doc
	if reprint {
		doc = markReprint(doc, j.Created)
	}
	if err := q.printer.Print(ctx, &doc); err != nil {
		return q.failed(j, err)
	}
	j.State, j.Printed, j.LastErr = Printed, q.o.Clock.Now().UTC(), ""
	j.Copies++
	if j.Doc.Sensitive {
		// On paper now: the job goes, and the file is compacted so that
		// not even its sealed copy stays in a freed page.
		if err := q.update(func(tx *bolt.Tx) error { return tx.Bucket(bJobs).Delete(key(j.ID)) }); err != nil {
			return err
		}
		if err := q.compact(); err != nil {
			q.o.Logger.Error("print queue not compacted", "err", err)
		}
	} else if err := q.update(func(tx *bolt.Tx) error { return q.put(tx, j) }); err != nil {
		return err
	}
	q.o.Logger.Info("receipt printed", "job", j.ID, "reprint", reprint)
	q.done(j.ID, nil)
	return nil
}

func (q *Queue) failed(j *Job, err error) error {
	j.LastErr = err.Error()
	q.update(func(tx *bolt.Tx) error { return q.put(tx, j) })
	q.o.Logger.Warn("receipt waits for the printer", "job", j.ID, "err", err)
	q.done(j.ID, err)
	return err
}

// done tells those waiting for a job's first outcome, and the status hook.
// The status hook runs first: whoever is woken reads a current status.
func (q *Queue) done(id uint64, err error) {
	if q.o.OnStatus != nil {
		q.o.OnStatus(err)
	}
	q.mu.Lock()
	ws := q.waiters[id]
	delete(q.waiters, id)
	q.mu.Unlock()
	for _, w := range ws {
		w <- err
	}
}

// markReprint puts a RISTAMPA banner on top of a receipt.
func markReprint(d hal.Doc, created time.Time) hal.Doc {
	banner := []hal.Block{
		{Kind: hal.Text, Text: "*** RISTAMPA ***", Align: hal.Center, Bold: true},
		{Kind: hal.Text, Text: "Ricevuta del " + created.Local().Format("02/01/2006 15:04"), Align: hal.Center},
	}
	d.Blocks = append(banner, d.Blocks...)
	return d
}
