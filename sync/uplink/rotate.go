package uplink

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/aslcns/totem/internal/clock"
	"github.com/aslcns/totem/internal/mqttconn"
	"github.com/aslcns/totem/internal/waiters"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// Self-rotation of the totem's broker secret, ahead of its expiry
// (Options.Store, Options.RotateAt). The steps, each safe to die after:
//
//  1. a new secret is generated and written to the pending file
//     (creds.Store): the file still holds the old one, which the hub
//     accepts;
//  2. it is sent to the hub on the totem's own rotate topic, over TLS; the
//     hub keeps it beside the old one, both accepted;
//  3. the hub's reply gives its expiry; the pending file is renamed over
//     the file, atomically: the file now holds the new secret, which the
//     hub accepts;
//  4. the connection is dropped, and the login with the new secret that
//     follows makes the hub forget the old one.
//
// On mosquitto's dynamic security, which keeps one secret per user, the
// hub's reply names the totem's other username (protocol.TotemUsernames):
// the new secret is that user's, saved with it in step 3, while the old
// user keeps the old secret; the hub ends the old user once the totem's
// presence says it logged in as the new one (protocol.State.User).
//
// Dying before 3 leaves the old secret in the file, still accepted (a
// later rotation replaces the hub's pending one); dying after 3 leaves the
// new one, accepted until and after its first login. A reply that never
// comes is the same as dying before 3. The pending file a death leaves is
// dropped at the next start. TestRotationSurvivesACrashAtEveryStep stops
// a rotation in process at each step; cmd/totemd's
// TestRotationSurvivesKill9AtEveryStep kills the real totemd there.

// rotateTimeout bounds the wait for the hub's reply.
const rotateTimeout = 30 * time.Second

// errRotateAborted is what a test's rotateStep returns to stop a rotation
// at a step, as a kill would.
var errRotateAborted = errors.New("rotation aborted")

// rotation is the uplink's side of the rotation: the credentials of the
// next CONNECT, the connection a rotation drops, and the rotations waiting
// for the hub's reply. The Uplink wires it (Options.Store set) into
// autopaho's ConnectPacketBuilder and AttemptConnection.
type rotation struct {
	o       *Options
	log     *slog.Logger
	ready   func() bool // connected, the subscriptions in place
	wake    signal      // the subscriptions are in place: check whether one is due
	replies waiters.Set[*protocol.RotateReply]

	mu       sync.Mutex
	cur      creds.File // the credentials of the next CONNECT
	netConn  net.Conn   // the last connection dialled
	connUser string     // the username of the last CONNECT
}

func newRotation(o *Options, log *slog.Logger, ready func() bool) *rotation {
	return &rotation{o: o, log: log, ready: ready, wake: make(signal, 1),
		cur: creds.File{Username: o.Username, Password: o.Password, Role: creds.RoleTotem, RotateAt: o.RotateAt}}
}

// current returns the credentials of the next CONNECT.
func (rt *rotation) current() creds.File {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.cur
}

// run checks every RotateCheck, and after each connection's
// subscriptions, whether the secret is due, and rotates it while connected
// and subscribed (the hub's reply must find its subscription).
func (rt *rotation) run(ctx context.Context, cm *autopaho.ConnectionManager) {
	if rt.o.Store == nil {
		return
	}
	clock.EveryOrWake(ctx, rt.o.RotateCheck, rt.wake, func() bool {
		rt.mu.Lock()
		due := !rt.cur.RotateAt.IsZero() && !time.Now().Before(rt.cur.RotateAt)
		rt.mu.Unlock()
		if !due || !rt.ready() {
			return false
		}
		if err := rt.rotate(ctx, cm); err != nil {
			if errors.Is(err, errRotateAborted) {
				return true
			}
			rt.log.Warn("credentials rotation failed, the current ones stay; tried again later", "err", err)
		}
		return false
	})
}

// killStep, set only in the kill test's build (rotkill.go), kills the
// process at a step.
var killStep func(step string)

func (rt *rotation) step(name string) error {
	if killStep != nil {
		killStep(name)
	}
	if rt.o.rotateStep != nil {
		return rt.o.rotateStep(name)
	}
	return nil
}

