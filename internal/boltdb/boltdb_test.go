package boltdb

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

func TestOpenCreatesBuckets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	db, err := Open(path, []byte("a"), []byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(func(tx *bbolt.Tx) error {
		for _, b := range []string{"a", "b"} {
			if tx.Bucket([]byte(b)) == nil {
				t.Errorf("bucket %s missing", b)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestOpenFailsOnBadBucket(t *testing.T) {
	// An empty bucket name is refused by bbolt: Open must fail and
	// release the file, so a second Open does not wait for the lock.
	path := filepath.Join(t.TempDir(), "x.db")
	if _, err := Open(path, []byte{}); err == nil {
		t.Fatal("Open with an empty bucket name succeeded")
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
}

func TestOpenWaitGivesUpOnALockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	db, err := Open(path, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db2, err := OpenWait(path, 50*time.Millisecond, []byte("a")); err == nil {
		db2.Close()
		t.Fatal("OpenWait opened a file another handle holds")
	}
}
