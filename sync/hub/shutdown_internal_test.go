package hub

import (
	"bytes"
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
)

// Run leaves no goroutine of its own behind: the subscription started
// after each connection (from paho's callback) is counted with the
// command pools and waited for, and none starts once Run has begun to
// wait. Before, it was a bare go statement Run did not know of.
func TestRunWaitsForItsSubscription(t *testing.T) {
	hubMe, _ := creds.Generate("totemhub", creds.RoleHub)
	users := broker.NewUsers(nil)
	if err := users.Add(hubMe); err != nil {
		t.Fatal(err)
	}
	srv, err := broker.Start(broker.Options{Listen: "127.0.0.1:0", Auth: users})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	store, err := refcms.Open(filepath.Join(t.TempDir(), "cms.db"), &refcms.Options{Seed: cms.DemoCards()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		h := New(Options{URL: srv.URL(), ClientID: "hub-s", Username: hubMe.Username, Password: hubMe.Password, Backend: store})
		done := make(chan error, 1)
		go func() { done <- h.Run(ctx) }()
		if err := h.AwaitConnection(ctx); err != nil {
			t.Fatal(err)
		}
		cancel() // the subscription is likely still waiting for its SUBACK
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if h.cmds.Go(func() {}) {
			t.Fatal("Run returned with its goroutine set open: a subscription after it would be lost to it")
		}
		buf := make([]byte, 1<<20)
		if st := buf[:runtime.Stack(buf, true)]; bytes.Contains(st, []byte("hub.(*Hub).Run.func")) {
			t.Fatalf("a goroutine of Run is still running after it returned:\n%s", st)
		}
	}
}
