package firmware_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/haltest"
	"github.com/aslcns/totem/sync/audit"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/protocol"
)

// An audit entry made while the totem cannot reach the broker waits in
// the outbox, reaches the hub's audit once the broker and the hub are
// back, and is recorded once however often it is sent. Console commands
// run and refused at the totem reach the audit the same way.
func TestAuditOfflineReachesHubOnce(t *testing.T) {
	_, log := newLog()
	ctx, c := startHubDown(t, 40*time.Second, log) // offline: nothing listens there until later
	dir := c.Dir
	tt := startTotemOpts(t, filepath.Join(dir, "totem"), c.URL(), c.totem, log, nil, func(o *firmware.Options) { o.Audit = true })

	if err := tt.app.RecordAudit("technician:mario", "maintenance_printer_test", "page printed; pin=12345 cf=RSSMRA80A01H501U"); err != nil {
		t.Fatal(err)
	}
	// A console command run (the firmware's), and one refused (the
	// uplink's verifier would send it to OnRefused).
	tt.app.Command(ctx, &protocol.Command{V: 1, ID: "cmd-0123456789abcdef", Name: "ping", Key: "ops-1", Role: "ops"})
	tt.app.CommandRefused(&protocol.Command{V: 1, ID: "cmd-fedcba9876543210", Name: "void", Key: "tech-1", Role: "technician"},
		&protocol.Reply{Code: "out_of_role", Error: "refused: void needs role ops"})
	if q, err := tt.box.Stats(); err != nil || q.Depth != 3 {
		t.Fatalf("offline queue = %+v, %v; want the 3 audit entries", q, err)
	}

	// The broker and the hub come back, with the audit.
	var err error
	if c.audit, err = audit.Open(filepath.Join(dir, "audit.db"), audit.Options{}); err != nil {
		t.Fatal(err)
	}
	defer c.audit.Close()
	c.StartBroker()
	c.startHub()
	awaitDrained(ctx, t, tt)
	recs, err := c.audit.List(audit.Filter{Source: totemID})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("audit has %d records of the totem, want 3: %+v", len(recs), recs)
	}
	want := []struct{ actor, action, detail string }{
		{"technician:mario", "maintenance_printer_test", "page printed"},
		{"console:ops-1", "command", "name=ping id=cmd-0123456789abcdef role=ops ok"},
		{"console:tech-1", "command_refused", "name=void id=cmd-fedcba9876543210 role=technician code=out_of_role"},
	}
	for i, w := range want {
		r := recs[i]
		if r.Actor != w.actor || r.Action != w.action || !strings.Contains(r.Detail, w.detail) || r.OpID == "" || r.TotemAt.IsZero() {
			t.Errorf("record %d = %+v, want %+v", i, r, w)
		}
	}
	if strings.Contains(recs[0].Detail, "12345") || strings.Contains(recs[0].Detail, "RSSMRA80A01H501U") {
		t.Errorf("a PIN or a CF in clear in the audit: %q", recs[0].Detail)
	}
	// Sent again (a technician's resend, the same op id): the hub answers
	// with its stored outcome and records nothing new.
	dups := c.Hub().Stats().Duplicates.Load()
	if _, err := tt.up.Resend(ctx, recs[0].OpID); err != nil {
		t.Fatal(err)
	}
	haltest.Until(t, ctx, "the resent entry answered", func() bool { return c.Hub().Stats().Duplicates.Load() > dups })
	if again, _ := c.audit.List(audit.Filter{Source: totemID}); len(again) != 3 {
		t.Fatalf("after a resend the audit has %d records of the totem, want 3", len(again))
	}
	if v, err := c.audit.Verify(); err != nil || !v.OK {
		t.Fatalf("verify: %+v, %v", v, err)
	}
}

// awaitDrained waits until the totem's outbox has nothing pending.
func awaitDrained(ctx context.Context, t *testing.T, tt *totem) {
	t.Helper()
	haltest.Until(t, ctx, "the outbox drained", func() bool {
		q, err := tt.box.Stats()
		if err != nil {
			t.Fatal(err)
		}
		return q.Depth == 0
	})
}

