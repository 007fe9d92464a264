package dynsec

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
)

// BenchmarkSync300 is a hub start's Sync of a 300-totem registry (a
// region) against a mosquitto that already has them: the idempotent pass.
func BenchmarkSync300(b *testing.B) {
	m := startMosquittoTB(b)
	dir := b.TempDir()
	reg, err := broker.OpenRegistry(filepath.Join(dir, "fleet.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close()
	for i := range 300 {
		id := fmt.Sprintf("t-%03d", i)
		if _, err := reg.Provision(id, creds.RoleTotem, filepath.Join(dir, id+".json")); err != nil {
			b.Fatal(err)
		}
	}
	c, err := New(Options{URL: m.url(), Username: adminUser, Password: m.adminPass})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	g, err := OpenGiven(filepath.Join(dir, "dynsec.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	ctx := context.Background()
	if _, err := Sync(ctx, c, reg, dir, g); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		rep, err := Sync(ctx, c, reg, dir, g)
		if err != nil || len(rep.Created) != 0 {
			b.Fatal(rep, err)
		}
	}
}
