package hub_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/paho"
)

// demo-02 sends operations under the ids demo-01 will use next: each
// totem's operations are applied exactly once and answered, neither
// answers for the other. Before, the hub deduplicated by id alone and
// refused demo-01's two SEQ_REUSED, for good, with its sequence never
// consumed; and an operation held for a gap hid another totem's with the
// same id.
func TestForeignIDsThroughTheHub(t *testing.T) {
	ctx, c := startCentral(t, 30*time.Second, totemUser("demo-01"), totemUser("demo-02"))
	c.StartHub(hub.Options{})
	type totem struct {
		send    func(id string, seq uint64)
		results chan *paho.Publish
	}
	totems := map[string]*totem{}
	for _, name := range []string{"demo-01", "demo-02"} {
		in := make(chan *paho.Publish, 16)
		cm := client(ctx, t, c.URL(), c.Creds(name), name, in, protocol.Topic(name, protocol.LeafResult))
		totems[name] = &totem{results: in, send: func(id string, seq uint64) {
			sendOp(ctx, t, cm, protocol.Op{ID: id, Totem: name, Seq: seq})
		}}
	}
	result := func(name string) *protocol.Result {
		t.Helper()
		return nextResult(t, totems[name].results)
	}
	id := func(n int) string { return fmt.Sprintf("%032x", 0xd01_0000+n) } // demo-01's ids
	one, two := totems["demo-01"], totems["demo-02"]

	// demo-02 first, with demo-01's next two ids.
	for seq := uint64(1); seq <= 2; seq++ {
		two.send(id(int(seq)), seq)
		if r := result("demo-02"); r.Seq != seq || r.Processing.Status != protocol.ProcessingAccepted || r.Duplicate {
			t.Fatalf("demo-02 seq %d: %+v", seq, r)
		}
	}
	// demo-01's seq 4 arrives before its 3 and is held a moment; demo-02
	// uses its id meanwhile, and is answered for its own operation.
	for seq := uint64(1); seq <= 2; seq++ {
		one.send(id(int(seq)), seq)
		if r := result("demo-01"); r.Seq != seq || r.Processing.Status != protocol.ProcessingAccepted || r.Duplicate {
			t.Fatalf("demo-01 seq %d: %+v", seq, r)
		}
	}
	one.send(id(4), 4)
	// Time for the hub to hold it (well within its 100 ms reorder window);
	// on a slow machine it may not be held yet, and the check is weaker,
	// never wrong.
	time.Sleep(30 * time.Millisecond)
	two.send(id(4), 3)
	if r := result("demo-02"); r.Seq != 3 || r.Processing.Status != protocol.ProcessingAccepted || r.Duplicate {
		t.Fatalf("demo-02 seq 3: %+v", r)
	}
	one.send(id(3), 3)
	got := map[uint64]*protocol.Result{}
	for len(got) < 2 {
		r := result("demo-01")
		if r.Transport.Status == protocol.TransportRefused {
			continue // seq 4 held past the window: refused for the gap, sent again below
		}
		got[r.Seq] = r
		if r.Seq == 3 && got[4] == nil {
			one.send(id(4), 4)
		}
	}
	for seq, r := range got {
		if r.Processing.Status != protocol.ProcessingAccepted || r.OpID != id(int(seq)) {
			t.Fatalf("demo-01 seq %d: %+v", seq, r)
		}
	}
	for name, want := range map[string]uint64{"demo-01": 4, "demo-02": 3} {
		if last, _ := c.CMS.LastSeq(name); last != want {
			t.Errorf("%s last seq %d, want %d", name, last, want)
		}
	}
	audit, _ := c.CMS.Audit()
	if len(audit) != 7 {
		t.Errorf("%d audit records, want 7 (each operation once)", len(audit))
	}
}
