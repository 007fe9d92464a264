package hub_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/paho"
)

// A totem's operations, a duplicate and a refused gap reach the hub's send
// log with the totem's clock stamps; a console lists and shows it; the
// totem fetches the hub's ledger of its operations.
func TestSendLogAndLedger(t *testing.T) {
	ctx, c := startCentral(t, 30*time.Second, consoleUser("ops"), totemUser("t-log"))
	ck := newConsoleKeys(t)
	c.StartHub(hub.Options{Verifier: ck.verifier})

	// The totem.
	tin := make(chan *paho.Publish, 16)
	tcm := client(ctx, t, c.URL(), c.Creds("t-log"), "t-log", tin,
		protocol.Topic("t-log", protocol.LeafResult), protocol.Topic("t-log", protocol.LeafLedger))
	stamp := &protocol.Stamp{Boot: "boot-7", Mono: 61_000, Wall: time.Date(1970, 1, 1, 0, 1, 1, 0, time.UTC)}
	for _, seq := range []uint64{1, 1, 5} { // applied, duplicate, gap
		sendOp(ctx, t, tcm, protocol.Op{Totem: "t-log", Seq: seq, Created: stamp.Wall, Stamp: stamp})
		r := nextResult(t, tin)
		t.Logf("result seq %d %s %s dup %v", r.Seq, r.Transport.Status, r.Processing.Status, r.Duplicate)
	}

	// The console.
	con := dialConsole(ctx, t, c.URL(), c.Creds("ops"), "ops-2")
	ask := func(name string, args map[string]string) *protocol.Reply {
		t.Helper()
		return con.ask(t, ck.command(t, ck.tech, name, args), name) // the technician's role is enough
	}
	tests := []struct {
		name  string
		cmd   string
		args  map[string]string
		ok    bool
		check func(t *testing.T, data []byte)
	}{
		{"all", "sendlog", map[string]string{"totem": "t-log"}, true, func(t *testing.T, b []byte) {
			var p hub.SendLogPage
			json.Unmarshal(b, &p)
			if len(p.Rows) != 3 || p.Rows[0].Transport != cms.TxRefused || p.Rows[0].Expect != 2 ||
				!p.Rows[1].Duplicate || p.Rows[2].Protocol == "" || p.Rows[2].Stamp == nil || p.Rows[2].Stamp.Boot != "boot-7" {
				t.Fatalf("%+v", p)
			}
		}},
		{"duplicates", "sendlog", map[string]string{"outcome": "duplicate"}, true, func(t *testing.T, b []byte) {
			var p hub.SendLogPage
			json.Unmarshal(b, &p)
			if len(p.Rows) != 1 || p.Rows[0].Seq != 1 {
				t.Fatalf("%+v", p)
			}
		}},
		{"paged", "sendlog", map[string]string{"max": "2"}, true, func(t *testing.T, b []byte) {
			var p hub.SendLogPage
			json.Unmarshal(b, &p)
			if len(p.Rows) != 2 || p.Next != p.Rows[1].N {
				t.Fatalf("%+v", p)
			}
		}},
		{"show", "sendlog_show", map[string]string{"n": "1"}, true, func(t *testing.T, b []byte) {
			var tr cms.Transmission
			json.Unmarshal(b, &tr)
			if tr.Seq != 1 || tr.Processing != cms.TxAccepted || tr.Stamp == nil {
				t.Fatalf("%+v", tr)
			}
		}},
		{"bad outcome", "sendlog", map[string]string{"outcome": "maybe"}, false, nil},
		{"bad date", "sendlog", map[string]string{"from": "ieri"}, false, nil},
		{"bad max", "sendlog", map[string]string{"max": "0"}, false, nil},
		{"bad totem", "sendlog", map[string]string{"totem": "a/b"}, false, nil},
		{"show unknown", "sendlog_show", map[string]string{"n": "99"}, false, nil},
		{"show without n", "sendlog_show", nil, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ask(tt.cmd, tt.args)
			if r.OK != tt.ok {
				t.Fatalf("%+v", r)
			}
			if tt.check != nil {
				tt.check(t, r.Data)
			}
		})
	}

	// The totem asks for the hub's record of its operations.
	b, _ := protocol.Marshal(protocol.LedgerRequest{V: 1, ID: "sync-1", From: 1, Max: 16})
	publish(ctx, t, tcm, protocol.Topic("t-log", protocol.LeafSync), b)
	l, err := protocol.DecodeLedger(next(t, tin).Payload)
	if err != nil || l.ID != "sync-1" || l.LastSeq != 1 || len(l.Results) != 1 || l.Results[0].OpID != fmt.Sprintf("%032x", 1) {
		t.Fatalf("ledger %+v %v", l, err)
	}
}
