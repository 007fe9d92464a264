package printq

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/haltest"
	bolt "go.etcd.io/bbolt"
)

// printer is a fake whose status and print outcome the test sets.
type printer struct {
	mu       sync.Mutex
	status   hal.PrinterStatus
	printErr error // returned by the next Print, then cleared
	docs     []hal.Doc
}

func (p *printer) Status(context.Context) (hal.PrinterStatus, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status, nil
}

func (p *printer) Print(_ context.Context, d *hal.Doc) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.printErr; err != nil {
		p.printErr = nil
		return err
	}
	p.docs = append(p.docs, *d)
	return nil
}

func (p *printer) set(s hal.PrinterStatus) {
	p.mu.Lock()
	p.status = s
	p.mu.Unlock()
}

func (p *printer) printed() []hal.Doc {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]hal.Doc(nil), p.docs...)
}

func doc(s string) *hal.Doc {
	return &hal.Doc{Title: s, Blocks: []hal.Block{{Kind: hal.Text, Text: s}}}
}

func isReprint(d hal.Doc) bool {
	return len(d.Blocks) > 0 && strings.Contains(d.Blocks[0].Text, "RISTAMPA")
}

func run(t *testing.T, q *Queue) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; q.Close() })
}

func wait(t *testing.T, ch <-chan error) error {
	t.Helper()
	return haltest.Recv(t, context.Background(), ch, "the job's outcome")
}

// open opens the queue at path for p with o; an error ends the test.
func open(t *testing.T, path string, p hal.Printer, o Options) *Queue {
	t.Helper()
	q, err := Open(path, p, o)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// start opens a queue in a fresh file for p, polling every 20ms, and
// runs it until the test ends.
func start(t *testing.T, p hal.Printer) *Queue {
	t.Helper()
	q := open(t, filepath.Join(t.TempDir(), "jobs.db"), p, Options{Poll: 20 * time.Millisecond})
	run(t, q)
	return q
}

// printJob adds d for opID and waits until it is printed; an error ends the
// test.
func printJob(t *testing.T, q *Queue, d *hal.Doc, opID string) Job {
	t.Helper()
	j, ch, err := q.Add(d, opID)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(t, ch); err != nil {
		t.Fatal(err)
	}
	return j
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	haltest.Until(t, context.Background(), "the queue's work", cond)
}

func TestPrintsOnce(t *testing.T) {
	p := &printer{status: hal.PrinterStatus{Online: true}}
	q := start(t, p)
	printJob(t, q, doc("uno"), "op1")
	// A second job drains the queue as a poll does, in order: a copy of
	// the first would print before it.
	printJob(t, q, doc("dopo"), "op1b")
	if docs := p.printed(); len(docs) != 2 || isReprint(docs[0]) || docs[0].Title != "uno" || docs[1].Title != "dopo" {
		t.Fatalf("printed %+v", docs)
	}
	if n, _ := q.Pending(); n != 0 {
		t.Fatalf("%d pending", n)
	}
}

func TestWaitsForPaperThenPrints(t *testing.T) {
	p := &printer{status: hal.PrinterStatus{Online: true, PaperOut: true}}
	var mu sync.Mutex
	var statuses []error
	q := open(t, filepath.Join(t.TempDir(), "jobs.db"), p, Options{Poll: 20 * time.Millisecond,
		OnStatus: func(err error) { mu.Lock(); statuses = append(statuses, err); mu.Unlock() }})
	run(t, q)
	_, ch, _ := q.Add(doc("due"), "op2")
	if err := wait(t, ch); !errors.Is(err, hal.ErrPaperOut) {
		t.Fatalf("first outcome %v, want paper out", err)
	}
	p.set(hal.PrinterStatus{Online: true})
	eventually(t, func() bool { return len(p.printed()) == 1 })
	// Refused before any byte went out: not a reprint.
	if d := p.printed()[0]; isReprint(d) {
		t.Fatal("a receipt never printed came out marked as reprint")
	}
	// The status hook follows the print: recovery is reported.
	eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(statuses) >= 2 && statuses[0] != nil && statuses[len(statuses)-1] == nil
	})
}

func TestFailedMidJobIsReprint(t *testing.T) {
	p := &printer{status: hal.PrinterStatus{Online: true}, printErr: hal.ErrPaperOut}
	q := start(t, p)
	_, ch, _ := q.Add(doc("tre"), "op3")
	if err := wait(t, ch); !errors.Is(err, hal.ErrPaperOut) {
		t.Fatal(err)
	}
	eventually(t, func() bool { return len(p.printed()) == 1 })
	if d := p.printed()[0]; !isReprint(d) || d.Blocks[2].Text != "tre" {
		t.Fatalf("retry after a fault mid-job: %+v", d)
	}
}

// A power cut after the bytes went out but before the job was marked:
// the job is printed again after the restart, as a reprint.
func TestPowerCutAfterPrint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.db")
	p := &printer{status: hal.PrinterStatus{Online: true}}
	q := open(t, path, p, Options{})
	j, _, _ := q.Add(doc("quattro"), "op4")
	// What attempt() writes before printing, then the power goes.
	q.db.Update(func(tx *bolt.Tx) error { j.Attempts = 1; return q.put(tx, &j) })
	q.Close()

	q = open(t, path, p, Options{Poll: 20 * time.Millisecond})
	run(t, q)
	// The job's record is written after the printer took it.
	eventually(t, func() bool { jobs, _ := q.List(10); return len(jobs) == 1 && jobs[0].State == Printed })
	if len(p.printed()) != 1 || !isReprint(p.printed()[0]) {
		t.Fatal("the copy after a power cut is not marked as reprint")
	}
	jobs, _ := q.List(10)
	if len(jobs) != 1 || jobs[0].State != Printed || jobs[0].Copies != 1 {
		t.Fatalf("jobs %+v", jobs)
	}
}

func TestReprintOnDemand(t *testing.T) {
	p := &printer{status: hal.PrinterStatus{Online: true}}
	q := start(t, p)
	j, ch, _ := q.Add(doc("cinque"), "op5")
	wait(t, ch)
	if err := q.Reprint(j.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return len(p.printed()) == 2 })
	if docs := p.printed(); isReprint(docs[0]) || !isReprint(docs[1]) {
		t.Fatal("reprint marks")
	}
	if err := q.Reprint(99); !errors.Is(err, ErrNotFound) {
		t.Fatalf("reprint of unknown job: %v", err)
	}
}

// A receipt with secrets is gone once printed (and so cannot be
// reprinted), even without a keyring.
func TestSensitiveNotKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.db")
	p := &printer{status: hal.PrinterStatus{Online: true}}
	q := open(t, path, p, Options{Poll: 20 * time.Millisecond})
	run(t, q)
	d := doc("Prima metà del PIN: 4711")
	d.Title, d.Sensitive = "Ristampa PIN/PUK", true // titles never hold secrets
	j := printJob(t, q, d, "op6")
	if docs := p.printed(); len(docs) != 1 || docs[0].Blocks[0].Text != "Prima metà del PIN: 4711" {
		t.Fatalf("printed %+v", docs)
	}
	if jobs, _ := q.List(10); len(jobs) != 0 {
		t.Fatalf("the receipt is still kept: %+v", jobs)
	}
	if err := q.Reprint(j.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("reprint of a sensitive receipt: %v", err)
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte("4711")) {
		t.Fatal("the PIN half is still in jobs.db")
	}
}
