package main

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/audit"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
)

// The lock reaches the central audit with its time and the source address
// of the failure that locked it (issue 14: the lock, its time and the
// source address visible and audited), and the unlock after it; the
// failures before the lock are not records of their own.
func TestCredentialLockAudited(t *testing.T) {
	dir := t.TempDir()
	reg, err := broker.OpenRegistry(filepath.Join(dir, "users.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	st, err := audit.Open(filepath.Join(dir, "audit.db"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := hub.New(hub.Options{Audit: st})
	stop := auditCredentials(reg, h, slog.New(slog.DiscardHandler))
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	if _, err := reg.Provision("t-lock", creds.RoleTotem, filepath.Join(dir, "t-lock.json")); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= broker.MaxFailures; i++ {
		reg.Check("t-lock", "wrong", "192.0.2.7:4000")
	}
	// await returns the hub's records once there are n (the writer runs
	// on its own goroutine).
	await := func(n int) []audit.Record {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			recs, err := st.List(audit.Filter{Source: audit.SourceHub})
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) >= n || time.Now().After(deadline) {
				return recs
			}
		}
	}
	await(1) // the lock recorded before ops lifts it
	if _, ok, err := reg.Unlock("t-lock"); !ok || err != nil {
		t.Fatalf("unlock: %v %v", ok, err)
	}
	recs := await(2)
	stop()
	stop = nil
	if len(recs) != 2 || recs[0].Action != "credential_locked" || recs[1].Action != "credential_unlocked" {
		t.Fatalf("records %+v, want the lock then the unlock", recs)
	}
	d := recs[0].Detail
	if !strings.Contains(d, "user=t-lock") || !strings.Contains(d, "from=192.0.2.7:4000") ||
		!strings.Contains(d, "failures=8") || !strings.Contains(d, "locked_at=") {
		t.Errorf("the lock's record says %q: no time or source address", d)
	}
	if recs[1].Detail != "user=t-lock" {
		t.Errorf("the unlock's record says %q", recs[1].Detail)
	}
}
