package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cmd/internal/benchkit"
	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/cms/pgstore/pgtest"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/pgshare"
)

// A bbolt hub's CMS with applied operations (accepted and rejected, a
// duplicate and a gap in its send log) moved to PostgreSQL with
// `totemhub migrate --from-bbolt`: the PostgreSQL CMS answers copies of
// those operations as the same duplicates (same protocol numbers and
// outcomes), takes each totem's next operation and goes on numbering
// after the bbolt hub's last number; the consents, the audit and the send
// log are the same. A database that already holds operations is refused.
func TestMigrateFromBbolt(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	boltPath := filepath.Join(dir, "cms.db")
	at := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	cards := cms.DemoCards()
	op := func(totem string, seq uint64, serial string) cms.Op {
		p := benchkit.ConsentPayload()
		if serial != "" {
			p = bytes.Replace(p, []byte(cards[0].Serial), []byte(serial), 1)
		}
		return cms.Op{Totem: totem, ID: fmt.Sprintf("%s-%d", totem, seq), Seq: seq, Kind: cms.KindConsent, Payload: p,
			Received: at.Add(time.Duration(seq) * time.Second)}
	}
	var ops []cms.Op
	for _, totem := range []string{"t-a", "t-b"} {
		for seq := uint64(1); seq <= 4; seq++ {
			serial := ""
			if seq == 3 {
				serial = "0000000000000000" // no such card: rejected
			}
			ops = append(ops, op(totem, seq, serial))
		}
	}
	bs, err := refcms.Open(boltPath, &refcms.Options{Seed: cards})
	if err != nil {
		t.Fatal(err)
	}
	before := make([]cms.Outcome, len(ops))
	for i, o := range ops {
		if before[i], err = bs.Apply(ctx, o); err != nil || before[i].OutOfOrder {
			t.Fatalf("bbolt apply %d: %+v %v", i, before[i], err)
		}
	}
	if out, err := bs.Apply(ctx, ops[0]); err != nil || !out.Duplicate { // in the send log
		t.Fatalf("bbolt duplicate: %+v %v", out, err)
	}
	if out, err := bs.Apply(ctx, op("t-a", 9, "")); err != nil || !out.OutOfOrder {
		t.Fatalf("bbolt gap: %+v %v", out, err)
	}
	if err := bs.LogRefused([]cms.Transmission{{At: at, Totem: "t-a", Seq: 9, OpID: "t-a-9", Kind: cms.KindConsent,
		Transport: cms.TxRefused, Expect: 5}}); err != nil {
		t.Fatal(err)
	}
	wantConsents, err := bs.Consents(cards[0].Serial)
	if err != nil {
		t.Fatal(err)
	}
	wantAudit, err := bs.Audit()
	if err != nil {
		t.Fatal(err)
	}
	wantLog, _, err := bs.SendLog(cms.SendLogFilter{Max: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.Close(); err != nil {
		t.Fatal(err)
	}
	// The bbolt hub's fleet registry beside its CMS: a totem provisioned
	// and locked, another with an enrollment code, and their presence.
	reg, err := broker.OpenRegistry(filepath.Join(dir, "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	taCreds, err := reg.Provision("t-a", creds.RoleTotem, filepath.Join(dir, "t-a.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.LockUser("t-a", "ops", at); err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.Enroll("t-b", time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	reg.Close()
	fl, err := hub.OpenFleet(filepath.Join(dir, "presence.db"), hub.FleetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fl.Provisioned("t-a", "t-b")
	if err := fl.Close(); err != nil {
		t.Fatal(err)
	}

	_, dbURL := emptyDB(t, ctx, pgtest.Options{NoFsync: true})
	cfg := storeConfig(t, dbURL)
	var out, errw bytes.Buffer
	if err := run(ctx, []string{"--config", cfg, "migrate", "--from-bbolt", boltPath}, nil, &out, &errw); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "8 operations of 2 totems") ||
		!strings.Contains(out.String(), "2 broker users, 1 locks, 1 enrollment codes, 2 totems' presence") {
		t.Errorf("migrate said %q", out.String())
	}
	if err := run(ctx, []string{"--config", cfg, "migrate", "--from-bbolt", boltPath}, nil, &out, &errw); !errors.Is(err, pgstore.ErrNotEmpty) {
		t.Fatalf("a second copy into the same database: %v", err)
	}

	pg, err := pgstore.Open(ctx, dbURL, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The registry moved: t-a still locked with its secret, t-b's code
	// still valid, both listed by a hub on the database.
	preg := pgshare.Registry(pg)
	if u, ok, err := preg.Get("t-a"); err != nil || !ok || u.Role != creds.RoleTotem {
		t.Fatalf("t-a on PostgreSQL: %+v %v %v", u, ok, err)
	}
	if _, outc, _ := preg.Check("t-a", taCreds.Password, ""); outc != broker.Refused {
		t.Errorf("locked t-a on PostgreSQL: %v, want refused", outc)
	}
	if _, err := preg.Verifier("t-b", time.Now()); err != nil {
		t.Errorf("t-b's enrollment code on PostgreSQL: %v", err)
	}
	pfl, err := hub.NewFleet(pgshare.Presence(pg), hub.FleetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l := pfl.List(hub.FleetFilter{}); len(l) != 2 || l[0].Totem != "t-a" || l[1].Status != hub.NeverSeen {
		t.Errorf("the fleet on PostgreSQL: %+v", l)
	}
	pfl.Close()
	ps, err := refcms.New(pg.CMS(), &refcms.Options{Seed: cards})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	gotConsents, err := ps.Consents(cards[0].Serial)
	if err != nil {
		t.Fatal(err)
	}
	if gotConsents.OpID != wantConsents.OpID || gotConsents.Protocol != wantConsents.Protocol || gotConsents.Previous == nil ||
		wantConsents.Previous == nil || gotConsents.Previous.OpID != wantConsents.Previous.OpID {
		t.Fatalf("consents on PostgreSQL: %+v, want %+v", gotConsents, wantConsents)
	}
	gotAudit, err := ps.Audit()
	if err != nil {
		t.Fatal(err)
	}
	if !sameAudit(gotAudit, wantAudit) {
		t.Fatalf("audit on PostgreSQL:\n%+v\nwant\n%+v", gotAudit, wantAudit)
	}
	gotLog, _, err := ps.SendLog(cms.SendLogFilter{Max: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(gotLog) != len(wantLog) {
		t.Fatalf("send log: %d entries, want %d", len(gotLog), len(wantLog))
	}
	for i := range gotLog {
		g, w := gotLog[i], wantLog[i]
		g.N, w.N = 0, 0
		if g.OpID != w.OpID || g.Seq != w.Seq || g.Protocol != w.Protocol || g.Duplicate != w.Duplicate ||
			g.Transport != w.Transport || g.Repeats != w.Repeats || !g.At.Equal(w.At) {
			t.Fatalf("send log %d: %+v, want %+v", i, g, w)
		}
	}
	for i, o := range ops {
		got, err := ps.Apply(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Duplicate || got.Protocol != before[i].Protocol || got.Accepted != before[i].Accepted ||
			!reflect.DeepEqual(got.Rejects, before[i].Rejects) || !bytes.Equal(got.Data, before[i].Data) {
			t.Fatalf("op %s again on PostgreSQL: %+v, want the duplicate of %+v", o.ID, got, before[i])
		}
	}
	last := before[len(before)-1].Protocol
	for _, totem := range []string{"t-a", "t-b"} {
		got, err := ps.Apply(ctx, op(totem, 5, ""))
		if err != nil || got.Duplicate || got.OutOfOrder || !got.Accepted || got.Protocol <= last {
			t.Fatalf("%s's next op on PostgreSQL: %+v %v (the bbolt hub's last number %s)", totem, got, err, last)
		}
		last = got.Protocol
		if got, err := ps.Apply(ctx, op(totem, 7, "")); err != nil || !got.OutOfOrder || got.Expect != 6 {
			t.Fatalf("%s's gap on PostgreSQL: %+v %v", totem, got, err)
		}
	}
}

func sameAudit(a, b []refcms.AuditRecord) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		x.N, y.N = 0, 0
		if !x.At.Equal(y.At) {
			return false
		}
		x.At, y.At = time.Time{}, time.Time{}
		if len(x.Codes) == 0 && len(y.Codes) == 0 {
			x.Codes, y.Codes = nil, nil
		}
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}
