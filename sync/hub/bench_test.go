package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/uplink"
)

func consentPayload() []byte {
	b, _ := json.Marshal(cms.ConsentRequest{
		Card:       cms.CardRef{Serial: "6090012345678000", CF: "RSSMRA80A01H501U", Expiry: "2030-12-31"},
		Policy:     "fse-2020",
		Consents:   []cms.Consent{{Code: "consultazione", Given: true}, {Code: "opposizione_pregresso"}},
		Attendance: cms.Attendance{Channel: cms.SelfService},
	})
	return b
}

// drain measures the end-to-end drain of a backlog of n operations: outbox
// → uplink → embedded broker → hub → CMS applied → result → outbox done.
func drain(tb testing.TB, n int) time.Duration {
	dir := tb.TempDir()
	hubMe, _ := creds.Generate("totemhub", creds.RoleHub)
	tot, _ := creds.Generate("t-bench", creds.RoleTotem)
	users := broker.NewUsers(nil)
	users.Add(hubMe)
	users.Add(tot)
	srv, err := broker.Start(broker.Options{Listen: "127.0.0.1:0", Auth: users})
	if err != nil {
		tb.Fatal(err)
	}
	defer srv.Close()
	store, err := refcms.Open(filepath.Join(dir, "cms.db"), &refcms.Options{Seed: cms.DemoCards()})
	if err != nil {
		tb.Fatal(err)
	}
	defer store.Close()
	box, err := outbox.Open(filepath.Join(dir, "outbox.db"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer box.Close()
	p := consentPayload()
	for i := 0; i < n; i++ {
		if _, err := box.Enqueue(cms.KindConsent, p, time.Now(), time.Time{}); err != nil {
			tb.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	hctx, hcancel := context.WithCancel(ctx)
	done := make(chan error, 2)
	h := hub.New(hub.Options{URL: srv.URL(), ClientID: "hub-0", Username: hubMe.Username, Password: hubMe.Password, Backend: store})
	go func() { done <- h.Run(hctx) }()
	if err := h.AwaitConnection(ctx); err != nil {
		tb.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	up := uplink.New(uplink.Options{Totem: "t-bench", URL: srv.URL(), Username: tot.Username, Password: tot.Password, Outbox: box})
	go func() { done <- up.Run(hctx) }()
	for {
		q, err := box.Stats()
		if err != nil {
			tb.Fatal(err)
		}
		if q.Depth == 0 {
			break
		}
		if ctx.Err() != nil {
			tb.Fatalf("backlog stuck at %+v", q)
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	hcancel()
	<-done
	<-done
	if audit, _ := store.Audit(); len(audit) != n {
		tb.Fatalf("applied %d of %d", len(audit), n)
	}
	return elapsed
}

// BenchmarkDrain reports end-to-end operations per second for backlogs of
// several sizes (sync.md: the anchor drains 90 msg/s at 5 000 queued).
func BenchmarkDrain(b *testing.B) {
	for _, n := range []int{1000, 5000, 20000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var total time.Duration
			for i := 0; i < b.N; i++ {
				total += drain(b, n)
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "ops/s")
		})
	}
}
