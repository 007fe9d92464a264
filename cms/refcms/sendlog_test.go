package refcms

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
)

func TestSendLog(t *testing.T) {
	e := newEnv(t, nil)
	st := &cms.Stamp{Boot: "boot-1", Mono: 4200, Wall: time.Date(1970, 1, 1, 0, 1, 0, 0, time.UTC)}
	first := e.op(cms.KindConsent, goodRequest())
	first.Stamp = st
	e.apply(first) // n 1: accepted
	bad := goodRequest()
	bad.Card = revokedRef
	rejected := e.op(cms.KindConsent, bad)
	e.apply(rejected) // n 2: rejected
	dup, err := e.s.Apply(context.Background(), first)
	if err != nil || !dup.Duplicate {
		t.Fatalf("%+v %v", dup, err)
	}
	reused := first
	reused.Seq = 2 // the id again at another, consumed, position
	if out, _ := e.s.Apply(context.Background(), reused); !slices.Equal(codesOf(out), []string{cms.CodeSeqReused}) {
		t.Fatalf("%+v", out)
	}
	later := now.Add(48 * time.Hour)
	other := e.opAs("t2", later, cms.KindConsent, goodRequest())
	e.apply(other) // n 5, another totem, two days later
	if err := e.s.LogRefused([]cms.Transmission{{At: later, Totem: "t2", Seq: 7, OpID: id(70), Kind: cms.KindReader, Expect: 2}}); err != nil {
		t.Fatal(err)
	}

	all, next, err := e.s.SendLog(cms.SendLogFilter{})
	if err != nil || next != 0 || len(all) != 6 {
		t.Fatalf("%d rows, next %d, %v", len(all), next, err)
	}
	for i, r := range all {
		if r.N != uint64(6-i) {
			t.Fatalf("row %d is n %d: not newest first", i, r.N)
		}
	}
	if r := all[5]; r.OpID != first.ID || r.Stamp == nil || *r.Stamp != *st || r.Protocol == "" || r.Processing != cms.TxAccepted {
		t.Fatalf("first %+v", r)
	}
	if r := all[3]; !r.Duplicate || r.Protocol != all[5].Protocol || r.Stamp == nil {
		t.Fatalf("duplicate %+v", r)
	}
	if r := all[0]; r.Transport != cms.TxRefused || r.Processing != cms.TxPending || r.Expect != 2 {
		t.Fatalf("refused %+v", r)
	}

	pick := func(f cms.SendLogFilter) []uint64 {
		t.Helper()
		rows, _, err := e.s.SendLog(f)
		if err != nil {
			t.Fatal(err)
		}
		var ns []uint64
		for _, r := range rows {
			ns = append(ns, r.N)
		}
		return ns
	}
	tests := []struct {
		name string
		f    cms.SendLogFilter
		want []uint64
	}{
		{"totem", cms.SendLogFilter{Totem: "t2"}, []uint64{6, 5}},
		{"accepted", cms.SendLogFilter{Outcome: cms.SendAccepted}, []uint64{5, 1}},
		{"rejected", cms.SendLogFilter{Outcome: cms.SendRejected}, []uint64{4, 2}},
		{"duplicate", cms.SendLogFilter{Outcome: cms.SendDuplicate}, []uint64{3}},
		{"refused", cms.SendLogFilter{Outcome: cms.SendRefused}, []uint64{6}},
		{"period", cms.SendLogFilter{From: now, To: now.Add(time.Hour)}, []uint64{4, 3, 2, 1}},
		{"page", cms.SendLogFilter{Before: 4, Max: 2}, []uint64{3, 2}},
		{"page past the end", cms.SendLogFilter{Before: 100, Max: 1}, []uint64{6}},
	}
	for _, tt := range tests {
		if got := pick(tt.f); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	// Paging walks everything exactly once.
	var walked []uint64
	for before, pages := uint64(0), 0; pages < 10; pages++ {
		rows, next, err := e.s.SendLog(cms.SendLogFilter{Before: before, Max: 4})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			walked = append(walked, r.N)
		}
		if next == 0 {
			break
		}
		before = next
	}
	if !slices.Equal(walked, []uint64{6, 5, 4, 3, 2, 1}) {
		t.Fatalf("walked %v", walked)
	}
	if _, _, err := e.s.SendLog(cms.SendLogFilter{Outcome: "maybe"}); err == nil {
		t.Fatal("unknown outcome accepted")
	}

	// Show: the error messages come with the entry.
	r, err := e.s.Transmission(2)
	if err != nil || len(r.Errors) == 0 || r.Errors[0].Code != cms.CodeCardRevoked || r.Errors[0].Message == "" {
		t.Fatalf("show 2: %+v %v", r, err)
	}
	if r, _ := e.s.Transmission(4); len(r.Errors) != 1 || r.Errors[0].Code != cms.CodeSeqReused {
		t.Fatalf("show 4: %+v", r)
	}
	if _, err := e.s.Transmission(99); !errors.Is(err, cms.ErrNotFound) {
		t.Fatalf("show 99: %v", err)
	}
	// The audit and the report are still the applied operations only.
	if audit, _ := e.s.Audit(); len(audit) != 3 {
		t.Fatalf("audit has %d records", len(audit))
	}
	rows, _ := e.s.Report(ReportFilter{Totem: "t1"})
	if len(rows) != 1 || rows[0].Accepted != 1 || rows[0].Rejected != 1 {
		t.Fatalf("report %+v", rows)
	}
}

func TestLedger(t *testing.T) {
	e := newEnv(t, nil)
	a := e.op(cms.KindConsent, goodRequest())
	e.apply(a)
	bad := goodRequest()
	bad.Card = revokedRef
	b := e.op(cms.KindConsent, bad)
	e.apply(b)
	e.apply(e.opAs("t2", now, cms.KindConsent, goodRequest()))
	last, entries, err := e.s.Ledger("t1", 1, 10)
	if err != nil || last != 2 || len(entries) != 2 {
		t.Fatalf("last %d, %+v, %v", last, entries, err)
	}
	if entries[0].OpID != a.ID || !entries[0].Outcome.Accepted || entries[1].OpID != b.ID || entries[1].Outcome.Accepted {
		t.Fatalf("%+v", entries)
	}
	if _, entries, _ := e.s.Ledger("t1", 2, 1); len(entries) != 1 || entries[0].Seq != 2 {
		t.Fatalf("window %+v", entries)
	}
	if last, entries, _ := e.s.Ledger("nobody", 1, 10); last != 0 || len(entries) != 0 {
		t.Fatalf("unknown totem: %d %+v", last, entries)
	}
}
