package creds

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Store is a totem's credentials file with the pending file of a
// rotation beside it (path + ".next"). A rotation writes the new secret
// to the pending file before the hub hears of it, and renames it over the
// file once the hub accepted it: at every moment the file holds a secret
// the hub accepts (the old one stays valid until a login with the new one),
// so a crash anywhere never leaves the totem unable to log in.
type Store struct{ Path string }

// PendingPath is the pending file's path.
func (s Store) PendingPath() string { return s.Path + ".next" }

// Load reads the file.
func (s Store) Load() (File, error) { return Load(s.Path) }

// SavePending writes f, atomically and 0600, to the pending file.
func (s Store) SavePending(f File) error { return Save(s.PendingPath(), f) }

// Promote renames the pending file over the file, atomically, and syncs
// the directory so the rename survives a power cut.
func (s Store) Promote() error {
	if err := os.Rename(s.PendingPath(), s.Path); err != nil {
		return fmt.Errorf("creds: promote: %w", err)
	}
	if d, err := os.Open(filepath.Dir(s.Path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// DropPending removes a pending file a rotation left behind (it was never
// promoted, so the file's secret is still accepted).
func (s Store) DropPending() error {
	if err := os.Remove(s.PendingPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("creds: %w", err)
	}
	return nil
}
