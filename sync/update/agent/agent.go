// Package agent is the totem's side of an update: it takes a signed
// bundle's manifest, downloads the payload in chunks (each checked against
// the manifest as it arrives, the chunk index persisted so a restart
// resumes where it stopped), waits until no citizen is being served,
// installs through an Installer, and commits only after the new version
// passes its health check within a window; otherwise it reinstalls the
// version that ran before and reports why.
//
// The work is split in two because the process that downloads is the one
// being replaced: Download runs in totemd; Apply runs in a supervisor that
// outlives totemd's restart (production: `totemd update-apply`, started as
// root by the totem-update.path unit, see deploy/systemd), so an update
// that crashes at start or never connects is still rolled back. Both read
// and write one state file, so either may stop at any point and resume.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/aslcns/totem/internal/atomicfile"
	"github.com/aslcns/totem/internal/clock"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/update"
)

// Source fetches chunk i of a job's payload (production: over MQTT from
// the hub).
type Source interface {
	Chunk(ctx context.Context, job string, i int) ([]byte, error)
}

// Installer installs and restarts. Install keeps what Rollback needs to
// bring back the version that ran before it; Commit makes the installed
// version the one a later Rollback returns to.
type Installer interface {
	Running() (string, error)                                           // the version running now
	Install(ctx context.Context, path string, m *update.Manifest) error // install path, restart into it
	Rollback(ctx context.Context) error                                 // reinstall the previous version, restart into it
	Commit(ctx context.Context) error                                   // the installed version passed its health check
}

// Health reports whether version runs and passed its health check: the
// service ready, devices probed, the uplink connected and one telemetry
// published. reason says what is missing.
type Health interface {
	Healthy(ctx context.Context, version string) (ok bool, reason string)
}

// Quiet is the totem's idle signal. Hold succeeds only while no citizen
// is served, and keeps a session from starting until release: checking
// idleness and then restarting would leave a window in which a citizen
// starts a session the restart cuts.
type Quiet interface {
	Hold() (release func(), ok bool)
}

// Options configure an Agent.
type Options struct {
	Dir       string             // the agent's state: state.json and payload.part
	Trusted   []cmdsig.PublicKey // ops keys that may sign bundles
	Arch      string             // this totem's Debian architecture
	Source    Source
	Installer Installer
	Health    Health
	Quiet     Quiet
	Report    func(update.Status) // to the hub; may be nil
	Logger    *slog.Logger

	// HealthWindow is how long a new version has to pass its health
	// check (default 5 minutes); Poll how often Apply looks at its
	// health and at the totem's idleness (default 2 s).
	HealthWindow time.Duration
	Poll         time.Duration
	// ChunkTries is how many times a chunk failing its digest is asked
	// for again before the update fails (default 3).
	ChunkTries int
	Now        func() time.Time
}

// Phases of the state file.
const (
	phaseDownloading = "downloading"
	phaseDownloaded  = "downloaded"
	phaseInstalling  = "installing" // Install called: on probation until Deadline
	phaseDone        = "done"       // State says how it ended
)

type state struct {
	Job      string          `json:"job"`
	Manifest json.RawMessage `json:"manifest"`
	Phase    string          `json:"phase"`
	Next     int             `json:"next"`               // chunks held
	Previous string          `json:"previous,omitempty"` // the version that ran before Install
	Deadline time.Time       `json:"deadline,omitzero"`  // end of the probation
	Started  time.Time       `json:"started,omitzero"`   // of the probation: Install called
	State    string          `json:"state,omitempty"`    // when done
	Reason   string          `json:"reason,omitempty"`
}

// Agent runs one update at a time.
type Agent struct {
	o Options
}

// ErrBusy is Offer's answer while another job is under way.
var ErrBusy = errors.New("agent: another update is under way")

