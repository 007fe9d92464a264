// Package rollout is the hub's side of updates: fleet jobs that offer a
// signed bundle to their target totems in waves never faster than the
// job's rate, record each totem's state (queued, downloading, installed,
// committed, rolled back, failed and why) in a bbolt file of their own,
// serve the payload's chunks to the totems offered it, and stop
// themselves once failures pass the job's threshold.
//
// The rate bounds the offers made in any sliding minute: an offer is what
// starts a totem's download and, once it installs, its restart. The
// threshold is a share of the job's targets: a job of 100 totems at 10%
// stops at its eleventh failure, and the totems not offered yet are never
// touched (AWS IoT Jobs' abort criteria, without its minimum count: a
// fleet of lobbies is small, and a broken build shows on the first ones).
package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/aslcns/totem/internal/boltdb"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/update"
)

// Job states.
const (
	JobRunning   = "running"
	JobDone      = "done"      // every target reached a final state
	JobAborted   = "aborted"   // failures passed the threshold
	JobCancelled = "cancelled" // by a console
)

// Reasons written for totems a job leaves.
const (
	ReasonAborted   = "job aborted"
	ReasonCancelled = "job cancelled"
	ReasonTimeout   = "no final state in time"
)

// Job is a fleet job.
type Job struct {
	ID       string          `json:"id"`
	Manifest json.RawMessage `json:"manifest"` // signed, as the totems get it
	Package  string          `json:"package"`
	Version  string          `json:"version"`
	Targets  []string        `json:"targets"`
	Rate     int             `json:"rate"`      // offers per minute
	AbortPct int             `json:"abort_pct"` // failures past this share of the targets abort the job
	State    string          `json:"state"`
	Reason   string          `json:"reason,omitempty"`
	Created  time.Time       `json:"created"`
	Ended    time.Time       `json:"ended,omitzero"`
}

// Totem is one target's state in a job.
type Totem struct {
	State   string    `json:"state"`
	Reason  string    `json:"reason,omitempty"`
	Chunk   int       `json:"chunk,omitempty"`
	Chunks  int       `json:"chunks,omitempty"`
	Offered time.Time `json:"offered,omitzero"`
	Resent  time.Time `json:"resent,omitzero"` // the offer sent again: no answer yet
	Updated time.Time `json:"updated,omitzero"`
}

// Status is a job with its totems' states.
type Status struct {
	Job    Job              `json:"job"`
	Totems map[string]Totem `json:"totems"`
	Counts map[string]int   `json:"counts"` // totems per state
}

// Sender reaches the totems (production: MQTT).
type Sender interface {
	Offer(totem, job string, manifest []byte) error
	Cancel(totem, job string) error
}

// Errors.
var (
	ErrNoJob     = errors.New("rollout: no such job")
	ErrNotTarget = errors.New("rollout: totem not offered this job")
	ErrInvalid   = errors.New("rollout: invalid job")
)

// ResendAfter is how long an offer goes unanswered before it is sent
// again.
var ResendAfter = time.Minute

// Limits of a job.
const (
	MaxTargets = 10000
	MaxRate    = 600
)

var (
	bucketJobs   = []byte("jobs")   // id → Job
	bucketTotems = []byte("totems") // id → bucket of totem → Totem
)

// Rollout runs the hub's jobs.
type Rollout struct {
	db      *bbolt.DB
	dir     string // payloads: <dir>/<job>.bin
	send    Sender
	now     func() time.Time
	timeout time.Duration

	mu sync.Mutex // one Tick, Report or change at a time
}

// Open opens (or creates) the jobs' file in dir. timeout is how long an
// offered totem has to reach a final state before it counts as failed
// (default 1 hour).
func Open(dir string, send Sender, now func() time.Time, timeout time.Duration) (*Rollout, error) {
	if now == nil {
		now = time.Now
	}
	if timeout == 0 {
		timeout = time.Hour
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("rollout: %w", err)
	}
	db, err := boltdb.Open(filepath.Join(dir, "jobs.db"), bucketJobs, bucketTotems)
	if err != nil {
		return nil, fmt.Errorf("rollout: %w", err)
	}
	return &Rollout{db: db, dir: dir, send: send, now: now, timeout: timeout}, nil
}

// Close closes the file.
func (r *Rollout) Close() error { return r.db.Close() }

func (r *Rollout) payloadPath(job string) string { return filepath.Join(r.dir, job+".bin") }

