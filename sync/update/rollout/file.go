package rollout

import (
	"bytes"
	"fmt"
	"io"

	"github.com/aslcns/totem/internal/atomicfile"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// writeFile writes b to path atomically: temporary file, fsync, rename.
func writeFile(path string, b []byte) error {
	if err := atomicfile.Write(path, b, 0o600, ".payload-*"); err != nil {
		return fmt.Errorf("rollout: write %s: %w", path, err)
	}
	return nil
}
