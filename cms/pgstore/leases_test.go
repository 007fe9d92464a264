package pgstore_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/cms/pgstore/pgtest"
)

// rebalance runs a few rounds of Rebalance on every lease, as the hubs'
// tickers would: one round releases, the next takes.
func rebalance(t *testing.T, ls ...*pgstore.Leases) {
	t.Helper()
	for range 4 {
		for _, l := range ls {
			if err := l.Rebalance(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// split checks that ls hold every bucket once, between lo and hi each.
func split(t *testing.T, lo, hi int, ls ...*pgstore.Leases) {
	t.Helper()
	owner := make(map[int]int)
	for i, l := range ls {
		h := l.Held()
		if len(h) < lo || len(h) > hi {
			t.Errorf("hub %d holds %d buckets, want %d..%d: %v", i, len(h), lo, hi, h)
		}
		for _, b := range h {
			if o, ok := owner[b]; ok {
				t.Errorf("bucket %d held by hubs %d and %d", b, o, i)
			}
			owner[b] = i
		}
	}
	if len(owner) != pgstore.Buckets {
		t.Errorf("%d buckets held, want %d", len(owner), pgstore.Buckets)
	}
	for _, totem := range []string{"T0001", "T0002", "T0999", "X"} {
		n := 0
		for _, l := range ls {
			if l.Owns(totem) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("totem %s owned by %d hubs", totem, n)
		}
	}
}

// Three hubs on one database split the 64 buckets fairly (22, 22, 20),
// each bucket once; the live count is theirs; when one hub's store closes
// (its session ends, as a dead hub's) the two others take its buckets over.
func TestLeases(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	a, b := open(t, url), open(t, url)
	c, err := pgstore.Open(ctx, url, pgstore.Options{PoolSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	la, lb, lc := a.Leases(), b.Leases(), c.Leases()
	rebalance(t, la)
	split(t, 64, 64, la)
	rebalance(t, la, lb, lc)
	split(t, 20, 22, la, lb, lc)
	if n, err := la.Live(ctx); err != nil || n != 3 {
		t.Fatalf("live = %d, %v; want 3", n, err)
	}
	c.Close()
	if err := lc.Rebalance(ctx); err == nil || len(lc.Held()) != 0 {
		t.Errorf("a closed store's leases: %v, holding %v", err, lc.Held())
	}
	rebalance(t, la, lb)
	split(t, 32, 32, la, lb)
	if n, err := la.Live(ctx); err != nil || n != 2 {
		t.Fatalf("live = %d, %v; want 2", n, err)
	}
	lb.Close()
	rebalance(t, la)
	split(t, 64, 64, la)
}

// A bucket given back stays owned by its former holder for two more
// Rebalances (the next owner takes it within one of its own): an
// operation arriving in between is applied by one of them, not dropped by
// both. After that only the new owner has it.
func TestLeasesGrace(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	la, lb := open(t, url).Leases(), open(t, url).Leases()
	rebalance(t, la)
	if err := lb.Rebalance(ctx); err != nil || len(lb.Held()) != 0 {
		t.Fatalf("b took %v (%v) while a held every bucket", lb.Held(), err)
	}
	if err := la.Rebalance(ctx); err != nil || len(la.Held()) != 32 {
		t.Fatalf("a holds %d (%v), want 32", len(la.Held()), err)
	}
	totem := ""
	for i := 0; totem == ""; i++ {
		if s := fmt.Sprintf("T%04d", i); pgstore.Bucket(s) == pgstore.Buckets-1 {
			totem = s
		}
	}
	if !la.Owns(totem) || lb.Owns(totem) {
		t.Fatalf("bucket %d released: a owns %v, b %v; want a only until b has it", pgstore.Buckets-1, la.Owns(totem), lb.Owns(totem))
	}
	rebalance(t, lb, la, la)
	if la.Owns(totem) || !lb.Owns(totem) {
		t.Fatalf("after the hand-over: a owns %v, b %v; want b only", la.Owns(totem), lb.Owns(totem))
	}
}

// Totems lists the fleet's totems: the users of role totem (both
// usernames as they are), the presence registry's and the ledger's; no
// hub or console user.
func TestLeasesTotems(t *testing.T) {
	ctx := context.Background()
	s := open(t, pgtest.DB(t))
	users := []struct{ name, role string }{{"T1", "totem"}, {"T1.b", "totem"}, {"hub-a", "hub"}, {"desk", "console"}}
	for _, u := range users {
		err := s.RegistryUpdate(ctx, u.name, func(tx *pgstore.RegistryTx) error {
			return tx.Put(pgstore.FleetUsers, u.name, fmt.Appendf(nil,
				`{"username":%q,"role":%q,"hash":"sha256$00$00","created":"2026-01-01T00:00:00Z"}`, u.name, u.role))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddFleet(ctx, []string{"T2", "T1"}, func(string) []byte { return []byte(`{}`) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyBatch(ctx, []cms.Op{op("T3", 1, "x")}, effect); err != nil {
		t.Fatal(err)
	}
	got, err := s.Leases().Totems(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"T1", "T1.b", "T2", "T3"}; !slices.Equal(got, want) {
		t.Errorf("Totems = %v, want %v", got, want)
	}
}

// BenchmarkLeasesTotems: one read of the fleet's totems (every hub, every
// second), 1 000 totems in each of the three tables.
//
//	go test -run '^$' -bench LeasesTotems ./cms/pgstore/
func BenchmarkLeasesTotems(b *testing.B) {
	ctx := context.Background()
	s := open(b, pgtest.DB(b))
	var names []string
	var ops []cms.Op
	for i := range 1000 {
		n := fmt.Sprintf("T%04d", i)
		names = append(names, n)
		ops = append(ops, op(n, 1, "x"))
		err := s.RegistryUpdate(ctx, n, func(tx *pgstore.RegistryTx) error {
			return tx.Put(pgstore.FleetUsers, n, fmt.Appendf(nil,
				`{"username":%q,"role":"totem","hash":"sha256$00$00","created":"2026-01-01T00:00:00Z"}`, n))
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := s.AddFleet(ctx, names, func(string) []byte { return []byte(`{}`) }); err != nil {
		b.Fatal(err)
	}
	for c := range slices.Chunk(ops, 250) {
		if _, err := s.ApplyBatch(ctx, c, effect); err != nil {
			b.Fatal(err)
		}
	}
	l := s.Leases()
	b.ResetTimer()
	for b.Loop() {
		if got, err := l.Totems(ctx); err != nil || len(got) != 1000 {
			b.Fatal(len(got), err)
		}
	}
}
