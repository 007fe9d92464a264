package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/aslcns/totem/sync/protocol"
)

// The status table shows how full each outbox is, the alarm and the
// quarantine; a totem that sent no storage report shows "-".
func TestStatusOutboxColumn(t *testing.T) {
	rows := []Row{
		{Totem: "t-full", Status: "online", Storage: &protocol.Storage{Pending: 850, MaxPending: 1000, Fraction: 0.85,
			Alarm: true, Quarantined: 2}},
		{Totem: "t-ok", Status: "online", Storage: &protocol.Storage{Pending: 3, MaxPending: 1000, Fraction: 0.003}},
		{Totem: "t-free", Status: "online", Storage: &protocol.Storage{Pending: 3}},
		{Totem: "t-old", Status: "offline"},
	}
	var b bytes.Buffer
	if err := print(&b, rows, "table"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if !strings.Contains(lines[0], "OUTBOX") {
		t.Fatalf("header %q", lines[0])
	}
	want := map[string]string{"t-full": "85% ALARM (2 quarantined)", "t-ok": "0%", "t-free": "no quota", "t-old": "-"}
	col := strings.Index(lines[0], "OUTBOX")
	for _, l := range lines[1:5] {
		f := strings.Fields(l)
		if got := strings.TrimSpace(l[col : col+len(want[f[0]])]); got != want[f[0]] {
			t.Errorf("%s: outbox %q, want %q\n%s", f[0], got, want[f[0]], b.String())
		}
	}
	b.Reset()
	if err := print(&b, rows[:1], "json"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"alarm": true`) || !strings.Contains(b.String(), `"fraction": 0.85`) {
		t.Fatalf("json %s", b.String())
	}
}
