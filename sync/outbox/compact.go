package outbox

import (
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// Compact rewrites the closed outbox at path without its free pages: the
// bbolt file never shrinks by itself. It holds the file lock throughout,
// copies into a temp file in the same directory, fsyncs it and renames it
// over path, so a power cut leaves either the old file or the new one.
func Compact(path string) (err error) {
	if fi, err := os.Stat(path); err != nil {
		return fmt.Errorf("outbox: compact %s: %w", path, err)
	} else if !fi.Mode().IsRegular() || fi.Size() == 0 {
		return fmt.Errorf("outbox: compact %s: not an outbox database", path)
	}
	src, err := openBolt(path, DefaultTimeout, 0)
	if err != nil {
		return fmt.Errorf("outbox: compact %s: %w", path, err)
	}
	defer func() {
		if cerr := src.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("outbox: compact %s: %w", path, cerr)
		}
	}()
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, compactTempPrefix(path)+"*")
	if err != nil {
		return fmt.Errorf("outbox: compact %s: %w", path, err)
	}
	tmp := f.Name()
	f.Close()
	fail := func(err error) error {
		os.Remove(tmp)
		return fmt.Errorf("outbox: compact %s: %w", path, err)
	}
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: DefaultTimeout})
	if err != nil {
		return fail(err)
	}
	if err := bolt.Compact(dst, src, 16<<20); err != nil {
		dst.Close()
		return fail(err)
	}
	if err := dst.Close(); err != nil {
		return fail(err)
	}
	if err := syncPath(tmp); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	if err := syncPath(dir); err != nil {
		return fmt.Errorf("outbox: compact %s: %w", path, err)
	}
	return nil
}
