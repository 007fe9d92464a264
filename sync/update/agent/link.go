package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/update"
)

// Publisher sends a request on the totem's update_req topic (the
// uplink's PublishUpdateReq).
type Publisher interface {
	PublishUpdateReq(ctx context.Context, b []byte) error
}

// Link carries the update protocol over the totem's MQTT connection: it
// is the Agent's Source, turns the hub's offers and cancels into work for
// Serve, and reports the Agent's states.
type Link struct {
	pub     Publisher
	log     *slog.Logger
	timeout time.Duration

	mu      sync.Mutex
	waiting map[chunkKey]chan *update.Msg
	work    chan *update.Msg // offers and cancels, newest kept
}

type chunkKey struct {
	job   string
	chunk int
}

// NewLink returns a Link. timeout bounds the wait for one chunk (default
// 30 s): a chunk lost with the connection is asked for again.
func NewLink(pub Publisher, log *slog.Logger, timeout time.Duration) *Link {
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Link{pub: pub, log: log, timeout: timeout, waiting: make(map[chunkKey]chan *update.Msg),
		work: make(chan *update.Msg, 8)}
}

// Receive takes a message from the update topic (the uplink's
// OnUpdate). It never waits.
func (l *Link) Receive(b []byte) {
	m, err := update.DecodeMsg(b)
	if err != nil {
		l.log.Warn("update message dropped", "err", err, "bytes", len(b))
		return
	}
	switch m.Kind {
	case update.MsgChunk, update.MsgError:
		l.mu.Lock()
		ch := l.waiting[chunkKey{m.Job, m.Chunk}]
		delete(l.waiting, chunkKey{m.Job, m.Chunk})
		l.mu.Unlock()
		if ch != nil {
			ch <- m // capacity 1, one answer per request
		}
	default:
		select {
		case l.work <- m:
		default:
			l.log.Warn("update offer dropped, agent busy", "job", m.Job) // the hub offers again on hello
		}
	}
}

// ErrRefused is a chunk the hub will not serve (job cancelled, not
// offered to this totem).
var ErrRefused = errors.New("agent: the hub refused the chunk")

// Chunk asks the hub for chunk i of job and waits for it.
func (l *Link) Chunk(ctx context.Context, job string, i int) ([]byte, error) {
	k := chunkKey{job, i}
	ch := make(chan *update.Msg, 1)
	l.mu.Lock()
	l.waiting[k] = ch
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		if l.waiting[k] == ch {
			delete(l.waiting, k)
		}
		l.mu.Unlock()
	}()
	b, _ := protocol.Marshal(update.Req{V: protocol.Version, Kind: update.ReqGet, Job: job, Chunk: i})
	if err := l.pub.PublishUpdateReq(ctx, b); err != nil {
		return nil, err
	}
	t := time.NewTimer(l.timeout)
	defer t.Stop()
	select {
	case m := <-ch:
		if m.Kind == update.MsgError {
			return nil, fmt.Errorf("%w: %s", ErrRefused, m.Error)
		}
		return m.Data, nil
	case <-t.C:
		return nil, fmt.Errorf("agent: chunk %d: no answer in %v", i, l.timeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Report sends s to the hub; a report lost offline is repeated by the
// agent's next state, and the hub's timeout covers the rest.
func (l *Link) Report(s update.Status) {
	b, _ := protocol.Marshal(update.Req{V: protocol.Version, Kind: update.ReqStatus, Status: &s})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.pub.PublishUpdateReq(ctx, b); err != nil {
		l.log.Debug("update status not sent", "job", s.Job, "state", s.State, "err", err)
	}
}

// Serve runs the totem's side of updates until ctx ends: it takes the
// hub's offers, downloads (retrying a failed download every retry), and
// hands a complete payload to apply, which in production holds the
// totem quiet and starts the supervisor (Agent.Apply) outside totemd.
func Serve(ctx context.Context, a *Agent, l *Link, retry time.Duration, apply func(context.Context) error) {
	if retry == 0 {
		retry = 30 * time.Second
	}
	// A download interrupted by a restart goes on.
	a.resume(ctx, retry, apply)
	// The supervisor judges a new version while this process runs it, and
	// cannot reach the hub: its outcome is reported from here once the
	// state file has it.
	var told update.Status
	tell := time.NewTicker(retry)
	defer tell.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tell.C:
			if s, err := a.Status(); err == nil && s != nil && update.Final(s.State) && *s != told {
				a.report(*s)
				told = *s
			}
		case m := <-l.work:
			switch m.Kind {
			case update.MsgOffer:
				if err := a.Offer(m.Job, m.Manifest); err != nil && !errors.Is(err, ErrBusy) {
					a.o.Logger.Warn("update offer refused", "job", m.Job, "err", err)
					continue
				}
				a.resume(ctx, retry, apply)
			case update.MsgCancel:
				if err := a.Cancel(m.Job); err != nil {
					a.o.Logger.Warn("update cancel", "job", m.Job, "err", err)
				}
			}
		}
	}
}

// resume downloads what is pending and applies it.
func (a *Agent) resume(ctx context.Context, retry time.Duration, apply func(context.Context) error) {
	for {
		err := a.Download(ctx)
		if err == nil {
			break
		}
		st, _ := a.Status()
		if ctx.Err() != nil || st == nil || update.Final(st.State) {
			return
		}
		if errors.Is(err, ErrRefused) { // cancelled or withdrawn at the hub
			if err := a.Cancel(st.Job); err != nil {
				a.o.Logger.Warn("update cancel", "job", st.Job, "err", err)
			}
			return
		}
		a.o.Logger.Info("update download interrupted, resuming", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
	}
	if st, _ := a.Status(); st != nil && st.State == update.StateDownloading && st.Chunk == st.Chunks {
		if err := apply(ctx); err != nil {
			a.o.Logger.Error("update apply", "err", err)
		}
	}
}

// Cancel gives up job if it is still downloading; an installed job is
// judged by its health check, never cut in the middle.
func (a *Agent) Cancel(job string) error {
	st, err := a.load()
	if err != nil || st == nil || st.Job != job {
		return err
	}
	if st.Phase != phaseDownloading && st.Phase != phaseDownloaded {
		return nil
	}
	m, err := update.Verify(st.Manifest, a.o.Trusted, a.o.Arch)
	if err != nil {
		return err
	}
	a.o.Logger.Info("update cancelled", "job", job)
	if err := a.fail(st, m, "cancelled by the hub"); !errors.Is(err, errFailed) {
		return err
	}
	return nil
}
