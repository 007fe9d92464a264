package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/protocol"
)

// cmd … status and jobs print tables by default and the raw reply with
// --json; other commands print their JSON.
func TestRenderReply(t *testing.T) {
	at := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	status, _ := json.Marshal(protocol.Telemetry{V: 1, Totem: "demo-01", At: at, Uptime: 3723,
		Queue:   protocol.Queue{Depth: 2, OldestSeq: 7, Oldest: at, LastSeq: 8},
		Last:    &protocol.Outcome{OpID: "op", Seq: 6, Kind: "consent", Protocol: "P-6", Transport: "received", Processing: "accepted", At: at},
		Devices: map[string]string{"printer": "paper_out", "card": "ok"},
		Storage: &protocol.Storage{Pending: 2, Bytes: 65536, Fraction: 0.125},
		Refused: map[string]uint64{"unsigned": 3}})
	jobs, _ := json.Marshal([]protocol.PrintJob{{ID: 4, OpID: "op", Title: "Consensi FSE", State: "waiting", Attempts: 2, Copies: 1,
		LastErr: "paper out", Created: at}})
	for _, tt := range []struct {
		name  string
		data  []byte
		json  bool
		wants []string
	}{
		{"status", status, false, []string{"totem ", "demo-01", "uptime ", "1h2m3s", "2 waiting, last seq 8, oldest seq 7",
			"seq 6  consent  received/accepted  P-6", "card=ok printer=paper_out", "12% of quota, 2 pending", "unsigned=3"}},
		{"jobs", jobs, false, []string{"ID  STATE ", "4   waiting  2 ", "Consensi FSE", "paper out"}},
		{"status", status, true, []string{string(status)}},
		{"jobs", jobs, true, []string{string(jobs)}},
		{"sendlog", []byte(`[{"seq":1}]`), false, []string{`[{"seq":1}]`}},
		{"ping", nil, false, []string{"ok"}},
		{"jobs", []byte(`[]`), false, []string{"no print jobs"}},
	} {
		var b bytes.Buffer
		if err := renderReply(&b, tt.name, tt.data, tt.json); err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.wants {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s (json %v) lacks %q:\n%s", tt.name, tt.json, w, b.String())
			}
		}
		if !tt.json && tt.data != nil && (tt.name == "status" || tt.name == "jobs") && strings.Contains(b.String(), "{") {
			t.Errorf("%s: JSON in the table:\n%s", tt.name, b.String())
		}
	}
	if err := renderReply(&bytes.Buffer{}, "status", []byte("{bad"), false); err == nil {
		t.Error("a malformed status was printed")
	}
}

// A variation the CMS rejected fails the command (a non-zero exit), with
// the codes; an accepted or pending one does not.
func TestActionFailed(t *testing.T) {
	rej := actionRow{OpID: "op", Kind: "cancellation", Processing: protocol.ProcessingRejected,
		Errors: []protocol.Error{{Code: "REF_SUPERSEDED", Message: "già annullata"}}}
	if err := actionFailed("cancel", rej); err == nil || !strings.Contains(err.Error(), "REF_SUPERSEDED") {
		t.Errorf("rejected: %v", err)
	}
	if err := actionFailed("void", actionRow{Processing: protocol.ProcessingRejected, Errors: []protocol.Error{{Code: "OP_VOID"}}}); err != nil {
		t.Errorf("void: %v", err)
	}
	for _, p := range []string{protocol.ProcessingAccepted, protocol.ProcessingPending, ""} {
		if err := actionFailed("cancel", actionRow{Processing: p}); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
}
