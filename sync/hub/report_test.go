package hub_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
)

// A console asks the hub for the Reportistica over MQTT 5 request/response.
func TestConsoleReport(t *testing.T) {
	ctx, c := startCentral(t, 20*time.Second, consoleUser("ops"))
	store := c.CMS
	for i := 1; i <= 3; i++ { // two accepted consents, one rejected (unknown kind)
		kind := cms.KindConsent
		if i == 3 {
			kind = "sospensione"
		}
		if _, err := store.Apply(ctx, cms.Op{ID: fmt.Sprintf("%032x", i), Totem: "t-rep", Seq: uint64(i), Kind: kind,
			Payload: synctest.ConsentPayload(), Received: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	ck := newConsoleKeys(t)
	c.StartHub(hub.Options{Verifier: ck.verifier})
	con := dialConsole(ctx, t, c.URL(), c.Creds("ops"), "ops-1")
	rt := con.topic
	var askRaw func(name string, b []byte, resp string) *protocol.Reply
	ask := func(name string, args map[string]string, resp string) *protocol.Reply {
		t.Helper()
		return askRaw(name, ck.command(t, ck.ops, name, args), resp)
	}
	askRaw = func(name string, b []byte, resp string) *protocol.Reply {
		t.Helper()
		con.send(t, b, resp, name)
		r, corr := con.reply(t, 3*time.Second)
		if r != nil && corr != name {
			t.Fatalf("reply %v to %q, want %q", r, corr, name)
		}
		return r
	}
	r := ask("report", map[string]string{"totem": "t-rep"}, rt)
	if r == nil || !r.OK {
		t.Fatalf("report reply %+v", r)
	}
	var rows []cms.ReportRow
	json.Unmarshal(r.Data, &rows)
	acc, rej := 0, 0
	for _, row := range rows {
		acc += row.Accepted
		rej += row.Rejected
	}
	if acc != 2 || rej != 1 {
		t.Fatalf("rows %+v", rows)
	}
	if r := ask("report", map[string]string{"from": "yesterday"}, rt); r == nil || r.OK {
		t.Fatalf("bad date accepted: %+v", r)
	}
	if r := ask("shutdown", nil, rt); r == nil || r.OK {
		t.Fatalf("unknown command: %+v", r)
	}
	// Signed commands only, each once, in role: a technician gets no report.
	unsigned, _ := protocol.Marshal(protocol.Command{V: 1, ID: "0123456789abcdef", Name: "report"})
	if r := askRaw("unsigned", unsigned, rt); r == nil || r.OK || r.Code != cmdsig.CodeUnsigned {
		t.Fatalf("unsigned report: %+v", r)
	}
	if r := askRaw("tech", ck.command(t, ck.tech, "report", nil), rt); r == nil || r.OK || r.Code != cmdsig.CodeOutOfRole {
		t.Fatalf("technician's report: %+v", r)
	}
	once := ck.command(t, ck.ops, "report", nil)
	if r := askRaw("once", once, rt); r == nil || !r.OK {
		t.Fatalf("signed report: %+v", r)
	}
	if r := askRaw("twice", once, rt); r == nil || r.OK || r.Code != cmdsig.CodeReplayed {
		t.Fatalf("replayed report: %+v", r)
	}
	// A response topic that is not a console's reply topic gets nothing.
	if r := ask("report", nil, "totem/v1/t-rep/cmd"); r != nil {
		t.Fatalf("answered on a foreign topic: %+v", r)
	}
}