func (rt *rotation) rotate(ctx context.Context, cm *autopaho.ConnectionManager) error {
	rt.mu.Lock()
	cur := rt.cur
	rt.mu.Unlock()
	next, err := creds.Generate(cur.Username, creds.RoleTotem)
	if err != nil {
		return err
	}
	if err := rt.step("generated"); err != nil {
		return err
	}
	if err := rt.o.Store.SavePending(next); err != nil {
		return err
	}
	if err := rt.step("pending"); err != nil {
		return err
	}
	id := rand.Text()
	ch, forget := rt.replies.Add(id)
	defer forget()
	b, _ := protocol.Marshal(protocol.RotateRequest{V: protocol.Version, ID: id, Password: next.Password, Username: cur.Username})
	pctx, cancel := context.WithTimeout(ctx, rotateTimeout)
	defer cancel()
	if _, err := cm.Publish(pctx, &paho.Publish{Topic: protocol.Topic(rt.o.Totem, protocol.LeafRotate), QoS: 1, Payload: b}); err != nil {
		return fmt.Errorf("rotate: publish: %w", err)
	}
	if err := rt.step("sent"); err != nil {
		return err
	}
	var r *protocol.RotateReply
	select {
	case <-pctx.Done():
		return errors.New("rotate: no reply from the hub")
	case r = <-ch:
	}
	if !r.OK {
		return fmt.Errorf("rotate: the hub refused: %s", r.Error)
	}
	if r.Username != "" {
		// On mosquitto's dynamic security the new secret belongs to the
		// totem's other username: the old one stays valid meanwhile.
		if id, _ := protocol.UsernameTotem(r.Username); id != rt.o.Totem {
			return errors.New("rotate: the hub's reply names another totem's username")
		}
		next.Username = r.Username
	}
	if err := rt.step("replied"); err != nil {
		return err
	}
	next.Expires, next.RotateAt = r.Expires, r.RotateAt
	if err := rt.o.Store.SavePending(next); err != nil {
		return err
	}
	if err := rt.o.Store.Promote(); err != nil {
		return err
	}
	if err := rt.step("promoted"); err != nil {
		return err
	}
	rt.mu.Lock()
	rt.cur = next
	rt.mu.Unlock()
	rt.log.Info("credentials rotated: reconnecting with the new secret", "expires", next.Expires, "rotate_at", next.RotateAt)
	rt.dropConn()
	return nil
}

// rotated hands the hub's reply to the rotation waiting for it.
func (rt *rotation) rotated(p *paho.Publish) {
	r, err := protocol.DecodeRotateReply(p.Payload)
	if err != nil {
		rt.log.Warn("rotation reply dropped", "err", err, "bytes", len(p.Payload))
		return
	}
	rt.replies.Answer(r.ID, r)
}

// connectPacket puts the current secret in every CONNECT.
func (rt *rotation) connectPacket(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
	rt.mu.Lock()
	rt.connUser = rt.cur.Username
	cp.Username, cp.UsernameFlag = rt.cur.Username, true
	cp.Password, cp.PasswordFlag = []byte(rt.cur.Password), true
	rt.mu.Unlock()
	return cp, nil
}

// user returns the username of the last CONNECT.
func (rt *rotation) user() string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.connUser
}

// attempt dials the broker as autopaho would for mqtt:// and mqtts://,
// and keeps the connection so that a rotation can drop it.
func (rt *rotation) attempt(ctx context.Context, cfg autopaho.ClientConfig, srv *url.URL) (net.Conn, error) {
	conn, err := mqttconn.DialRaw(ctx, srv, cfg.TlsCfg, cfg.ConnectTimeout)
	if err != nil {
		return nil, err
	}
	rt.mu.Lock()
	rt.netConn = conn
	rt.mu.Unlock()
	// Buffered reads, coalesced writes, and thread-safe: paho writes a
	// packet in several Writes, which a tls.Conn does not keep together.
	return mqttconn.Wrap(conn), nil
}

// dropConn closes the connection: autopaho connects again, with the
// current secret.
func (rt *rotation) dropConn() {
	rt.mu.Lock()
	c := rt.netConn
	rt.mu.Unlock()
	if c != nil {
		c.Close()
	}
}
