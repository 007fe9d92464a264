package outbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// RunPurge purges what settled more than the retention ago — at once, not
// an interval later — and keeps what settled since and what is still
// pending; with the clock not synchronised it purges nothing.
func TestRunPurge(t *testing.T) {
	for _, tc := range []struct {
		name   string
		synced bool
		gone   []bool // per entry: settled long ago, settled recently, pending
	}{
		{"synchronised clock", true, []bool{true, false, false}},
		{"clock not synchronised", false, []bool{false, false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{t: t0}
			o := openWith(t, dbPath(t), &outbox.Options{Now: clk.Now})
			old, recent, pending := enqueue(t, o, 1), enqueue(t, o, 2), enqueue(t, o, 3)
			if _, err := o.Record(final(old)); err != nil {
				t.Fatal(err)
			}
			clk.Add(29 * 24 * time.Hour)
			if _, err := o.Record(final(recent)); err != nil {
				t.Fatal(err)
			}
			now := t0.Add(31 * 24 * time.Hour)
			ctx, cancel := context.WithCancel(context.Background())
			rounds := make(chan int, 16)
			done := make(chan struct{})
			go func() {
				defer close(done)
				o.RunPurge(ctx, time.Hour, 30*24*time.Hour, func() (time.Time, bool) { return now, tc.synced }, func(n int, err error) {
					if err != nil {
						t.Error(err)
					}
					rounds <- n
				})
			}()
			n := <-rounds // the first round runs at start
			cancel()
			<-done
			if want := map[bool]int{true: 1, false: 0}[tc.synced]; n != want {
				t.Fatalf("purged %d, want %d", n, want)
			}
			for i, e := range []outbox.Entry{old, recent, pending} {
				_, err := o.Get(e.ID)
				if gone := errors.Is(err, outbox.ErrNotFound); gone != tc.gone[i] {
					t.Errorf("entry %d: gone %v, want %v (%v)", i, gone, tc.gone[i], err)
				}
			}
		})
	}
}

// A purged entry leaves a summary the send log (Recent) still lists, in
// order with the others: done, its outcome and error codes, and nothing of
// the citizen's — no payload (sealed or not), no result data, no CMS
// message; Get no longer finds it. The newest MaxSettled are kept; a
// reopened outbox keeps them too.
func TestPurgeKeepsSummary(t *testing.T) {
	defer func(n uint64) { outbox.MaxSettled = n }(outbox.MaxSettled)
	outbox.MaxSettled = 3
	dir := t.TempDir()
	keys, err := outbox.LoadKeyring(dir + "/outbox.keys")
	if err != nil {
		t.Fatal(err)
	}
	path := dir + "/outbox.db"
	clk := &clock{t: t0}
	o := openWith(t, path, &outbox.Options{Now: clk.Now, Keys: keys})
	var es []outbox.Entry
	for i := range 6 {
		es = append(es, enqueue(t, o, i))
	}
	for i, e := range es[:5] {
		res := final(e)
		res.Data = []byte(`{"pin_first_half":"4711"}`)
		if i == 4 {
			res.Processing.Status = protocol.ProcessingRejected
			res.Processing.Errors = []protocol.Error{{Code: "CARD_MISMATCH", Message: "RSSMRA80A01H501U non corrisponde"}}
		}
		if _, err := o.Record(res); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := o.Purge(t0.Add(time.Hour)); err != nil || n != 5 {
		t.Fatalf("purged %d, %v", n, err)
	}
	o.Close()
	o = openWith(t, path, &outbox.Options{Now: clk.Now, Keys: keys})
	recent, err := o.Recent(10)
	if err != nil {
		t.Fatal(err)
	}
	// The pending one, then the newest three summaries.
	if len(recent) != 4 || recent[0].Seq != es[5].Seq || recent[0].Done || recent[0].Purged {
		t.Fatalf("recent %+v", recent)
	}
	for i, e := range recent[1:] {
		want := es[4-i]
		if e.Seq != want.Seq || e.ID != want.ID || !e.Done || !e.Purged || e.Payload != nil || e.Result == nil ||
			e.Result.Transport.Protocol == "" || len(e.Result.Data) != 0 {
			t.Fatalf("summary %d: %+v", i, e)
		}
		if _, err := o.Get(e.ID); !errors.Is(err, outbox.ErrNotFound) {
			t.Fatalf("Get of a purged entry: %v", err)
		}
	}
	if errs := recent[1].Result.Processing.Errors; len(errs) != 1 || errs[0].Code != "CARD_MISMATCH" || errs[0].Message != "" {
		t.Fatalf("errors kept %+v", errs)
	}
	if n, err := o.Purge(t0.Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("second purge: %d, %v", n, err)
	}
}
