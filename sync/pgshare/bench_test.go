package pgshare_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/cms/pgstore/pgtest"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/pgshare"
	"github.com/aslcns/totem/sync/protocol"
)

// One second of a hub's registry on PostgreSQL with 1 000 totems that all
// changed (a regional reconnect): one Save of their entries (one
// statement) and one read of what changed (the others' writes). The
// entries/s figure is what one hub's once-a-second write can carry.
//
//	go test -run - -bench PresenceSecond -benchtime 20x ./sync/pgshare
func BenchmarkPresenceSecond(b *testing.B) {
	const n = 1000
	st := pgshare.Presence(open(b, pgtest.DB(b)))
	entries := make([]hub.TotemStatus, n)
	for i := range entries {
		entries[i] = hub.TotemStatus{Totem: fmt.Sprintf("t-%04d", i), Status: protocol.Online, Queue: 3, Version: "2.0",
			Devices: map[string]string{"printer": "ok", "reader": "ok"}, Last: &hub.LastOp{Seq: 1, Kind: "consent", Transport: "received"}}
	}
	var since time.Time
	b.ResetTimer()
	for i := range b.N {
		now := time.Now().UTC()
		for j := range entries {
			entries[j].LastSeen, entries[j].Last.Seq = now, uint64(i+1)
		}
		if err := st.Save(entries); err != nil {
			b.Fatal(err)
		}
		got, cursor, err := st.Changed(since)
		if err != nil || len(got) < n {
			b.Fatalf("%d read back: %v", len(got), err)
		}
		since = cursor
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// An embedded broker's authentication of one login on the shared
// registry (Registry.Check: the user and its lock read in one snapshot),
// against the bbolt file's.
//
//	go test -run - -bench RegistryCheck ./sync/pgshare
func BenchmarkRegistryCheck(b *testing.B) {
	for _, store := range []string{"bbolt", "postgres"} {
		b.Run(store, func(b *testing.B) {
			var reg *broker.Registry
			if store == "bbolt" {
				r, err := broker.OpenRegistry(filepath.Join(b.TempDir(), "fleet.db"))
				if err != nil {
					b.Fatal(err)
				}
				reg = r
			} else {
				reg = pgshare.Registry(open(b, pgtest.DB(b)))
			}
			defer reg.Close()
			f, err := reg.Provision("t-1", creds.RoleTotem, filepath.Join(b.TempDir(), "t-1.json"))
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if _, out, _ := reg.Check("t-1", f.Password, ""); out != broker.Accepted {
					b.Fatal(out)
				}
			}
		})
	}
}
