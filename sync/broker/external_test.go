package broker

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/creds"
)

// What an external broker's logins cannot do (sync/dynsec): ops lock a
// user, and the hub confirms a rotation once the broker has the secret.
func TestLockUserAndConfirmRotation(t *testing.T) {
	dir := t.TempDir()
	reg, err := OpenRegistry(filepath.Join(dir, "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	f, err := reg.Provision("T1", creds.RoleTotem, filepath.Join(dir, "T1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.LockUser("nobody", "ops", time.Now()); err == nil {
		t.Error("an unknown user locked")
	}
	if err := reg.LockUser("T1", "ops", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, out, _ := reg.Check("T1", f.Password, ""); out != Refused {
		t.Fatalf("locked user: outcome %v", out)
	}
	if ls, _ := reg.Locks(); len(ls) != 1 || !ls[0].Locked || ls[0].From != "ops" {
		t.Fatalf("locks %+v", ls)
	}
	if _, ok, err := reg.Unlock("T1"); err != nil || !ok {
		t.Fatalf("unlock %v %v", ok, err)
	}

	if ok, err := reg.ConfirmRotation("T1", time.Now()); err != nil || ok {
		t.Fatalf("confirm with nothing pending: %v %v", ok, err)
	}
	next := "the-next-secret-0123456789-0123456789"
	if _, _, err := reg.Rotate("T1", next, time.Now()); err != nil {
		t.Fatal(err)
	}
	if ok, err := reg.ConfirmRotation("T1", time.Now()); err != nil || !ok {
		t.Fatalf("confirm: %v %v", ok, err)
	}
	if _, out, _ := reg.Check("T1", f.Password, ""); out == Accepted {
		t.Error("the old secret accepted after the confirmation")
	}
	if _, out, _ := reg.Check("T1", next, ""); out != Accepted {
		t.Errorf("the rotated secret: outcome %v", out)
	}
}
