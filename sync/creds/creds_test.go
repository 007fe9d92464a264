package creds

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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

// Load tells a missing file (a totem waiting for enrollment) from a
// malformed or exposed one, names the file, and never quotes the secret.
func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	const secret = "Zq9SECRETtokenXYZ"
	if _, err := Load(filepath.Join(dir, "none.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
	for name, doc := range map[string]string{
		"truncated.json": `{"username":"t-1","password":"` + secret,
		"bare.json":      `{"username":"t-1","password":` + secret + `}`,
		"number.json":    `{"username":"t-1","password":12345678}`,
		"partial.json":   `{"username":"t-1","password":"` + secret + `"}`,
		"empty.json":     ``,
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v, want ErrMalformed naming the file", name, err)
		}
		if err != nil && (strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "'Z'")) {
			t.Errorf("%s: the error quotes the secret: %v", name, err)
		}
	}

	f, _ := Generate("t-1", RoleTotem)
	p := filepath.Join(dir, "t-1.json")
	if err := Save(p, f); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p)
		if !errors.Is(err, ErrPermissions) || !strings.Contains(err.Error(), "chmod 600 "+p) {
			t.Errorf("mode %04o: %v, want ErrPermissions saying chmod 600", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		os.Chmod(p, mode)
		if g, err := Load(p); err != nil || g != f {
			t.Errorf("mode %04o: %v", mode, err)
		}
	}
}
