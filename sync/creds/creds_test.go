package creds

import (
	"os"
	"path/filepath"
	"testing"
)

func TestHashVerify(t *testing.T) {
	f, err := Generate("demo-01", RoleTotem)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Password) != 32 {
		t.Fatalf("password length %d, want 32", len(f.Password))
	}
	h, err := Hash(f.Password)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := Verify(h, f.Password); !ok || err != nil {
		t.Fatalf("Verify(right) = %v, %v", ok, err)
	}
	if ok, _ := Verify(h, f.Password+"x"); ok {
		t.Fatal("Verify accepted a wrong password")
	}
	for _, bad := range []string{"", "md5$00$00", "sha256$zz$00", "sha256$$00"} {
		if _, err := Verify(bad, "x"); err == nil {
			t.Errorf("Verify(%q) accepted a malformed hash", bad)
		}
	}
	if _, err := Generate("x", "root"); err == nil {
		t.Fatal("Generate accepted an unknown role")
	}
}

func TestSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "c.json")
	f, _ := Generate("console", RoleConsole)
	if err := Save(path, f); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", st.Mode(), err)
	}
	g, err := Load(path)
	if err != nil || g != f {
		t.Fatalf("Load = %+v, %v; want %+v", g, err, f)
	}
	os.WriteFile(path, []byte(`{"username":"x"}`), 0o600)
	if _, err := Load(path); err == nil {
		t.Fatal("Load accepted incomplete credentials")
	}
}
