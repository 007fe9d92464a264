package broker

import (
	"net"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/time/rate"

	"github.com/aslcns/totem/sync/enroll"
)

// roleEnroll is the enroll user's role (sync/enroll): it is not in the
// registry and can do nothing but publish one enrollment request on its
// own request topic and receive the reply on its own reply topic.
const roleEnroll = "enroll"

// Defaults of the enroll user's connection limits, per minute.
const (
	DefaultEnrollPerSource = 6
	DefaultEnrollGlobal    = 60
	enrollSources          = 4096 // source addresses tracked: past it they start afresh
)

// enrollGate limits the enroll user's connections per source address and
// overall: a code has 60 bits and burns after enroll.MaxAttempts wrong
// tries for a totem, and this keeps even the tries for codes of other
// totems slow.
type enrollGate struct {
	perSource int
	global    *rate.Limiter

	mu      sync.Mutex
	sources map[string]*rate.Limiter

	published sync.Map // *mqtt.Client → struct{}: its one request was made
}

func newEnrollGate(perSource, global int) *enrollGate {
	if perSource <= 0 {
		perSource = DefaultEnrollPerSource
	}
	if global <= 0 {
		global = DefaultEnrollGlobal
	}
	return &enrollGate{perSource: perSource, global: rate.NewLimiter(rate.Every(time.Minute/time.Duration(global)), global),
		sources: make(map[string]*rate.Limiter)}
}

// allow takes a connection of remote (host:port) from both buckets.
func (g *enrollGate) allow(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	g.mu.Lock()
	l := g.sources[host]
	if l == nil {
		if len(g.sources) >= enrollSources {
			g.sources = make(map[string]*rate.Limiter)
		}
		l = rate.NewLimiter(rate.Every(time.Minute/time.Duration(g.perSource)), g.perSource)
		g.sources[host] = l
	}
	ok := l.Allow()
	g.mu.Unlock()
	return ok && g.global.Allow()
}

// admitEnroll decides a connection of the enroll user: its client id
// must carry a request id, it has no Last Will, and it is within the
// limits. Its password is public and not checked; the user is never
// counted towards a lock (anyone could lock enrollment for everyone).
func (h *authHook) admitEnroll(cl *mqtt.Client, pk packets.Packet) (packets.Code, string) {
	if _, ok := enroll.RequestID(cl.ID); !ok {
		return packets.ErrClientIdentifierNotValid, "enroll_client_id"
	}
	if pk.Connect.WillFlag {
		return packets.ErrNotAuthorized, "will_not_allowed"
	}
	if !h.enroll.allow(cl.Net.Remote) {
		return packets.ErrConnectionRateExceeded, "enroll_rate"
	}
	return packets.CodeSuccess, ""
}

// enrollAllowed is the enroll user's ACL: one publish, on its own request
// topic; a subscription to its own reply topic.
func (h *authHook) enrollAllowed(cl *mqtt.Client, topic string, write bool) bool {
	rid, ok := enroll.RequestID(cl.ID)
	if !ok {
		return false
	}
	if !write {
		return topic == enroll.ReplyTopic(rid)
	}
	if topic != enroll.RequestTopic(rid) {
		return false
	}
	_, again := h.enroll.published.LoadOrStore(cl, struct{}{})
	return !again
}