// Create records a job for the signed manifest and its payload. The
// manifest is checked against the payload here, so a job never offers a
// bundle its totems would refuse for its digest; its signature is the
// totems' to check (the hub need not trust the ops keys).
func (r *Rollout) Create(id string, manifest, payload []byte, targets []string, rate, abortPct int) (*Job, error) {
	m, err := update.Decode(manifest)
	if err != nil {
		return nil, err
	}
	if err := m.CheckPayload(bytesReader(payload)); err != nil {
		return nil, err
	}
	switch {
	case !protocol.ValidTotemID(id):
		return nil, fmt.Errorf("%w: job id", ErrInvalid)
	case len(targets) == 0 || len(targets) > MaxTargets:
		return nil, fmt.Errorf("%w: %d targets", ErrInvalid, len(targets))
	case rate < 1 || rate > MaxRate:
		return nil, fmt.Errorf("%w: rate %d/min (1-%d)", ErrInvalid, rate, MaxRate)
	case abortPct < 0 || abortPct > 100:
		return nil, fmt.Errorf("%w: abort threshold %d%%", ErrInvalid, abortPct)
	}
	targets = slices.Clone(targets)
	slices.Sort(targets)
	targets = slices.Compact(targets)
	for _, t := range targets {
		if !protocol.ValidTotemID(t) {
			return nil, fmt.Errorf("%w: target id", ErrInvalid)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.Status(id); !errors.Is(err, ErrNoJob) {
		return nil, fmt.Errorf("%w: job %s exists", ErrInvalid, id)
	}
	if err := writeFile(r.payloadPath(id), payload); err != nil {
		return nil, err
	}
	j := &Job{ID: id, Manifest: manifest, Package: m.Package, Version: m.Version, Targets: targets, Rate: rate,
		AbortPct: abortPct, State: JobRunning, Created: r.now().UTC()}
	err = r.db.Update(func(tx *bbolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		if jobs.Get([]byte(id)) != nil {
			return fmt.Errorf("%w: job %s exists", ErrInvalid, id)
		}
		if err := put(jobs, id, j); err != nil {
			return err
		}
		tb, err := tx.Bucket(bucketTotems).CreateBucket([]byte(id))
		if err != nil {
			return err
		}
		for _, t := range targets {
			if err := put(tb, t, Totem{State: update.StateQueued}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rollout: %w", err)
	}
	return j, nil
}

// Tick moves every running job on: offers to queued totems as far as the
// rate allows, timeouts, the abort threshold, the end of the job.
func (r *Rollout) Tick() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var running []string
	err := r.eachJob(func(j *Job) {
		if j.State == JobRunning {
			running = append(running, j.ID)
		}
	})
	if err != nil {
		return fmt.Errorf("rollout: %w", err)
	}
	var errs []error
	for _, id := range running {
		errs = append(errs, r.tick(id))
	}
	return errors.Join(errs...)
}

func (r *Rollout) tick(id string) error {
	now := r.now().UTC()
	var offers, resend, cancel []string
	err := r.db.Update(func(tx *bbolt.Tx) error {
		j, totems, tb, err := load(tx, id)
		if err != nil {
			return err
		}
		c, err := r.count(tb, j, totems, now)
		if err != nil {
			return err
		}
		resend = c.resend
		if c.failures*100 > j.AbortPct*len(j.Targets) {
			j.State, j.Reason, j.Ended = JobAborted, fmt.Sprintf("%d of %d totems failed, threshold %d%%", c.failures, len(j.Targets), j.AbortPct), now
			if cancel, err = withdraw(tx, id, ReasonAborted, now); err != nil {
				return err
			}
			return put(tx.Bucket(bucketJobs), id, j)
		}
		if c.final == len(j.Targets) {
			j.State, j.Ended = JobDone, now
			return put(tx.Bucket(bucketJobs), id, j)
		}
		// The wave: as many as the last minute's offers leave room for.
		for _, t := range c.queued[:min(len(c.queued), max(0, j.Rate-c.recent))] {
			s := totems[t]
			s.Offered, s.Updated = now, now
			if err := put(tb, t, s); err != nil {
				return err
			}
			offers = append(offers, t)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rollout: job %s: %w", id, err)
	}
	errs := []error{r.cancelAll(id, cancel)}
	offers = append(offers, resend...)
	if len(offers) > 0 {
		manifest, err := r.manifest(id)
		if err != nil {
			return err
		}
		// The offer is recorded before it is sent: a hub that dies in
		// between re-offers nothing, and the totem's timeout settles it;
		// a retained offer (the Sender's) reaches a totem offline now.
		for _, t := range offers {
			errs = append(errs, r.send.Offer(t, id, manifest))
		}
	}
	return errors.Join(errs...)
}

// tally is what tick counts over a job's targets.
type tally struct {
	recent   int // offered in the last minute
	failures int // failed or rolled back
	final    int // in a final state
	queued   []string
	resend   []string // offered, never answered: offered again
}

// count settles the targets of j whose offer timed out, marks the ones
// whose offer is to be sent again, and counts them all.
func (r *Rollout) count(tb *bbolt.Bucket, j *Job, totems map[string]Totem, now time.Time) (tally, error) {
	var c tally
	for _, t := range j.Targets {
		s := totems[t]
		if !s.Offered.IsZero() && !final_(s.State) && now.Sub(s.Offered) > r.timeout {
			s.State, s.Reason, s.Updated = update.StateFailed, ReasonTimeout, now
			totems[t] = s
			if err := put(tb, t, s); err != nil {
				return c, err
			}
		}
		if !s.Offered.IsZero() && now.Sub(s.Offered) < time.Minute {
			c.recent++
		}
		switch {
		case s.State == update.StateFailed || s.State == update.StateRolledBack:
			c.failures++
			c.final++
		case s.State == update.StateCommitted:
			c.final++
		case s.State == update.StateQueued && s.Offered.IsZero():
			c.queued = append(c.queued, t)
		case s.State == update.StateQueued && now.Sub(s.Offered) >= ResendAfter && now.Sub(s.Resent) >= ResendAfter:
			// Offered, never answered: the offer was lost (the hub
			// offline when it went, the totem online since and so
			// without a hello). Not a new offer: the rate does not
			// count it, the totem's Offer is idempotent.
			s.Resent = now
			totems[t] = s
			if err := put(tb, t, s); err != nil {
				return c, err
			}
			c.resend = append(c.resend, t)
		}
	}
	return c, nil
}

func final_(s string) bool { return update.Final(s) }

// withdraw takes the job back from every totem that has not reached a
// final state, in the transaction that ends the job (so no reader sees an
// ended job with totems still queued): the ones never offered fail with
// reason; the ones downloading are returned, to be told to cancel (an
// installed totem finishes its probation: it is judged by its health, not
// cut in the middle).
func withdraw(tx *bbolt.Tx, id, reason string, now time.Time) ([]string, error) {
	_, totems, tb, err := load(tx, id)
	if err != nil {
		return nil, err
	}
	var cancel []string
	for t, s := range totems {
		switch {
		case s.Offered.IsZero():
			s.State, s.Reason, s.Updated = update.StateFailed, reason, now
			if err := put(tb, t, s); err != nil {
				return nil, err
			}
		case s.State == update.StateQueued || s.State == update.StateDownloading:
			cancel = append(cancel, t)
		}
	}
	slices.Sort(cancel)
	return cancel, nil
}

// cancelAll tells totems to give job up.
func (r *Rollout) cancelAll(job string, totems []string) error {
	var errs []error
	for _, t := range totems {
		errs = append(errs, r.send.Cancel(t, job))
	}
	return errors.Join(errs...)
}

// Cancel stops a running job.
func (r *Rollout) Cancel(id string) (*Job, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var j *Job
	var cancel []string
	err := r.db.Update(func(tx *bbolt.Tx) error {
		var err error
		j, _, _, err = load(tx, id)
		if err != nil {
			return err
		}
		if j.State != JobRunning {
			return fmt.Errorf("%w: job %s is %s", ErrInvalid, id, j.State)
		}
		now := r.now().UTC()
		j.State, j.Reason, j.Ended = JobCancelled, ReasonCancelled, now
		if cancel, err = withdraw(tx, id, ReasonCancelled, now); err != nil {
			return err
		}
		return put(tx.Bucket(bucketJobs), id, j)
	})
	if err != nil {
		return nil, err
	}
	return j, r.cancelAll(id, cancel)
}

// Report records what totem says of job. A report from a totem the job
// did not offer to, or about a job that is not there, is refused.
func (r *Rollout) Report(totem string, s update.Status) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.db.Update(func(tx *bbolt.Tx) error {
		_, totems, tb, err := load(tx, s.Job)
		if err != nil {
			return err
		}
		t, ok := totems[totem]
		if !ok || t.Offered.IsZero() {
			return ErrNotTarget
		}
		if final_(t.State) {
			return nil // a final state stays; a repeated report changes nothing
		}
		switch s.State {
		case update.StateDownloading, update.StateInstalled, update.StateCommitted, update.StateRolledBack, update.StateFailed:
		default:
			return fmt.Errorf("%w: state", ErrInvalid)
		}
		t.State, t.Reason, t.Chunk, t.Chunks, t.Updated = s.State, clip(s.Reason), s.Chunk, s.Chunks, r.now().UTC()
		return put(tb, totem, t)
	})
}

// Chunk returns chunk i of job's payload for totem, which must have been
// offered the job and not have finished it. A cancelled or aborted job
// still serves a totem already downloading: it is told to cancel, and a
// chunk it asks for meanwhile is harmless.
func (r *Rollout) Chunk(totem, job string, i int) ([]byte, error) {
	var m *update.Manifest
	err := r.db.View(func(tx *bbolt.Tx) error {
		j, totems, _, err := load(tx, job)
		if err != nil {
			return err
		}
		t, ok := totems[totem]
		if !ok || t.Offered.IsZero() || final_(t.State) {
			return ErrNotTarget
		}
		m, err = update.Decode(j.Manifest)
		return err
	})
	if err != nil {
		return nil, err
	}
	if i < 0 || i >= len(m.Chunks) {
		return nil, fmt.Errorf("%w: chunk %d", ErrInvalid, i)
	}
	f, err := os.Open(r.payloadPath(job))
	if err != nil {
		return nil, fmt.Errorf("rollout: %w", err)
	}
	defer f.Close()
	b := make([]byte, m.ChunkLen(i))
	if _, err := f.ReadAt(b, int64(i)*int64(m.ChunkSize)); err != nil {
		return nil, fmt.Errorf("rollout: %w", err)
	}
	return b, nil
}

// Status returns a job with its totems.
func (r *Rollout) Status(id string) (*Status, error) {
	var st *Status
	err := r.db.View(func(tx *bbolt.Tx) error {
		j, totems, _, err := load(tx, id)
		if err != nil {
			return err
		}
		st = &Status{Job: *j, Totems: totems, Counts: map[string]int{}}
		for _, t := range totems {
			st.Counts[t.State]++
		}
		return nil
	})
	return st, err
}

// Jobs returns every job, oldest first.
func (r *Rollout) Jobs() ([]Job, error) {
	var out []Job
	err := r.eachJob(func(j *Job) {
		j.Manifest = nil
		out = append(out, *j)
	})
	slices.SortFunc(out, func(a, b Job) int { return a.Created.Compare(b.Created) })
	return out, err
}

// eachJob calls fn with every job stored, in the order of their ids.
func (r *Rollout) eachJob(fn func(*Job)) error {
	return r.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketJobs).ForEach(func(_, v []byte) error {
			var j Job
			if err := json.Unmarshal(v, &j); err != nil {
				return err
			}
			fn(&j)
			return nil
		})
	})
}

func (r *Rollout) manifest(id string) ([]byte, error) {
	var b []byte
	err := r.db.View(func(tx *bbolt.Tx) error {
		j, _, _, err := load(tx, id)
		if err == nil {
			b = j.Manifest
		}
		return err
	})
	return b, err
}

func load(tx *bbolt.Tx, id string) (*Job, map[string]Totem, *bbolt.Bucket, error) {
	v := tx.Bucket(bucketJobs).Get([]byte(id))
	tb := tx.Bucket(bucketTotems).Bucket([]byte(id))
	if v == nil || tb == nil {
		return nil, nil, nil, ErrNoJob
	}
	var j Job
	if err := json.Unmarshal(v, &j); err != nil {
		return nil, nil, nil, err
	}
	totems := make(map[string]Totem)
	err := tb.ForEach(func(k, v []byte) error {
		var t Totem
		if err := json.Unmarshal(v, &t); err != nil {
			return err
		}
		totems[string(k)] = t
		return nil
	})
	return &j, totems, tb, err
}

func put(b *bbolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

// clip bounds a totem's reason in the record and in replies.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200]
	}
	return s
}
