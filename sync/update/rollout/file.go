package rollout

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// writeFile writes b to path atomically: temporary file, fsync, rename.
func writeFile(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".payload-*")
	if err != nil {
		return fmt.Errorf("rollout: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("rollout: write %s: %w", path, err)
	}
	return nil
}
