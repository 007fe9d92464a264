package console

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// TestRefundCommand: refund names a reader request the totem keeps and
// queues a refund that references it (with its protocol number and the
// reader fee, never the citizen's data), then prints its receipt — unless
// the CMS refused it. What the totem can tell at once is refused before
// anything is queued.
func TestRefundCommand(t *testing.T) {
	reader, _ := json.Marshal(cms.ReaderRequest{Card: cms.CardRef{Serial: "6090012345678000", CF: "RSSMRA80A01H501U"},
		Attendance: cms.Attendance{Channel: cms.SelfService}, Payment: cms.Payment{Reference: "PAG-1", AmountCents: cms.ReaderFeeCents}})
	tests := []struct {
		name    string
		kind    string // of the original
		args    func(orig string) map[string]string
		outcome string // the hub's answer: accepted, rejected, "" none yet
		wantErr string
		printed bool
	}{
		{name: "accepted and printed", kind: cms.KindReader, outcome: protocol.ProcessingAccepted, printed: true},
		{name: "provisional and printed", kind: cms.KindReader, printed: true},
		{name: "refused by the CMS: no receipt", kind: cms.KindReader, outcome: protocol.ProcessingRejected},
		{name: "not a reader request", kind: cms.KindConsent, wantErr: cms.CodeNotRefundable},
		{name: "unknown operation", kind: cms.KindReader, args: func(string) map[string]string { return map[string]string{"id": strings.Repeat("e", 32)} },
			wantErr: "not found"},
		{name: "reason too long", kind: cms.KindReader,
			args: func(o string) map[string]string {
				return map[string]string{"id": o, "reason": strings.Repeat("x", 201)}
			},
			wantErr: "reason"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			box := openBox(t)
			orig := accepted(t, box, tc.kind, reader, "261123000000001")
			ft := &fakeTotem{}
			if tc.outcome != "" {
				ft.answer = func(id string) outbox.Entry {
					e, _ := box.Get(id)
					e, err := box.Record(&protocol.Result{V: 1, OpID: id, Seq: e.Seq,
						Transport:  protocol.Transport{Status: protocol.TransportReceived, Protocol: "261123000000002"},
						Processing: protocol.Processing{Status: tc.outcome}})
					if err != nil {
						t.Error(err)
					}
					return e
				}
			}
			c := New(Options{Totem: "demo-01", Outbox: box, ResultWait: time.Millisecond, QueuedTTL: time.Hour}, ft)
			args := map[string]string{"id": orig.ID, "reason": "richiesta annullata"}
			if tc.args != nil {
				args = tc.args(orig.ID)
			}
			r := c.Command(context.Background(), &protocol.Command{ID: "c1", Name: "refund", Args: args})
			recent, _ := box.Recent(10)
			if tc.wantErr != "" {
				if r.OK || !strings.Contains(r.Error, tc.wantErr) || len(recent) != 1 || len(ft.refunds) != 0 {
					t.Fatalf("reply %+v, outbox %d entries, printed %d", r, len(recent), len(ft.refunds))
				}
				return
			}
			var got RefundResult
			if !r.OK || json.Unmarshal(r.Data, &got) != nil || got.Kind != cms.KindRefund || got.Ref != orig.ID {
				t.Fatalf("reply %+v", r)
			}
			e, err := box.Get(got.OpID)
			if err != nil {
				t.Fatal(err)
			}
			var req cms.RefundRequest
			if err := json.Unmarshal(e.Payload, &req); err != nil || req != (cms.RefundRequest{Ref: orig.ID, Protocol: "261123000000001",
				AmountCents: cms.ReaderFeeCents, Reason: "richiesta annullata"}) {
				t.Fatalf("refund payload %s: %v", e.Payload, err)
			}
			if printed := len(ft.refunds) == 1; printed != tc.printed || printed && (ft.refunds[0].ID != e.ID || ft.original[0] != "261123000000001") {
				t.Fatalf("printed %+v %v, want %v", ft.refunds, ft.original, tc.printed)
			}
			if got.Receipt == nil == tc.printed {
				t.Fatalf("receipt in the reply: %+v", got)
			}
		})
	}
}

// The send log lists an operation purged after the retention as
// "purged", with its outcome and no payload.
func TestSendLogShowsPurged(t *testing.T) {
	box := openBox(t)
	accepted(t, box, cms.KindConsent, []byte(`{"card":{"cf":"RSSMRA80A01H501U"}}`), "261123000000001")
	if n, err := box.Purge(time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("purge %d %v", n, err)
	}
	c := New(Options{Totem: "demo-01", Outbox: box}, &fakeTotem{})
	r := c.Command(context.Background(), &protocol.Command{ID: "c1", Name: "sendlog"})
	var rows []protocol.SendLogRow
	if !r.OK || json.Unmarshal(r.Data, &rows) != nil || len(rows) != 1 || rows[0].State != "purged" ||
		rows[0].Protocol != "261123000000001" || strings.Contains(string(r.Data), "RSSMRA") {
		t.Fatalf("sendlog %s", r.Data)
	}
}
