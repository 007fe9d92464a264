package hub_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/paho"
)

// A totem replaying one operation 5 000 times (half as a duplicate, half as
// a sequence gap) grows the hub's store by a bounded amount and its log by
// a few lines. Before, every replay was a send log entry (~233 bytes and
// the file growing by 16 MiB) and every gap a log line.
func TestReplaysGrowNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	hubMe, _ := creds.Generate("totemhub", creds.RoleHub)
	tot, _ := creds.Generate("t-replay", creds.RoleTotem)
	users := broker.NewUsers(nil)
	users.Add(hubMe)
	users.Add(tot)
	srv, err := broker.Start(broker.Options{Listen: "127.0.0.1:0", Auth: users})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "cms.db")
	store, err := refcms.Open(path, &refcms.Options{Seed: cms.DemoCards()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var logs lockedBuf
	hctx, hcancel := context.WithCancel(ctx)
	h := hub.New(hub.Options{URL: srv.URL(), ClientID: "hub-r", Username: hubMe.Username, Password: hubMe.Password,
		Backend: store, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	done := make(chan error, 1)
	go func() { done <- h.Run(hctx) }()
	defer func() { hcancel(); <-done }()
	if err := h.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	tcm := client(ctx, t, srv, tot, "t-replay", make(chan *paho.Publish, 1))
	op := func(seq uint64) []byte {
		b, _ := protocol.Marshal(protocol.Op{V: 1, ID: fmt.Sprintf("%032x", seq), Totem: "t-replay", Seq: seq,
			Kind: cms.KindConsent, Payload: consentPayload(), Created: time.Now().UTC()})
		return b
	}
	send := func(b []byte) {
		t.Helper()
		if _, err := tcm.Publish(ctx, &paho.Publish{Topic: protocol.Topic("t-replay", protocol.LeafOp), QoS: 1, Payload: b}); err != nil {
			t.Fatal(err)
		}
	}
	st := h.Stats()
	handled := func() int64 { return st.Applied.Load() + st.Duplicates.Load() + st.Gaps.Load() + st.Dropped.Load() }
	wait := func(n int64) {
		t.Helper()
		for handled() < n {
			select {
			case <-ctx.Done():
				t.Fatalf("the hub handled %d of %d", handled(), n)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	send(op(1))
	wait(1)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	before := fi.Size()
	linesBefore := strings.Count(logs.String(), "\n")

	const replays = 5000
	dup, gap := op(1), op(500) // 500: far past the reorder window, refused at once
	for i := range replays {
		if i%2 == 0 {
			send(dup)
		} else {
			send(gap)
		}
	}
	wait(1 + replays)
	fi, _ = os.Stat(path)
	grown := fi.Size() - before
	lines := strings.Count(logs.String(), "\n") - linesBefore
	t.Logf("%d replays: cms.db grew %d bytes, %d log lines; duplicates %d, gaps %d, dropped %d",
		replays, grown, lines, st.Duplicates.Load(), st.Gaps.Load(), st.Dropped.Load())
	if grown >= 1<<20 {
		t.Errorf("cms.db grew %d bytes", grown)
	}
	if lines > 10 {
		t.Errorf("%d log lines for %d replays:\n%s", lines, replays, logs.String())
	}
	// The hub counts a gap before its refusal's commit: wait for the last.
	want := st.Duplicates.Load() + st.Gaps.Load()
	for {
		rows, _, err := store.SendLog(cms.SendLogFilter{Totem: "t-replay"})
		if err != nil || len(rows) != 3 {
			t.Fatalf("send log %+v, %v", rows, err)
		}
		repeats := int64(rows[0].Repeats + rows[1].Repeats + 2)
		if repeats == want {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("send log counts %d repeats, the hub %d", repeats, want)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
