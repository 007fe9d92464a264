package techset

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/aslcns/totem/internal/atomicfile"
)

// Member is a technician as the hub keeps them: with the name ops gave.
type Member struct {
	ID     string    `json:"id"`
	Name   string    `json:"name"`
	Secret string    `json:"secret"`
	Added  time.Time `json:"added"`
}

// storeFile is the hub's file: the set, its version and the master secret
// the totems' unlock keys derive from.
type storeFile struct {
	V       int      `json:"v"`
	Version uint64   `json:"version"`
	Master  []byte   `json:"master"`
	NextID  int      `json:"next_id"`
	Members []Member `json:"members"`
}

// Store is the hub's technician set, in one JSON file written atomically
// with mode 0600 (it holds the TOTP secrets and the unlock master secret;
// the hub has no keyring to seal it with, so the file's mode and the state
// directory's are its protection). A file readable by others is refused.
// It is safe for concurrent use.
type Store struct {
	path string
	mu   sync.Mutex
	f    storeFile
}

// Errors of the Store.
var (
	ErrNotFound  = errors.New("techset: no such technician")
	ErrDuplicate = errors.New("techset: a technician with that name exists")
	ErrName      = errors.New("techset: a name is 1 to 64 printable characters")
)

// firstID is the first technician number given.
const firstID = 1001

// OpenStore opens the store at path, creating it (with a new master
// secret) when it does not exist.
func OpenStore(path string) (*Store, error) {
	s := &Store{path: path}
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		s.f = storeFile{V: 1, Master: make([]byte, keyLen), NextID: firstID}
		rand.Read(s.f.Master)
		return s, s.save()
	}
	if err != nil {
		return nil, fmt.Errorf("techset: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("techset: %s: mode %v: the technicians' secrets must be readable by their owner only (chmod 600)", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("techset: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s.f); err != nil {
		return nil, fmt.Errorf("techset: %s: %v", path, err)
	}
	if s.f.V != 1 || len(s.f.Master) != keyLen || s.f.NextID < firstID {
		return nil, fmt.Errorf("techset: %s: not a technician store", path)
	}
	return s, nil
}

// ValidName reports whether name can name a technician.
func ValidName(name string) bool {
	if name == "" || utf8.RuneCountInString(name) > 64 || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// Add enrolls a technician with a new TOTP secret and returns them.
func (s *Store) Add(name string, now time.Time) (Member, error) {
	if !ValidName(name) {
		return Member{}, ErrName
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.f.Members {
		if m.Name == name {
			return Member{}, ErrDuplicate
		}
	}
	if len(s.f.Members) >= MaxMembers {
		return Member{}, fmt.Errorf("techset: at most %d technicians", MaxMembers)
	}
	raw := make([]byte, 20) // 160 bits, as RFC 4226 recommends
	rand.Read(raw)
	m := Member{ID: strconv.Itoa(s.f.NextID), Name: name, Secret: b32.EncodeToString(raw), Added: now.UTC()}
	old := s.f
	s.f.Members = append(append([]Member(nil), s.f.Members...), m)
	s.f.NextID++
	s.f.Version++
	if err := s.save(); err != nil {
		s.f = old
		return Member{}, err
	}
	return m, nil
}

// Remove removes the technician with that name or number.
func (s *Store) Remove(who string) (Member, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, m := range s.f.Members {
		if m.Name == who || m.ID == who {
			old := s.f
			s.f.Members = append(append([]Member(nil), s.f.Members[:i]...), s.f.Members[i+1:]...)
			s.f.Version++
			if err := s.save(); err != nil {
				s.f = old
				return Member{}, err
			}
			return m, nil
		}
	}
	return Member{}, ErrNotFound
}

// Find returns the technician with that name or number.
func (s *Store) Find(who string) (Member, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.f.Members {
		if m.Name == who || m.ID == who {
			return m, nil
		}
	}
	return Member{}, ErrNotFound
}

// List returns the technicians, in enrollment order.
func (s *Store) List() []Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Member(nil), s.f.Members...)
}

// UnlockKey is totem's unlock key.
func (s *Store) UnlockKey(totem string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return DeriveUnlockKey(s.f.Master, totem)
}

// For returns the unsigned set for totem, issued now.
func (s *Store) For(totem string, now time.Time) *Set {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := &Set{V: Version, Totem: totem, Version: s.f.Version + 1, Issued: now.Round(0).UTC(),
		UnlockKey: DeriveUnlockKey(s.f.Master, totem), Technicians: []Technician{}}
	for _, m := range s.f.Members {
		set.Technicians = append(set.Technicians, Technician{ID: m.ID, Secret: m.Secret})
	}
	return set
}

// save writes the file atomically (temporary file, fsync, rename), 0600.
func (s *Store) save() error {
	b, err := json.MarshalIndent(s.f, "", "  ")
	if err != nil {
		return fmt.Errorf("techset: %w", err)
	}
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("techset: %w", err)
	}
	if err := atomicfile.Write(s.path, append(b, '\n'), 0o600, ".technicians-*"); err != nil {
		return fmt.Errorf("techset: write %s: %w", s.path, err)
	}
	return nil
}
