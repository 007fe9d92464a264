package outbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/outbox"
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
