package printq

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/outbox"
	bolt "go.etcd.io/bbolt"
)

// secret is what a PIN receipt prints and jobs.db must never show.
const (
	pinLine = "Prima metà del PIN: 4711"
	pukLine = "Prima metà del PUK: 90210"
)

func pinDoc() *hal.Doc {
	return &hal.Doc{Title: "Ristampa PIN/PUK", Sensitive: true,
		Blocks: []hal.Block{{Kind: hal.Text, Text: pinLine}, {Kind: hal.Text, Text: pukLine}}}
}

// clear reports what of the secrets the file at path holds in clear.
func clear(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, s := range []string{"4711", "90210", "Prima met"} {
		if bytes.Contains(raw, []byte(s)) {
			found = append(found, s)
		}
	}
	return found
}

// A PIN receipt waiting for paper is sealed in jobs.db with the outbox's
// keyring: the file holds neither half, across a restart too; once the
// paper is back it prints in clear, then the job is gone and the file
// compacted, so not even the sealed copy stays. A receipt without secrets
// is kept as before.
func TestSensitiveSealedAtRest(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "jobs.db")
	keys, err := outbox.LoadKeyring(filepath.Join(dir, "outbox.keys"))
	if err != nil {
		t.Fatal(err)
	}
	p := &printer{status: hal.PrinterStatus{Online: true, PaperOut: true}}
	q := open(t, path, p, Options{Poll: 20 * time.Millisecond, Keys: keys})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	_, first, err := q.Add(doc("Consensi FSE"), "op1")
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(t, first); err == nil {
		t.Fatal("printed without paper")
	}
	// On disk (synced) when Add returns.
	j, _, err := q.Add(pinDoc(), "op2")
	if err != nil {
		t.Fatal(err)
	}
	if got := clear(t, path); len(got) != 0 {
		t.Fatalf("jobs.db holds %q in clear while the receipt waits", got)
	}
	jobs, _ := q.List(10)
	if len(jobs) != 2 || jobs[0].ID != j.ID || len(jobs[0].Doc.Blocks) != 0 || jobs[0].Sealed == nil {
		t.Fatalf("jobs %+v", jobs)
	}
	sealed := jobs[0].Sealed.Data
	before, _ := os.Stat(path)
	// A restart while the paper is out: still sealed, still waiting.
	cancel()
	<-done
	q.Close()
	if got := clear(t, path); len(got) != 0 {
		t.Fatalf("jobs.db holds %q in clear after a restart", got)
	}
	p.set(hal.PrinterStatus{Online: true})
	var ok atomic.Int32 // jobs done: told after the job's record (and the compaction) is written
	q = open(t, path, p, Options{Poll: 20 * time.Millisecond, Keys: keys, OnStatus: func(err error) {
		if err == nil {
			ok.Add(1)
		}
	}})
	run(t, q)
	eventually(t, func() bool { return ok.Load() == 2 })
	got := p.printed()
	if got[1].Title != "Ristampa PIN/PUK" || len(got[1].Blocks) < 2 || got[1].Blocks[len(got[1].Blocks)-2].Text != pinLine {
		t.Fatalf("printed %+v", got[1])
	}
	jobs, _ = q.List(10)
	if len(jobs) != 1 || jobs[0].OpID != "op1" || jobs[0].State != Printed {
		t.Fatalf("jobs after printing %+v", jobs)
	}
	// Compacted: the sealed copy left the file with its page.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("jobs.db: %d bytes with the receipt waiting, %d once printed and compacted", before.Size(), len(raw))
	if bytes.Contains(raw, sealed) || bytes.Contains(raw, []byte(`"sealed"`)) {
		t.Error("a sealed copy of the printed receipt is still in jobs.db")
	}
}

// A sealed receipt whose key is gone (another keyring) cannot be printed:
// it is marked unreadable and the queue goes on with the next job.
func TestSealedWithLostKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "jobs.db")
	keys, _ := outbox.LoadKeyring(filepath.Join(dir, "a.keys"))
	other, _ := outbox.LoadKeyring(filepath.Join(dir, "b.keys"))
	p := &printer{status: hal.PrinterStatus{Online: false}}
	q := open(t, path, p, Options{Poll: 20 * time.Millisecond, Keys: keys})
	if _, _, err := q.Add(pinDoc(), "op1"); err != nil {
		t.Fatal(err)
	}
	q.Close()
	p.set(hal.PrinterStatus{Online: true})
	q = open(t, path, p, Options{Poll: 20 * time.Millisecond, Keys: other})
	run(t, q)
	printJob(t, q, doc("dopo"), "op2")
	jobs, _ := q.List(10)
	if len(jobs) != 2 || jobs[1].State != Unreadable || jobs[1].LastErr == "" || jobs[0].State != Printed {
		t.Fatalf("jobs %+v", jobs)
	}
	if docs := p.printed(); len(docs) != 1 || docs[0].Title != "dopo" {
		t.Fatalf("printed %+v", docs)
	}
}

// A jobs.db from before receipts were sealed may keep, in a freed page,
// the clear text of a PIN receipt printed and wiped: the first Open of
// this version compacts it away, once.
func TestOldFileCompactedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	put := func(j Job) {
		b, _ := json.Marshal(j)
		if err := db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists(bJobs)
			if err != nil {
				return err
			}
			return bk.Put(key(1), b)
		}); err != nil {
			t.Fatal(err)
		}
	}
	j := Job{ID: 1, Doc: *pinDoc(), State: Pending}
	put(j)
	j.State, j.Doc.Blocks, j.Copies = Printed, nil, 1 // what the old version kept once printed
	put(j)
	db.Close()
	if got := clear(t, path); len(got) == 0 {
		t.Fatal("precondition: the old file should still hold the wiped receipt in a freed page")
	}
	q := open(t, path, &printer{}, Options{})
	if got := clear(t, path); len(got) != 0 {
		t.Fatalf("after Open jobs.db still holds %q", got)
	}
	if jobs, _ := q.List(10); len(jobs) != 1 || jobs[0].State != Printed {
		t.Fatalf("jobs %+v", jobs)
	}
	q.Close()
	before, _ := os.Stat(path)
	q = open(t, path, &printer{}, Options{})
	q.Close()
	if after, _ := os.Stat(path); !os.SameFile(before, after) {
		t.Error("compacted again at the second Open")
	}
}
