package uplink

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/outbox"
)

// slowSubacks relays to the broker on the loopback and holds each SUBACK
// the broker sends back for delay: the totem's session setup, which waits
// for each SUBACK before the next SUBSCRIBE, is slow, as on a busy hub.
func slowSubacks(t *testing.T, to string, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(up, c); up.Close() }()
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := up.Read(buf)
					if n > 0 {
						if buf[0] == 0x90 { // SUBACK
							time.Sleep(delay)
						}
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "mqtt://" + ln.Addr().String()
}

// A rotation due when the totem starts waits for the session's
// subscriptions: its request went out as soon as the connection was up,
// before the subscription to the rotated topic on a clean session, and
// the hub's reply was lost on a slow broker — the rotation failed after
// rotateTimeout and was tried again only an hour later (and the kill -9
// tests timed out now and then under load).
func TestRotationWaitsForTheSubscriptions(t *testing.T) {
	dir := t.TempDir()
	reg, err := broker.OpenRegistry(filepath.Join(dir, "users.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	store := &creds.Store{Path: filepath.Join(dir, "creds", totem+".json")}
	first, err := reg.Provision(totem, creds.RoleTotem, store.Path)
	if err != nil {
		t.Fatal(err)
	}
	me, _ := creds.Generate("hub-rot", creds.RoleHub)
	users := broker.NewUsers(reg)
	if err := users.Add(me); err != nil {
		t.Fatal(err)
	}
	srv, err := broker.Start(broker.Options{Listen: "127.0.0.1:0", Auth: users})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cms, err := refcms.Open(filepath.Join(dir, "cms.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cms.Close()
	h := hub.New(hub.Options{URL: srv.URL(), ClientID: me.Username, Username: me.Username, Password: me.Password,
		Accounts: reg, Backend: cms})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hctx, stopHub := context.WithCancel(ctx)
	hubDone := make(chan struct{})
	go func() { h.Run(hctx); close(hubDone) }()
	defer func() { stopHub(); <-hubDone }()
	if err := h.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the subscriptions follow the connection
	box, err := outbox.Open(filepath.Join(dir, "outbox.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()

	u := New(Options{Totem: totem, URL: slowSubacks(t, srv.Addr(), 300*time.Millisecond), Username: first.Username,
		Password: first.Password, Outbox: box, Logger: slog.New(slog.DiscardHandler), Store: store,
		RotateAt: time.Now().Add(-time.Second)})
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { u.Run(rctx); close(done) }()
	defer func() { stop(); <-done }()
	// Well under rotateTimeout (30 s): the first attempt must succeed.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if f, err := store.Load(); err == nil && f.Password != first.Password {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rotation due at the start did not complete in 10 s (hub recorded %d)", h.Rotations())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