// An operator session is audited — login, each assisted operation, logout —
// through the outbox, and no record carries the citizen's or the
// delegate's CF, a name typed, or a PIN in clear: every audit entry queued
// is scanned.
func TestAssistedSessionAudited(t *testing.T) {
	ctx := ctxT(t)
	d := startDeskOpts(t, localOpts{online: func() bool { return true }, audit: true})
	d.login(ctx)
	d.reader.Insert(testCard())
	d.run(ctx, []step{{"2 Revoca", "2"}})
	d.run(ctx, cat([]step{{"Motivo: 1 Furto", "3"}}, delegSteps("3", "VERDI ANNA", "VRDNNA70M50F205B"), []step{{"+ nuova tessera", "#"}}))
	d.wait(ctx, "Accolta. Protocollo:")
	d.reader.Remove()
	d.wait(ctx, "Inserire la TS del")
	d.panel.Press(hal.KeyCancel) // logout
	d.wait(ctx, "Inserire la tessera")

	entries, err := d.box.Recent(50)
	if err != nil {
		t.Fatal(err)
	}
	var got []protocol.AuditEntry
	for i := len(entries) - 1; i >= 0; i-- {
		if entries[i].Kind != cms.KindAudit {
			continue
		}
		e, err := d.box.Get(entries[i].ID) // with its payload
		if err != nil {
			t.Fatal(err)
		}
		a, err := protocol.DecodeAuditEntry(e.Payload)
		if err != nil {
			t.Fatalf("audit entry %d: %v", e.Seq, err)
		}
		got = append(got, *a)
		for _, secret := range []string{testCard().Info.CF, "VRDNNA70M50F205B", "VERDI", "ROSSI", testPIN, "54321", "CA12345AB"} {
			if strings.Contains(string(e.Payload), secret) {
				t.Errorf("audit entry %d carries %q: %s", e.Seq, secret, e.Payload)
			}
		}
	}
	actor := "operator:" + opSerial
	want := []struct{ action, detail string }{
		{"operator_login", ""},
		{"assisted_op", "kind=revocation card=" + testCard().Info.Serial},
		{"operator_logout", "reason=logout"},
	}
	if len(got) != len(want) {
		t.Fatalf("audit entries %+v, want %v", got, want)
	}
	for i, w := range want {
		if got[i].Actor != actor || got[i].Action != w.action || !strings.Contains(got[i].Detail, w.detail) {
			t.Errorf("audit entry %d = %+v, want %s %s %s", i, got[i], actor, w.action, w.detail)
		}
	}
	if !strings.Contains(got[1].Detail, "result=done") {
		t.Errorf("the revocation's record: %q", got[1].Detail)
	}
	// The desk's CMS takes every entry before the test ends (and stops it).
	haltest.Until(t, ctx, "the CMS took the entries", func() bool { q, err := d.box.Stats(); return err != nil || q.Depth == 0 })
}

// Refused commands are recorded at most once a minute per key and code;
// an unsigned or forged command's key is its sender's invention, so those
// share one limit per code: varying it cannot flood the outbox.
func TestRefusalsAuditBounded(t *testing.T) {
	l := startLocalOpts(t, localOpts{audit: true})
	for i := range 50 {
		c := &protocol.Command{V: 1, ID: fmt.Sprintf("cmd-%016d", i), Name: "void", Key: fmt.Sprintf("forged-%d", i)}
		l.app.CommandRefused(c, &protocol.Reply{Code: cmdsig.CodeUnknownKey})
		l.app.CommandRefused(c, &protocol.Reply{Code: cmdsig.CodeBadSignature})
	}
	for _, key := range []string{"tech-1", "tech-2", "tech-1"} {
		l.app.CommandRefused(&protocol.Command{V: 1, ID: "cmd-0123456789abcdef", Name: "void", Key: key, Role: "technician"},
			&protocol.Reply{Code: cmdsig.CodeOutOfRole})
	}
	if q, err := l.box.Stats(); err != nil || q.Depth != 4 {
		t.Fatalf("queued %+v, %v: want 4 records (one per forged code, one per verified key)", q, err)
	}
}

// RecordAudit takes a detail longer than an entry holds, cut on a
// character boundary; an action that is not a lower_snake name is refused.
func TestRecordAuditLimits(t *testing.T) {
	l := startLocalOpts(t, localOpts{})
	if err := l.app.RecordAudit("technician:mario", "maintenance_note", strings.Repeat("è", 1000)); err != nil {
		t.Fatalf("a long detail: %v", err)
	}
	if err := l.app.RecordAudit("technician:mario", "Maintenance Note", ""); err == nil {
		t.Fatal("an action that is no lower_snake name was accepted")
	}
	if q, _ := l.box.Stats(); q.Depth != 1 {
		t.Fatalf("queued %d, want 1", q.Depth)
	}
}