// New returns an Agent.
func New(o Options) *Agent {
	if o.HealthWindow == 0 {
		o.HealthWindow = 5 * time.Minute
	}
	if o.Poll == 0 {
		o.Poll = 2 * time.Second
	}
	if o.ChunkTries == 0 {
		o.ChunkTries = 3
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Agent{o: o}
}

func (a *Agent) statePath() string   { return filepath.Join(a.o.Dir, "state.json") }
func (a *Agent) payloadPath() string { return filepath.Join(a.o.Dir, "payload.part") }

// Offer starts job with the signed manifest b. A manifest that does not
// verify is refused (and reported failed); the same job offered again is
// a no-op, so the hub may repeat its offer.
func (a *Agent) Offer(job string, b []byte) error {
	st, err := a.load()
	if err != nil {
		return err
	}
	if st != nil && st.Job == job {
		// The hub offers again a job it has no final state for: the
		// outcome the supervisor reached while totemd restarted, or a
		// report lost offline, is said again.
		if s, err := a.Status(); err == nil && s != nil && update.Final(s.State) {
			a.report(*s)
		}
		return nil
	}
	if st != nil && st.Phase != phaseDone {
		return ErrBusy
	}
	m, err := update.Verify(b, a.o.Trusted, a.o.Arch)
	if err != nil {
		a.report(update.Status{Job: job, State: update.StateFailed, Reason: err.Error()})
		return err
	}
	if running, err := a.o.Installer.Running(); err == nil && running == m.Version {
		a.report(update.Status{Job: job, Version: m.Version, State: update.StateCommitted, Reason: "already running"})
		return a.save(&state{Job: job, Manifest: b, Phase: phaseDone, State: update.StateCommitted})
	}
	if err := os.Remove(a.payloadPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("agent: %w", err)
	}
	return a.save(&state{Job: job, Manifest: b, Phase: phaseDownloading})
}

// Download fetches the missing chunks of the offered job, from the chunk
// the state file names. It returns nil once the payload is complete and
// checked (or when there is nothing to download), an error when the
// source fails (call it again: it resumes).
func (a *Agent) Download(ctx context.Context) error {
	st, m, err := a.current()
	if err != nil || st == nil || st.Phase != phaseDownloading {
		return err
	}
	f, err := os.OpenFile(a.payloadPath(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer f.Close()
	for st.Next < len(m.Chunks) {
		i := st.Next
		var data []byte
		for try := 1; ; try++ {
			data, err = a.o.Source.Chunk(ctx, st.Job, i)
			if err != nil {
				return fmt.Errorf("agent: chunk %d: %w", i, err)
			}
			if err = m.CheckChunk(i, data); err == nil {
				break
			}
			a.o.Logger.Warn("update chunk refused", "job", st.Job, "chunk", i, "try", try, "err", err)
			if try == a.o.ChunkTries {
				return a.fail(st, m, err.Error())
			}
		}
		if _, err := f.WriteAt(data, int64(i)*int64(m.ChunkSize)); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		// The index is persisted after the chunk is on disk: a crash in
		// between fetches the chunk again, never skips it.
		st.Next = i + 1
		if err := a.save(st); err != nil {
			return err
		}
		a.report(update.Status{Job: st.Job, Version: m.Version, State: update.StateDownloading, Chunk: st.Next, Chunks: len(m.Chunks)})
	}
	if err := f.Truncate(m.Size); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if err := m.CheckPayload(f); err != nil {
		// Every chunk matched, so the file changed under us: start over.
		st.Next = 0
		a.o.Logger.Warn("update payload refused, downloading again", "job", st.Job, "err", err)
		if serr := a.save(st); serr != nil {
			return serr
		}
		return err
	}
	st.Phase = phaseDownloaded
	return a.save(st)
}

// Apply installs a downloaded payload once the totem is quiet, waits for
// the new version's health check and commits it, or rolls back. It
// resumes a probation a restart interrupted. It returns once the update
// is done (or ctx ends), and reports the outcome.
func (a *Agent) Apply(ctx context.Context) error {
	st, m, err := a.current()
	if err != nil || st == nil {
		return err
	}
	if st.Phase == phaseDownloaded {
		if err := a.install(ctx, st, m); err != nil {
			return err
		}
	}
	if st.Phase != phaseInstalling {
		return nil
	}
	return a.probation(ctx, st, m)
}

func (a *Agent) install(ctx context.Context, st *state, m *update.Manifest) error {
	release, err := a.hold(ctx)
	if err != nil {
		return err
	}
	defer release()
	prev, err := a.o.Installer.Running()
	if err != nil {
		return a.fail(st, m, "running version unknown: "+err.Error())
	}
	// Checked again here: the supervisor that installs may not be the
	// process that downloaded (production: root, after the totem user).
	if err := a.checkPayload(m); err != nil {
		return a.fail(st, m, err.Error())
	}
	// Probation is recorded before Install: if the supervisor dies inside
	// it, the next Apply still judges the new version and can roll back.
	now := a.o.Now()
	st.Phase, st.Previous, st.Started, st.Deadline = phaseInstalling, prev, now, now.Add(a.o.HealthWindow)
	if err := a.save(st); err != nil {
		return err
	}
	if err := a.o.Installer.Install(ctx, a.payloadPath(), m); err != nil {
		a.o.Logger.Error("update install failed, rolling back", "job", st.Job, "version", m.Version, "err", err)
		return a.rollback(ctx, st, m, "install: "+err.Error())
	}
	a.o.Logger.Info("update installed, on probation", "job", st.Job, "version", m.Version, "previous", prev, "until", st.Deadline)
	a.report(update.Status{Job: st.Job, Version: m.Version, State: update.StateInstalled})
	return nil
}

// hold waits until the totem is quiet and holds it.
func (a *Agent) hold(ctx context.Context) (release func(), err error) {
	held := func() (ok bool) {
		release, ok = a.o.Quiet.Hold()
		return ok
	}
	if !clock.NowAndEvery(ctx, a.o.Poll, held) {
		return nil, ctx.Err()
	}
	return release, nil
}

func (a *Agent) probation(ctx context.Context, st *state, m *update.Manifest) error {
	t := time.NewTicker(a.o.Poll)
	defer t.Stop()
	why := "no health check"
	for {
		ok, reason := a.o.Health.Healthy(ctx, m.Version)
		if ok {
			if err := a.o.Installer.Commit(ctx); err != nil {
				return fmt.Errorf("agent: commit %s: %w", m.Version, err)
			}
			st.Phase, st.State, st.Reason = phaseDone, update.StateCommitted, ""
			if err := a.save(st); err != nil {
				return err
			}
			a.cleanup()
			a.o.Logger.Info("update committed", "job", st.Job, "version", m.Version)
			a.report(update.Status{Job: st.Job, Version: m.Version, State: update.StateCommitted})
			return nil
		}
		if reason != "" {
			why = reason
		}
		if !a.o.Now().Before(st.Deadline) {
			return a.rollback(ctx, st, m, fmt.Sprintf("health check not passed in %v: %s", a.o.HealthWindow, why))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (a *Agent) rollback(ctx context.Context, st *state, m *update.Manifest, reason string) error {
	if err := a.o.Installer.Rollback(ctx); err != nil {
		// Still on probation: the next Apply tries again.
		a.o.Logger.Error("update rollback failed", "job", st.Job, "previous", st.Previous, "err", err)
		return fmt.Errorf("agent: rollback to %s: %w", st.Previous, err)
	}
	st.Phase, st.State, st.Reason = phaseDone, update.StateRolledBack, reason
	if err := a.save(st); err != nil {
		return err
	}
	a.cleanup()
	a.o.Logger.Warn("update rolled back", "job", st.Job, "version", m.Version, "previous", st.Previous, "reason", reason)
	a.report(update.Status{Job: st.Job, Version: m.Version, State: update.StateRolledBack, Reason: reason})
	return nil
}

func (a *Agent) fail(st *state, m *update.Manifest, reason string) error {
	st.Phase, st.State, st.Reason = phaseDone, update.StateFailed, reason
	if err := a.save(st); err != nil {
		return err
	}
	a.cleanup()
	a.report(update.Status{Job: st.Job, Version: m.Version, State: update.StateFailed, Reason: reason})
	return fmt.Errorf("%w: %s: %s", errFailed, st.Job, reason)
}

// errFailed is fail's answer once the failure is recorded.
var errFailed = errors.New("agent: update failed")

// Status returns the state of the last job, nil if there was none.
func (a *Agent) Status() (*update.Status, error) {
	st, m, err := a.current()
	if err != nil || st == nil {
		return nil, err
	}
	s := &update.Status{Job: st.Job, Version: m.Version, Reason: st.Reason, Chunks: len(m.Chunks)}
	switch st.Phase {
	case phaseDownloading:
		s.State, s.Chunk = update.StateDownloading, st.Next
	case phaseDownloaded:
		s.State, s.Chunk = update.StateDownloading, len(m.Chunks)
	case phaseInstalling:
		s.State = update.StateInstalled
	default:
		s.State = st.State
	}
	return s, nil
}

// Installed returns when the version on probation was installed (zero
// when none is): a health report from before it is the old version's.
func (a *Agent) Installed() time.Time {
	st, err := a.load()
	if err != nil || st == nil || st.Phase != phaseInstalling {
		return time.Time{}
	}
	return st.Started
}

func (a *Agent) checkPayload(m *update.Manifest) error {
	f, err := os.Open(a.payloadPath())
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer f.Close()
	return m.CheckPayload(f)
}

func (a *Agent) cleanup() {
	if err := os.Remove(a.payloadPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.o.Logger.Warn("update payload not removed", "err", err)
	}
}

func (a *Agent) report(s update.Status) {
	if a.o.Report != nil {
		a.o.Report(s)
	}
}

func (a *Agent) current() (*state, *update.Manifest, error) {
	st, err := a.load()
	if err != nil || st == nil {
		return nil, nil, err
	}
	// Verified again: the state file is the totem user's, and the
	// supervisor runs as root.
	m, err := update.Verify(st.Manifest, a.o.Trusted, a.o.Arch)
	if err != nil {
		return nil, nil, fmt.Errorf("agent: state manifest: %w", err)
	}
	return st, m, nil
}

func (a *Agent) load() (*state, error) {
	b, err := os.ReadFile(a.statePath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("agent: %s: not a state file", a.statePath())
	}
	return &st, nil
}

// save writes the state atomically: temporary file, fsync, rename.
func (a *Agent) save(st *state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if err := os.MkdirAll(a.o.Dir, 0o700); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if err := atomicfile.Write(a.statePath(), b, 0o600, ".state-*"); err != nil {
		return fmt.Errorf("agent: save state: %w", err)
	}
	return nil
}
