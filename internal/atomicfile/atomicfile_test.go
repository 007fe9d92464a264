package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	for _, content := range []string{"first", "second, longer"} {
		if err := Write(path, []byte(content), 0o600, ".key-*"); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != content {
			t.Fatalf("read %q, %v; want %q", b, err, content)
		}
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Fatalf("%d files in the directory; want the file alone", len(es))
	}
}

// A failure leaves the old content and no temporary file behind.
func TestWriteFailureLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	if err := Write(path, []byte("old"), 0o600, ".state-*"); err != nil {
		t.Fatal(err)
	}
	// The rename fails: path is now a non-empty directory.
	os.Remove(path)
	os.MkdirAll(filepath.Join(path, "x"), 0o700)
	if err := Write(path, []byte("new"), 0o600, ".state-*"); err == nil {
		t.Fatal("Write over a non-empty directory succeeded")
	}
	es, _ := os.ReadDir(dir)
	if len(es) != 1 || es[0].Name() != "state" {
		t.Fatalf("directory holds %v; want state alone", es)
	}
}
