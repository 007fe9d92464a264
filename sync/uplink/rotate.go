package uplink

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/packets"
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

// rotator checks every RotateCheck, and after each connection's setup,
// whether the secret is due, and rotates it while connected with the
// subscriptions in place (the reply comes on the rotated topic).
func (u *Uplink) rotator(ctx context.Context, cm *autopaho.ConnectionManager) {
	if u.o.Store == nil {
		return
	}
	t := time.NewTicker(u.o.RotateCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-u.rotateWake:
		}
		u.mu.Lock()
		due := !u.cur.RotateAt.IsZero() && !time.Now().Before(u.cur.RotateAt)
		u.mu.Unlock()
		if !due || !u.connected.Load() || u.setUp.Load() != u.conns.Load() {
			continue // not connected, or the connection's subscriptions not yet in place
		}
		if err := u.rotate(ctx, cm); err != nil {
			if errors.Is(err, errRotateAborted) {
				return
			}
			u.log.Warn("credentials rotation failed, the current ones stay; tried again later", "err", err)
		}
	}
}

// killStep, set only in the kill test's build (rotkill.go), kills the
// process at a step.
var killStep func(step string)

func (u *Uplink) step(name string) error {
	if killStep != nil {
		killStep(name)
	}
	if u.o.rotateStep != nil {
		return u.o.rotateStep(name)
	}
	return nil
}

func (u *Uplink) rotate(ctx context.Context, cm *autopaho.ConnectionManager) error {
	u.mu.Lock()
	cur := u.cur
	u.mu.Unlock()
	next, err := creds.Generate(cur.Username, creds.RoleTotem)
	if err != nil {
		return err
	}
	if err := u.step("generated"); err != nil {
		return err
	}
	if err := u.o.Store.SavePending(next); err != nil {
		return err
	}
	if err := u.step("pending"); err != nil {
		return err
	}
	id := rand.Text()
	ch := make(chan *protocol.RotateReply, 1)
	u.mu.Lock()
	u.rotations[id] = ch
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		delete(u.rotations, id)
		u.mu.Unlock()
	}()
	b, _ := protocol.Marshal(protocol.RotateRequest{V: protocol.Version, ID: id, Password: next.Password})
	pctx, cancel := context.WithTimeout(ctx, rotateTimeout)
	defer cancel()
	if _, err := cm.Publish(pctx, &paho.Publish{Topic: protocol.Topic(u.o.Totem, protocol.LeafRotate), QoS: 1, Payload: b}); err != nil {
		return fmt.Errorf("rotate: publish: %w", err)
	}
	if err := u.step("sent"); err != nil {
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
	if err := u.step("replied"); err != nil {
		return err
	}
	next.Expires, next.RotateAt = r.Expires, r.RotateAt
	if err := u.o.Store.SavePending(next); err != nil {
		return err
	}
	if err := u.o.Store.Promote(); err != nil {
		return err
	}
	if err := u.step("promoted"); err != nil {
		return err
	}
	u.mu.Lock()
	u.cur = next
	u.mu.Unlock()
	u.log.Info("credentials rotated: reconnecting with the new secret", "expires", next.Expires, "rotate_at", next.RotateAt)
	u.dropConn()
	return nil
}

// rotated hands the hub's reply to the rotation waiting for it.
func (u *Uplink) rotated(p *paho.Publish) {
	r, err := protocol.DecodeRotateReply(p.Payload)
	if err != nil {
		u.log.Warn("rotation reply dropped", "err", err, "bytes", len(p.Payload))
		return
	}
	u.mu.Lock()
	ch := u.rotations[r.ID]
	delete(u.rotations, r.ID)
	u.mu.Unlock()
	if ch != nil {
		ch <- r
	}
}

// connectPacket puts the current secret in every CONNECT.
func (u *Uplink) connectPacket(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
	u.mu.Lock()
	cp.Username, cp.UsernameFlag = u.cur.Username, true
	cp.Password, cp.PasswordFlag = []byte(u.cur.Password), true
	u.mu.Unlock()
	return cp, nil
}

// attempt dials the broker as autopaho would for mqtt:// and mqtts://,
// and keeps the connection so that a rotation can drop it.
func (u *Uplink) attempt(ctx context.Context, cfg autopaho.ClientConfig, srv *url.URL) (net.Conn, error) {
	d := net.Dialer{Timeout: cfg.ConnectTimeout}
	var (
		conn net.Conn
		err  error
	)
	switch srv.Scheme {
	case "mqtt", "tcp":
		conn, err = d.DialContext(ctx, "tcp", srv.Host)
	case "mqtts", "ssl", "tls":
		conn, err = (&tls.Dialer{NetDialer: &d, Config: cfg.TlsCfg}).DialContext(ctx, "tcp", srv.Host)
	default:
		return nil, fmt.Errorf("uplink: broker url scheme %q", srv.Scheme)
	}
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	u.netConn = conn
	u.mu.Unlock()
	// As autopaho's own dialler: paho writes a packet in several Writes,
	// which a tls.Conn does not keep together.
	return packets.NewThreadSafeConn(conn), nil
}

// dropConn closes the connection: autopaho connects again, with the
// current secret.
func (u *Uplink) dropConn() {
	u.mu.Lock()
	c := u.netConn
	u.mu.Unlock()
	if c != nil {
		c.Close()
	}
}
