package broker

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/aslcns/totem/sync/creds"
)

func openRegistry(t *testing.T, path string) *Registry {
	t.Helper()
	r, err := OpenRegistry(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRegistryProvision(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "users.db")
	credPath := filepath.Join(dir, "creds", "T1.json")
	r := openRegistry(t, dbPath)

	f1, err := r.Provision("T1", creds.RoleTotem, credPath)
	if err != nil {
		t.Fatal(err)
	}
	if f1.Username != "T1" || f1.Role != creds.RoleTotem || f1.Password == "" {
		t.Fatalf("provisioned %+v", f1)
	}
	if role, ok := r.Authenticate("T1", f1.Password); !ok || role != creds.RoleTotem {
		t.Fatalf("Authenticate = %q, %v", role, ok)
	}
	if _, ok := r.Authenticate("T1", f1.Password+"x"); ok {
		t.Fatal("wrong password accepted")
	}

	// Twice: same credentials, file untouched.
	f2, err := r.Provision("T1", creds.RoleTotem, credPath)
	if err != nil {
		t.Fatal(err)
	}
	if f2 != f1 {
		t.Fatalf("second Provision changed credentials: %+v vs %+v", f2, f1)
	}

	// File lost: new secret, old one stops working.
	if err := os.Remove(credPath); err != nil {
		t.Fatal(err)
	}
	f3, err := r.Provision("T1", creds.RoleTotem, credPath)
	if err != nil {
		t.Fatal(err)
	}
	if f3.Password == f1.Password {
		t.Fatal("same secret after the file was deleted")
	}
	if _, ok := r.Authenticate("T1", f1.Password); ok {
		t.Fatal("old secret still works")
	}
	if _, ok := r.Authenticate("T1", f3.Password); !ok {
		t.Fatal("new secret refused")
	}
	if onDisk, err := creds.Load(credPath); err != nil || onDisk != f3 {
		t.Fatalf("file holds %+v, %v", onDisk, err)
	}

	// A file with a stale secret is replaced too.
	if err := creds.Save(credPath, creds.File{Username: "T1", Password: "stale", Role: creds.RoleTotem}); err != nil {
		t.Fatal(err)
	}
	f4, err := r.Provision("T1", creds.RoleTotem, credPath)
	if err != nil {
		t.Fatal(err)
	}
	if f4.Password == "stale" || f4.Password == f3.Password {
		t.Fatal("stale file kept")
	}

	// Reopen keeps users.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r2 := openRegistry(t, dbPath)
	u, ok, err := r2.Get("T1")
	if err != nil || !ok || u.Role != creds.RoleTotem || u.Created.IsZero() {
		t.Fatalf("after reopen Get = %+v, %v, %v", u, ok, err)
	}
	if _, ok := r2.Authenticate("T1", f4.Password); !ok {
		t.Fatal("secret refused after reopen")
	}
	f5, err := r2.Provision("T1", creds.RoleTotem, credPath)
	if err != nil || f5 != f4 {
		t.Fatalf("Provision after reopen = %+v, %v; want %+v", f5, err, f4)
	}
}

func TestRegistryValidates(t *testing.T) {
	dir := t.TempDir()
	r := openRegistry(t, filepath.Join(dir, "users.db"))
	hash, err := creds.Hash("secret")
	if err != nil {
		t.Fatal(err)
	}
	bad := []User{
		{Username: "", Role: creds.RoleTotem, Hash: hash},
		{Username: "a/b", Role: creds.RoleTotem, Hash: hash},
		{Username: "+", Role: creds.RoleTotem, Hash: hash},
		{Username: "#", Role: creds.RoleConsole, Hash: hash},
		{Username: "x", Role: "admin", Hash: hash},
		{Username: "hub/1", Role: creds.RoleHub, Hash: hash},
		{Username: "T1", Role: creds.RoleTotem, Hash: "plain"},
	}
	for _, u := range bad {
		if err := r.Put(u); err == nil {
			t.Errorf("Put(%+v) accepted", u)
		}
	}
	if _, err := r.Provision("../x", creds.RoleTotem, filepath.Join(dir, "x.json")); err == nil {
		t.Error("Provision accepted a bad totem id")
	}
	if _, ok, err := r.Get("nobody"); ok || err != nil {
		t.Errorf("Get(nobody) = %v, %v", ok, err)
	}

	u := NewUsers(nil)
	if err := u.Add(creds.File{Username: "T/1", Password: "p", Role: creds.RoleTotem}); err == nil {
		t.Error("Users.Add accepted a bad totem id")
	}
	if err := u.Add(creds.File{Username: "hub-run", Role: creds.RoleHub}); err == nil {
		t.Error("Users.Add accepted an empty password")
	}
}

func TestUsersMemoryAndRegistry(t *testing.T) {
	dir := t.TempDir()
	r := openRegistry(t, filepath.Join(dir, "users.db"))
	f, err := r.Provision("C1", creds.RoleConsole, filepath.Join(dir, "c1.json"))
	if err != nil {
		t.Fatal(err)
	}
	u := NewUsers(r)
	mem, err := creds.Generate("hub-ingest", creds.RoleHub)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Add(mem); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, pass, role string
		ok               bool
	}{
		{"hub-ingest", mem.Password, creds.RoleHub, true},
		{"hub-ingest", f.Password, "", false},
		{"C1", f.Password, creds.RoleConsole, true},
		{"C1", mem.Password, "", false},
		{"nobody", "", "", false},
	} {
		role, ok := u.Authenticate(tc.user, tc.pass)
		if ok != tc.ok || role != tc.role {
			t.Errorf("Authenticate(%q) = %q, %v; want %q, %v", tc.user, role, ok, tc.role, tc.ok)
		}
	}
	if _, ok, _ := r.Get("hub-ingest"); ok {
		t.Error("in-memory user reached the registry")
	}
}
