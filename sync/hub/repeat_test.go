package hub_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/eclipse/paho.golang/paho"
)

// A totem replaying one operation 5 000 times (half as a duplicate, half as
// a sequence gap) grows the hub's store by a bounded amount and its log by
// a few lines. Before, every replay was a send log entry (~233 bytes and
// the file growing by 16 MiB) and every gap a log line.
func TestReplaysGrowNothing(t *testing.T) {
	ctx, c := startCentral(t, 90*time.Second, totemUser("t-replay"))
	path, store := filepath.Join(c.Dir, "cms.db"), c.CMS
	var logs synctest.Log
	h := c.StartHub(hub.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	tcm := client(ctx, t, c.URL(), c.Creds("t-replay"), "t-replay", make(chan *paho.Publish, 1))
	op := func(seq uint64) []byte { return opBytes(protocol.Op{Totem: "t-replay", Seq: seq}) }
	send := func(b []byte) {
		t.Helper()
		publish(ctx, t, tcm, protocol.Topic("t-replay", protocol.LeafOp), b)
	}
	st := h.Stats()
	handled := func() int64 { return st.Applied.Load() + st.Duplicates.Load() + st.Gaps.Load() + st.Dropped.Load() }
	wait := func(n int64) {
		t.Helper()
		if !until(ctx, func() bool { return handled() >= n }) {
			t.Fatalf("the hub handled %d of %d", handled(), n)
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
	var repeats int64
	if !until(ctx, func() bool {
		rows, _, err := store.SendLog(cms.SendLogFilter{Totem: "t-replay"})
		if err != nil || len(rows) != 3 {
			t.Fatalf("send log %+v, %v", rows, err)
		}
		repeats = int64(rows[0].Repeats + rows[1].Repeats + 2)
		return repeats == want
	}) {
		t.Fatalf("send log counts %d repeats, the hub %d", repeats, want)
	}
}
