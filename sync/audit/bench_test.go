package audit

import (
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkAppend is one entry per commit (a console command at the hub).
func BenchmarkAppend(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "audit.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		if _, err := s.Append(Entry{Source: "t1", Actor: "console:ops-1", Action: "command", Detail: "name=status id=0123456789abcdef role=ops ok"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendAll256 is a batch of 256 totems' entries in one commit
// (the hub's ingest); the figure is per entry.
func BenchmarkAppendAll256(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "audit.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	es := make([]Entry, 256)
	n := 0
	for b.Loop() {
		for i := range es {
			n++
			es[i] = Entry{Source: "t1", Actor: "operator:8090000000042006", Action: "assisted_op", Detail: "kind=consent result=done",
				OpID: time.Duration(n).String(), TotemAt: time.Now()}
		}
		if _, err := s.AppendAll(es); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(es)), "ns/entry")
}

// BenchmarkVerify100k recomputes a chain of 100 000 records.
func BenchmarkVerify100k(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "audit.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	es := make([]Entry, 1000)
	for i := range es {
		es[i] = Entry{Source: "hub", Actor: "console:ops-1", Action: "command", Detail: "name=status ok"}
	}
	for range 100 {
		if _, err := s.AppendAll(es); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if v, err := s.Verify(); err != nil || !v.OK || v.Records != 100000 {
			b.Fatalf("%+v %v", v, err)
		}
	}
}
