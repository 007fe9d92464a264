package firmware_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/hal/haltest"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

func command(ctx context.Context, t *testing.T, tt *totem, name string, args map[string]string, v any) *protocol.Reply {
	t.Helper()
	r := tt.app.Command(ctx, &protocol.Command{V: 1, ID: name, Name: name, Args: args})
	if r.OK && v != nil {
		if err := json.Unmarshal(r.Data, v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	return r
}

// A technician resends, corrects and cancels a reader request from the
// console; every action is an operation with both outcomes in both send
// logs, and the hub's effect follows.
func TestTechnicianActionsEndToEnd(t *testing.T) {
	ctx, c, tt, lb := startE2E(t, 60*time.Second)
	tt.reader.Insert(testCard())
	tt.run(ctx, readerSteps)
	tt.wait(ctx, "Accolta. Protocollo:")
	tt.reader.Remove()
	entries, _ := tt.box.Recent(1)
	orig := entries[0]
	if orig.Kind != cms.KindReader || !orig.Done || orig.Stamp == nil || orig.Stamp.Boot != "boot-e2e" {
		t.Fatalf("original %+v", orig)
	}
	readers := func() int {
		card, err := c.CMS.Card("6090012345678000")
		if err != nil {
			t.Fatal(err)
		}
		return card.Readers
	}

	// Resend: same op id, the hub repeats the stored result.
	var res firmware.ActionResult
	if r := command(ctx, t, tt, "resend", map[string]string{"id": orig.ID}, &res); !r.OK || res.OpID != orig.ID ||
		res.Protocol != orig.Result.Transport.Protocol || res.Processing != protocol.ProcessingAccepted {
		t.Fatalf("resend %+v %+v", r, res)
	}
	waitSendLog(ctx, t, c, cms.SendLogFilter{Outcome: cms.SendDuplicate}, 1)
	if n := readers(); n != 1 {
		t.Fatalf("readers %d after a resend", n)
	}

	// Correction: a new operation referencing the original.
	if r := command(ctx, t, tt, "correct", map[string]string{"id": orig.ID, "payment": "20261123043"}, &res); !r.OK ||
		res.Kind != cms.KindCorrection || res.Ref != orig.ID || res.Processing != protocol.ProcessingAccepted || res.Seq != orig.Seq+1 {
		t.Fatalf("correct %+v %+v", r, res)
	}
	if n := readers(); n != 1 {
		t.Fatalf("readers %d after a correction", n)
	}
	// Cancellation: the counter goes back.
	if r := command(ctx, t, tt, "cancel", map[string]string{"id": orig.ID, "reason": "doppio acquisto"}, &res); !r.OK ||
		res.Kind != cms.KindCancellation || res.Processing != protocol.ProcessingAccepted {
		t.Fatalf("cancel %+v %+v", r, res)
	}
	if n := readers(); n != 0 {
		t.Fatalf("readers %d after a cancellation", n)
	}
	// The CMS refuses a second cancellation with a code; the totem shows it.
	if r := command(ctx, t, tt, "cancel", map[string]string{"id": orig.ID}, &res); !r.OK ||
		res.Processing != protocol.ProcessingRejected || len(res.Errors) != 1 || res.Errors[0].Code != cms.CodeSuperseded {
		t.Fatalf("second cancel %+v %+v", r, res)
	}
	// The audit keeps all four, with the references; the hub's send log
	// has every transmission with the totem's clock stamps.
	audit, _ := c.CMS.Audit()
	if len(audit) != 4 || audit[0].Ref != "" || audit[1].Ref != orig.ID || audit[2].Ref != orig.ID {
		t.Fatalf("audit %+v", audit)
	}
	rows, _, _ := c.CMS.SendLog(cms.SendLogFilter{Totem: totemID})
	if len(rows) != 5 || slices.ContainsFunc(rows, func(r cms.Transmission) bool { return r.Stamp == nil || r.Stamp.Boot != "boot-e2e" }) {
		t.Fatalf("hub send log %+v", rows)
	}

	// Refusals, before anything is queued.
	pinEvent := enqueue(t, tt.box, cms.KindPINChange, []byte(`{}`), time.Now(), time.Time{})
	refusals := []struct {
		name string
		args map[string]string
		want string
	}{
		{"correct", map[string]string{"id": strings.Repeat("0", 32)}, "not found"},
		{"correct", map[string]string{"id": orig.ID}, "payment="},
		{"correct", map[string]string{"id": pinEvent.ID, "consents": "x=1"}, cms.CodeNotCorrectable},
		{"cancel", map[string]string{"id": pinEvent.ID}, cms.CodeNotCancellable},
		{"cancel", map[string]string{"id": orig.ID, "reason": strings.Repeat("x", 201)}, "reason"},
		{"resend", map[string]string{"id": "nope"}, "not found"},
	}
	for _, rf := range refusals {
		r := command(ctx, t, tt, rf.name, rf.args, nil)
		if r.OK || !strings.Contains(r.Error, rf.want) {
			t.Errorf("%s %v: %+v, want an error with %q", rf.name, rf.args, r, rf.want)
		}
	}

	// Resend of a quarantined entry: back in the queue, sent in its turn.
	var q outbox.Entry
	tt = tt.restart(func(box *outbox.Outbox, now time.Time) {
		q = enqueue(t, box, cms.KindPINChange, []byte(`{}`), now, now.Add(time.Hour))
	})
	tt.connected(ctx)
	if r := command(ctx, t, tt, "resend", map[string]string{"id": q.ID}, &res); !r.OK || strings.HasPrefix(res.State, "quarantine") {
		t.Fatalf("resend of a quarantined entry %+v %+v", r, res)
	}
	haltest.Until(t, ctx, "the requeued entry answered", func() bool { e, _ := tt.box.Get(q.ID); return e.Done })
	if e, _ := tt.box.Get(q.ID); !e.Done || e.Result.Transport.Protocol == "" {
		t.Fatalf("requeued entry never answered: %+v", e)
	}
	finishE2E(t, c, tt, lb)
}

func waitSendLog(ctx context.Context, t *testing.T, c *central, f cms.SendLogFilter, n int) {
	t.Helper()
	haltest.Until(t, ctx, fmt.Sprintf("send log with %d rows for %+v", n, f), func() bool {
		rows, _, err := c.CMS.SendLog(f)
		if err != nil {
			t.Fatal(err)
		}
		return len(rows) >= n
	})
}

// A totem whose record disagrees with the hub's: an entry it keeps in
// quarantine that the hub applied, and an outcome that differs. resync
// adopts the hub's record and reports each difference; a second resync
// finds none.
func TestResyncEndToEnd(t *testing.T) {
	ctx, c, tt, lb := startE2E(t, 60*time.Second)
	tt.consentFlow(ctx)
	tt.wait(ctx, "Accolta. Protocollo:")
	tt.reader.Remove()

	// While the totem is down: its accepted consent is recorded locally
	// as rejected (a wrong outcome), and a new operation is made durable
	// that the hub applies but whose result never comes back; it expires
	// and is quarantined.
	var good, lost outbox.Entry
	tt = tt.restart(func(box *outbox.Outbox, now time.Time) {
		done, _ := box.Recent(1)
		good = done[0]
		wrong := *good.Result
		wrong.Processing = protocol.Processing{Status: protocol.ProcessingRejected, Errors: []protocol.Error{{Code: "CARD_REVOKED", Message: "x"}}}
		if _, _, err := box.Adopt(&wrong); err != nil {
			t.Fatal(err)
		}
		payload, _ := json.Marshal(cms.ConsentRequest{Card: cms.CardRef{Serial: "6090012345678000", CF: "RSSMRA80A01H501U", Expiry: "2030-12-31"},
			Policy: "fse-2020", Consents: []cms.Consent{{Code: "consultazione"}, {Code: "opposizione_pregresso", Given: true}}, Attendance: cms.Attendance{Channel: cms.SelfService}})
		lost = enqueue(t, box, cms.KindConsent, payload, now, now.Add(time.Hour))
		if _, err := c.CMS.Apply(ctx, cms.Op{ID: lost.ID, Totem: totemID, Seq: lost.Seq, Kind: lost.Kind, Payload: payload,
			Created: now, Received: now}); err != nil {
			t.Fatal(err)
		}
	})
	actx, acancel := context.WithTimeout(ctx, 10*time.Second)
	tt.connected(actx)
	acancel()
	var rep firmware.ResyncReport
	if r := command(ctx, t, tt, "resync", nil, &rep); !r.OK {
		t.Fatalf("resync %+v", r)
	}
	if rep.HubLastSeq != lost.Seq || rep.LocalLastSeq != lost.Seq || rep.Checked != 2 || len(rep.Differences) != 2 {
		t.Fatalf("report %+v", rep)
	}
	byWhat := map[string]firmware.Difference{}
	for _, d := range rep.Differences {
		byWhat[d.What] = d
	}
	if d := byWhat[firmware.DiffOutcome]; d.Seq != good.Seq || !d.Adopted || !strings.Contains(d.Totem, "CARD_REVOKED") ||
		!strings.Contains(d.Hub, "accepted") {
		t.Errorf("outcome difference %+v", d)
	}
	if d := byWhat[firmware.DiffPendingApplied]; d.Seq != lost.Seq || !d.Adopted || !strings.Contains(d.Totem, "quarantine") {
		t.Errorf("pending difference %+v", d)
	}
	for _, e := range []outbox.Entry{good, lost} {
		got, err := tt.box.Get(e.ID)
		if err != nil || !got.Done || got.Result.Processing.Status != protocol.ProcessingAccepted || got.Result.Transport.Protocol == "" {
			t.Errorf("entry %d after resync: %+v %v", e.Seq, got.Result, err)
		}
	}
	if r := command(ctx, t, tt, "resync", nil, &rep); !r.OK || len(rep.Differences) != 0 {
		t.Fatalf("second resync %+v %+v", r, rep)
	}
	tt.stop()
	// Without a link, resync says so.
	tt2 := startTotem(t, filepath.Join(c.Dir, "other"), "tcp://127.0.0.1:1", c.totem, tt.log)
	if r := command(ctx, t, tt2, "resync", nil, nil); r.OK || !strings.Contains(r.Error, "not connected") {
		t.Errorf("offline resync %+v", r)
	}
	if r := command(ctx, t, tt2, "resend", map[string]string{"id": fmt.Sprintf("%032x", 1)}, nil); r.OK {
		t.Errorf("resend of nothing %+v", r)
	}
	tt2.stop()
	finishE2E(t, c, tt, lb)
}

// A technician voids an entry the sweep quarantined: its sequence number
// becomes a void at the hub (OP_VOID) and the operation stuck behind the
// hole is applied; the entry stays in quarantine and cannot be voided
// twice.
func TestTechnicianVoidsQuarantined(t *testing.T) {
	ctx, c, tt, lb := startE2E(t, 60*time.Second)
	var stuck, next outbox.Entry
	tt = tt.restart(func(box *outbox.Outbox, now time.Time) {
		stuck = enqueue(t, box, cms.KindPINChange, []byte(`{}`), now, now.Add(time.Hour))
		next = enqueue(t, box, cms.KindPINChange, []byte(`{}`), now, time.Time{})
	})
	tt.connected(ctx)
	var res firmware.ActionResult
	if r := command(ctx, t, tt, "void", map[string]string{"id": stuck.ID}, &res); !r.OK || res.OpID != stuck.ID || res.Seq != stuck.Seq {
		t.Fatalf("void %+v %+v", r, res)
	}
	haltest.Until(t, ctx, "the operation behind the hole answered", func() bool { e, _ := tt.box.Get(next.ID); return e.Done })
	if e, _ := tt.box.Get(next.ID); !e.Done || e.Result.Transport.Protocol == "" {
		t.Fatalf("the operation behind the hole never answered: %+v", e)
	}
	audit, err := c.CMS.Audit()
	if err != nil {
		t.Fatal(err)
	}
	if len(audit) != 2 || audit[0].Seq != stuck.Seq || audit[0].Kind != cms.KindVoid || audit[0].Accepted ||
		audit[1].Seq != next.Seq || audit[1].OpID != next.ID {
		t.Fatalf("hub audit %+v", audit)
	}
	if qs, _ := tt.box.Quarantined(10); len(qs) != 1 || qs[0].ID != stuck.ID {
		t.Fatalf("quarantine after the void %+v", qs)
	}
	if r := command(ctx, t, tt, "void", map[string]string{"id": stuck.ID}, nil); r.OK || !strings.Contains(r.Error, "voided already") {
		t.Fatalf("second void %+v", r)
	}
	finishE2E(t, c, tt, lb)
}
