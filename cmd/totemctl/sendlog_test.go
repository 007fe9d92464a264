package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/sync/protocol"
)

func TestParseMixed(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := fs.String("o", "table", "")
	hub := fs.Bool("hub", false, "")
	pos, err := parseMixed(fs, []string{"show", "-o", "json", "12", "--hub"})
	if err != nil || !slices.Equal(pos, []string{"show", "12"}) || *o != "json" || !*hub {
		t.Fatalf("%v %q %v %v", pos, *o, *hub, err)
	}
	if _, err := parseMixed(fs, []string{"--nope"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
}

var (
	wall  = time.Date(1970, 1, 1, 0, 2, 0, 0, time.UTC)
	tstmp = &protocol.Stamp{Boot: "6d1c6a9e-7a7b", Mono: 120_000, Wall: wall}
)

func TestRenderTotemLog(t *testing.T) {
	rows := []protocol.SendLogRow{
		{Seq: 2, OpID: "b", Kind: "consent", State: "done", Attempts: 1, Protocol: "261123000000002", Transport: "received",
			Processing: "rejected", Errors: []protocol.Error{{Code: "CARD_REVOKED", Message: "x"}}, Stamp: tstmp},
		{Seq: 1, OpID: "a", Kind: "reader", State: "pending"},
	}
	tests := []struct {
		format string
		check  func(t *testing.T, out string)
	}{
		{"table", func(t *testing.T, out string) {
			for _, want := range []string{"SEQ", "TOTEM CLOCK", "CARD_REVOKED", "1970-01-01 00:02:00? boot 6d1c6a9e +2m0s", "261123000000002"} {
				if !strings.Contains(out, want) {
					t.Errorf("table lacks %q:\n%s", want, out)
				}
			}
		}},
		{"csv", func(t *testing.T, out string) {
			recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
			if err != nil || len(recs) != 3 || recs[1][8] != "CARD_REVOKED" || recs[2][9] != "-" {
				t.Fatalf("%v %v", recs, err)
			}
		}},
		{"json", func(t *testing.T, out string) {
			var back []protocol.SendLogRow
			if err := json.Unmarshal([]byte(out), &back); err != nil || len(back) != 2 || *back[0].Stamp != *tstmp {
				t.Fatalf("%+v %v", back, err)
			}
		}},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if err := renderTotemLog(&b, rows, tt.format); err != nil {
			t.Fatal(err)
		}
		tt.check(t, b.String())
	}
}

func TestRenderHubLog(t *testing.T) {
	cs := &cms.Stamp{Boot: "boot", Mono: 5, Wall: wall, Synced: true}
	rows := []cms.Transmission{
		{N: 3, At: wall, Totem: "t1", Seq: 5, OpID: "c", Kind: "reader", Transport: cms.TxRefused, Processing: cms.TxPending, Expect: 2},
		{N: 2, At: wall, Totem: "t1", Seq: 1, OpID: "a", Kind: "consent", Transport: cms.TxReceived, Protocol: "P1",
			Processing: cms.TxAccepted, Duplicate: true, Stamp: cs},
		{N: 1, At: wall, Totem: "t1", Seq: 1, OpID: "a", Kind: "cancellation", Ref: "z", Transport: cms.TxReceived, Protocol: "P1",
			Processing: cms.TxRejected, Codes: []string{cms.CodeSuperseded}},
	}
	var b bytes.Buffer
	renderHubLog(&b, rows, "table")
	for _, want := range []string{"refused/pending (gap: expected 2)", "received/accepted (duplicate)", "REF_SUPERSEDED",
		"1970-01-01 00:02:00 boot boot +5ms"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	renderHubLog(&b, rows, "csv")
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil || len(recs) != 4 || recs[3][6] != "z" || recs[2][10] != "true" {
		t.Fatalf("%v %v", recs, err)
	}
	b.Reset()
	renderTransmission(&b, cms.Transmission{N: 1, Kind: "consent", Transport: cms.TxReceived, Processing: cms.TxRejected,
		Errors: []cms.Reject{{Code: cms.CodeCardRevoked, Message: "La tessera è revocata."}}}, "table")
	if !strings.Contains(b.String(), "CARD_REVOKED La tessera è revocata.") {
		t.Fatalf("show:\n%s", b.String())
	}
}

func TestRenderActionAndResync(t *testing.T) {
	var b bytes.Buffer
	renderAction(&b, actionRow{OpID: "x", Seq: 4, Kind: "correction", Ref: "a", State: "done", Transport: "received",
		Processing: "rejected", Protocol: "P4", Errors: []protocol.Error{{Code: "REF_SUPERSEDED", Message: "già annullata"}}})
	if s := b.String(); !strings.Contains(s, "refers to a") || !strings.Contains(s, "REF_SUPERSEDED: già annullata") {
		t.Fatal(s)
	}
	b.Reset()
	renderAction(&b, actionRow{OpID: "x", Seq: 4, Kind: "cancellation", State: "pending"})
	if !strings.Contains(b.String(), "queued") {
		t.Fatal(b.String())
	}
	var rep resyncReport
	json.Unmarshal([]byte(`{"hub_last_seq":3,"local_last_seq":3,"checked":3,"differences":[{"seq":2,"kind":"consent","what":"outcome_differs","totem":"done: received rejected","hub":"received accepted P2","adopted":true}]}`), &rep)
	b.Reset()
	renderResync(&b, rep, "table")
	if s := b.String(); !strings.Contains(s, "1 differences") || !strings.Contains(s, "outcome_differs") || !strings.Contains(s, "true") {
		t.Fatal(s)
	}
}

// Bad arguments are refused before anything is sent (no broker here).
func TestArgumentRefusals(t *testing.T) {
	tests := [][]string{
		{"sendlog"},
		{"sendlog", "a/b"},
		{"sendlog", "--hub", "t1"},
		{"sendlog", "show", "x"},
		{"sendlog", "t1", "-o", "xml"},
		{"sendlog", "--hub", "--print"},
		{"sendlog", "show", "3", "--print"},
		{"sendlog", "t1", "t2", "--print"},
		{"resend", "t1"},
		{"void", "t1"},
		{"void", "t1", "abc", "reason=x"},
		{"correct", "t1", "abc", "name=ROSSI"},
		{"cancel", "t1", "abc", "x=y"},
		{"resync"},
		{"resync", "t1", "-o", "csv"},
	}
	for _, args := range tests {
		var out, errw bytes.Buffer
		err := run(context.Background(), append([]string{"--creds", "/nonexistent"}, args...), nil, &out, &errw)
		if err == nil || strings.Contains(err.Error(), "nonexistent") {
			t.Errorf("%v: %v (should be refused before connecting)", args, err)
		}
	}
}

func TestRenderPrint(t *testing.T) {
	for _, tc := range []struct {
		p    printReply
		want string
	}{
		{printReply{Job: 4, Entries: 12, Printed: true}, "send log: 12 entries, print job 4: printed\n"},
		{printReply{Job: 5, Entries: 3, Printer: "hal: paper out"}, "send log: 3 entries, print job 5: not printed yet (hal: paper out); see jobs\n"},
	} {
		var b bytes.Buffer
		if err := renderPrint(&b, tc.p); err != nil || b.String() != tc.want {
			t.Errorf("%+v: %q, %v", tc.p, b.String(), err)
		}
	}
}
