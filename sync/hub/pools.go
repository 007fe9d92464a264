package hub

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aslcns/totem/internal/goset"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/time/rate"
)

// Console commands and totems' resynchronisation requests are answered
// off paho's delivery goroutine, each kind from its own small pool: a
// totem flooding its sync topic must never take the slots a technician's
// `totemctl sendlog --hub` needs. A totem's sync requests are also rate
// limited (a resync is a few pages in a row, rarely), and what is dropped
// is counted in Stats, never logged: the log is not the flood's to fill.
const (
	cmdPool   = 4 // console commands answered at once
	syncPool  = 2 // ledger requests answered at once (each scans the audit)
	syncBurst = 8 // a resync's pages (resyncWindow/MaxLedger+1) and some
	// syncEvery is one more request allowed per totem per interval.
	syncEvery = time.Second
	// syncTracked bounds the per-totem limiters kept: past it they start
	// afresh (a totem id is authenticated, so the set is the fleet's).
	syncTracked = 8192
)

// pool runs handlers on at most cap(slots) goroutines at once.
type pool struct {
	slots chan struct{}
	set   *goset.Set
}

// try runs handle(p) on a goroutine of the pool, or reports false when
// the pool is busy.
func (pl pool) try(p *paho.Publish, handle func(*paho.Publish)) bool {
	select {
	case pl.slots <- struct{}{}:
	default:
		return false
	}
	if !pl.set.Go(func() {
		defer func() { <-pl.slots }()
		handle(p)
	}) {
		<-pl.slots // the hub is stopping
		return false
	}
	return true
}

// syncGate is a token bucket per totem for its sync requests.
type syncGate struct {
	mu   sync.Mutex
	lims map[string]*rate.Limiter
}

func (g *syncGate) allow(totem string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.lims[totem]
	if l == nil {
		if g.lims == nil || len(g.lims) >= syncTracked {
			g.lims = make(map[string]*rate.Limiter)
		}
		l = rate.NewLimiter(rate.Every(syncEvery), syncBurst)
		g.lims[totem] = l
	}
	return l.Allow()
}

// dispatchRequest hands a console command or a sync request to its pool
// and reports whether p was one.
func (h *Hub) dispatchRequest(p *paho.Publish, totem, leaf string) bool {
	var ok bool
	var dropped *atomic.Int64
	switch {
	case p.Topic == protocol.HubCmdTopic:
		ok, dropped = h.cmdPool.try(p, h.con.command), &h.stats.CommandsDropped
	case leaf == protocol.LeafSync:
		ok, dropped = h.rsy.gate.allow(totem) && h.rsy.pool.try(p, h.rsy.ledger), &h.stats.SyncDropped
	default:
		return false
	}
	if !ok {
		dropped.Add(1)
	}
	return true
}

// limited logs a line that repeats (a totem's refusals, drops, malformed
// messages) at most once a minute per key, with the count of those held
// back: one totem's flood is a few lines, its figures are in Stats.
func (h *Hub) limited(level slog.Level, key, msg string, args ...any) {
	h.logs.Log(h.log, level, key, msg, args...)
}
