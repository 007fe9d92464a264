package uplink

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
)

// refuser stands in front of the real broker on loopback: while refusing,
// it answers every CONNECT with a CONNACK carrying code, as a broker does
// for a client id taken by someone else (0x85), a forbidden user (0x87) or
// a busy server (0x89); otherwise it passes the connection through.
type refuser struct {
	ln       net.Listener
	upstream string
	code     byte
	refusing atomic.Bool
	refusals atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newRefuser(t *testing.T, upstream string, code byte) *refuser {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &refuser{ln: ln, upstream: upstream, code: code, conns: make(map[net.Conn]struct{})}
	f.refusing.Store(true)
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *refuser) URL() string { return "mqtt://" + f.ln.Addr().String() }

// track registers c to be closed at cleanup; false once the listener is
// closed (the cleanup may already have gone through the set).
func (f *refuser) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *refuser) accept() {
	defer f.wg.Done()
	defer func() {
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.conns = nil
		f.mu.Unlock()
	}()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		if !f.track(c) {
			c.Close()
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.serve(c)
		}()
	}
}

func (f *refuser) serve(c net.Conn) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	cp, err := packets.ReadPacket(c)
	if err != nil || cp.Type != packets.CONNECT {
		return
	}
	c.SetReadDeadline(time.Time{})
	if f.refusing.Load() {
		f.refusals.Add(1)
		ack := &packets.Connack{ReasonCode: f.code, Properties: &packets.Properties{}}
		ack.WriteTo(c)
		return
	}
	up, err := net.Dial("tcp", f.upstream)
	if err != nil || !f.track(up) {
		return
	}
	defer up.Close()
	if _, err := cp.WriteTo(up); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		io.Copy(c, up)
		c.Close()
		close(done)
	}()
	io.Copy(up, c)
	up.Close()
	<-done
}

// A refusal that is not about the credentials — the client id taken by a
// console (0x85), a user not authorised for now (0x87) — never stops the
// totem: it asks again, says why it is away, and connects as soon as the
// broker accepts it. Until the precise reason codes, 0x87 stopped it for
// good.
func TestRefusedKeepsReconnecting(t *testing.T) {
	for _, code := range []byte{0x85, 0x87, 0x89} {
		t.Run(fmt.Sprintf("0x%02X", code), func(t *testing.T) {
			r := newRig(t)
			f := newRefuser(t, r.srv.Addr(), code)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			u, errc := r.run(t, ctx, Options{URL: f.URL(),
				RefusedMin: 20 * time.Millisecond, RefusedMax: 40 * time.Millisecond, CredentialsRetry: time.Hour})
			for f.refusals.Load() < 3 {
				select {
				case err := <-errc:
					t.Fatalf("Run returned %v after %d refusals", err, f.refusals.Load())
				case <-ctx.Done():
					t.Fatalf("%d refusals in 15 s", f.refusals.Load())
				case <-time.After(5 * time.Millisecond):
				}
			}
			ref, ok := u.Refused()
			if !ok || ref.Code != int(code) || ref.Reason != reasonText(code) || ref.Count < 1 {
				t.Fatalf("Refused() = %+v, %v while refused with 0x%02X", ref, ok, code)
			}
			f.refusing.Store(false) // the console let go, the hub is free
			awaitRunning(t, ctx, errc, u.Connected, "not connected 15 s after the broker accepted")
			if _, ok := u.Refused(); ok {
				t.Error("Refused() still reports a refusal once connected")
			}
			if last := u.lastRefusal(); last == nil || last.Code != int(code) || last.Count < 3 {
				t.Errorf("telemetry's refusal = %+v, want code 0x%02X, count ≥ 3", last, code)
			}
		})
	}
}

// The delay after a refusal: a definite refusal of the credentials waits
// CredentialsRetry (an hour), anything else doubles from RefusedMin to
// RefusedMax; always within the upper quarter below the ceiling.
func TestRefusalDelay(t *testing.T) {
	u := New(Options{})
	for _, code := range []byte{0x86, 0x8C} {
		for n := 1; n < 20; n++ {
			if d := u.o.refusalDelay(code, n); d < 45*time.Minute || d > time.Hour {
				t.Errorf("0x%02X, refusal %d: %v, want 45m-1h", code, n, d)
			}
		}
	}
	for n := 1; n < 20; n++ { // locked: a probe a day
		if d := u.o.refusalDelay(0x8A, n); d < 18*time.Hour || d > 24*time.Hour {
			t.Errorf("0x8A, refusal %d: %v, want 18h-24h", n, d)
		}
	}
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 15 * time.Minute, 15 * time.Minute}
	for _, code := range []byte{0x80, 0x85, 0x87, 0x89, 0x9F} {
		for i, ceil := range want {
			if d := u.o.refusalDelay(code, i+1); d < ceil*3/4 || d > ceil {
				t.Errorf("0x%02X, refusal %d: %v, want %v-%v", code, i+1, d, ceil*3/4, ceil)
			}
		}
		if d := u.o.refusalDelay(code, 1000); d > 15*time.Minute {
			t.Errorf("0x%02X, refusal 1000: %v, above the cap", code, d)
		}
	}
}
