package console

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// fakeTotem is the smallest Totem: a fixed telemetry, no sessions.
type fakeTotem struct {
	printed  int
	refunds  []outbox.Entry // the refunds whose receipt was printed
	original []string
	// answer, when set, gives the result of the operation Listen is
	// asked about, as the hub would.
	answer func(id string) outbox.Entry
}

func (*fakeTotem) Telemetry() protocol.Telemetry { return protocol.Telemetry{Uptime: 42} }
func (*fakeTotem) Result(outbox.Entry)           {}
func (f *fakeTotem) Listen(id string) (<-chan outbox.Entry, func()) {
	ch := make(chan outbox.Entry, 1)
	if f.answer != nil {
		ch <- f.answer(id)
	}
	return ch, func() {}
}
func (f *fakeTotem) PrintSendLog(_ context.Context, n int) (any, error) {
	f.printed = n
	return map[string]int{"printed": n}, nil
}

func (f *fakeTotem) PrintRefund(_ context.Context, e outbox.Entry, original string, _ cms.ReaderRequest) (any, error) {
	f.refunds, f.original = append(f.refunds, e), append(f.original, original)
	return map[string]bool{"printed": true}, nil
}

// openBox opens an outbox in a fresh file, closed when the test ends.
func openBox(t *testing.T) *outbox.Outbox {
	t.Helper()
	box, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { box.Close() })
	return box
}

// record records the hub's answer to the entry id with status and
// protocol number prot.
func record(t *testing.T, box *outbox.Outbox, id string, status, prot string) outbox.Entry {
	t.Helper()
	e, err := box.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if e, err = box.Record(&protocol.Result{V: 1, OpID: id, Seq: e.Seq,
		Transport:  protocol.Transport{Status: protocol.TransportReceived, Protocol: prot},
		Processing: protocol.Processing{Status: status}}); err != nil {
		t.Fatal(err)
	}
	return e
}

// accepted enqueues an operation and records the hub's acceptance of it
// with protocol number prot.
func accepted(t *testing.T, box *outbox.Outbox, kind string, payload []byte, prot string) outbox.Entry {
	t.Helper()
	now := time.Now()
	e, err := box.Enqueue(kind, payload, now, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return record(t, box, e.ID, protocol.ProcessingAccepted, prot)
}

func TestCommandReplies(t *testing.T) {
	box := openBox(t)
	ft := &fakeTotem{}
	c := New(Options{Totem: "demo-01", Outbox: box}, ft)
	ctx := context.Background()
	run := func(name string, args map[string]string) *protocol.Reply {
		return c.Command(ctx, &protocol.Command{ID: "c1", Name: name, Args: args})
	}
	if r := run("ping", nil); !r.OK || r.Data != nil || r.ID != "c1" {
		t.Errorf("ping: %+v", r)
	}
	r := run("status", nil)
	var tel protocol.Telemetry
	if !r.OK || json.Unmarshal(r.Data, &tel) != nil || tel.Totem != "demo-01" || tel.Uptime != 42 {
		t.Errorf("status: %+v", r)
	}
	if r := run("sendlog", nil); !r.OK || string(r.Data) != "[]" {
		t.Errorf("sendlog of an empty outbox: %+v", r)
	}
	if r := run("sendlog_print", map[string]string{"n": "3"}); !r.OK || ft.printed != 3 {
		t.Errorf("sendlog_print: %+v, printed %d", r, ft.printed)
	}
	if r := run("sendlog_print", map[string]string{"n": "x"}); r.OK || r.Error == "" {
		t.Errorf("sendlog_print n=x: %+v", r)
	}
	if r := run("jobs", nil); r.OK || r.Error != "no print queue" {
		t.Errorf("jobs without a queue: %+v", r)
	}
	if r := run("resend", map[string]string{"id": "x"}); r.OK || r.Error != ErrNoLink.Error() {
		t.Errorf("resend without a link: %+v", r)
	}
	if r := run("nonsense", nil); r.OK || r.Code != cmdsig.CodeUnknown {
		t.Errorf("unknown command: %+v", r)
	}
	if len(Commands()) != len(commands) {
		t.Error("Commands does not list the table")
	}
}

// A correction's consents name codes of the original; a wrong or missing
// one is answered with the valid codes, so the technician need not guess.
func TestCorrectListsCodes(t *testing.T) {
	orig := []cms.Consent{{Code: "fse_consult", Given: true}, {Code: "fse_pregresso"}}
	for _, s := range []string{"", "x=1", "fse_consult=2", "fse_consult"} {
		_, err := parseConsents(s, orig)
		if err == nil || !strings.Contains(err.Error(), "fse_consult, fse_pregresso") {
			t.Errorf("%q: %v", s, err)
		}
	}
	got, err := parseConsents("fse_pregresso=1, fse_consult=0", orig)
	if err != nil || got[0].Given || !got[1].Given || !orig[0].Given {
		t.Fatalf("%+v %v", got, err)
	}
}
