// Package atomicfile writes a file so that a crash or a power cut leaves
// either its old content or the new one, never a mix: the keys, secrets,
// certificates and state files the totem and the hub keep.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write writes b to path with mode perm: a temporary file in path's
// directory, named after pattern as os.CreateTemp names it, is written,
// synced and renamed over path; then the directory is synced so that the
// rename is durable too (not every system can sync a directory: that is
// not an error). The temporary file never outlives a failure, and holds
// perm before the first byte is written. The error is not wrapped.
func Write(path string, b []byte, perm os.FileMode, pattern string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
