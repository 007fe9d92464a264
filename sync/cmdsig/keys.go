package cmdsig

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/aslcns/totem/internal/atomicfile"
	"github.com/aslcns/totem/sync/protocol"
)

// PublicKey is a console key a totem or the hub trusts.
type PublicKey struct {
	ID   string // 1-32 characters of [A-Za-z0-9_-], in every signed command
	Role string // the highest role the key may sign as
	Key  ed25519.PublicKey
}

// PrivateKey is a console's signing key.
type PrivateKey struct {
	ID   string
	Role string
	Key  ed25519.PrivateKey
}

// Public returns the part a totem's configuration lists.
func (k PrivateKey) Public() PublicKey {
	return PublicKey{ID: k.ID, Role: k.Role, Key: k.Key.Public().(ed25519.PublicKey)}
}

// Entry is a trusted key as configuration and key files write it.
type Entry struct {
	ID        string `json:"id"`
	Role      string `json:"role"`
	PublicKey string `json:"public_key"` // standard base64 of the 32-byte key
}

// Entry returns k as configuration writes it.
func (k PublicKey) Entry() Entry {
	return Entry{ID: k.ID, Role: k.Role, PublicKey: base64.StdEncoding.EncodeToString(k.Key)}
}

// Parse checks e and returns the key.
func (e Entry) Parse() (PublicKey, error) {
	if !protocol.ValidTotemID(e.ID) {
		return PublicKey{}, fmt.Errorf("cmdsig: key id %q: want 1-32 characters of A-Z a-z 0-9 _ -", e.ID)
	}
	if !ValidRole(e.Role) {
		return PublicKey{}, fmt.Errorf("cmdsig: key %s: role %q is not technician or ops", e.ID, e.Role)
	}
	b, err := base64.StdEncoding.DecodeString(e.PublicKey)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return PublicKey{}, fmt.Errorf("cmdsig: key %s: public_key is not a base64 Ed25519 public key", e.ID)
	}
	return PublicKey{ID: e.ID, Role: e.Role, Key: ed25519.PublicKey(b)}, nil
}

// Generate returns a new key pair for a console.
func Generate(id, role string) (PrivateKey, error) {
	if !protocol.ValidTotemID(id) {
		return PrivateKey{}, fmt.Errorf("cmdsig: key id %q: want 1-32 characters of A-Z a-z 0-9 _ -", id)
	}
	if !ValidRole(role) {
		return PrivateKey{}, fmt.Errorf("cmdsig: role %q is not technician or ops", role)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("cmdsig: %w", err)
	}
	return PrivateKey{ID: id, Role: role, Key: priv}, nil
}

// privateFile is the console's key file.
type privateFile struct {
	ID   string `json:"id"`
	Role string `json:"role"`
	Seed string `json:"private_key"` // standard base64 of the 32-byte seed
}

// SavePrivate writes k to path with mode 0600, atomically.
func SavePrivate(path string, k PrivateKey) error {
	b, err := json.MarshalIndent(privateFile{k.ID, k.Role, base64.StdEncoding.EncodeToString(k.Key.Seed())}, "", "  ")
	if err != nil {
		return fmt.Errorf("cmdsig: %w", err)
	}
	return writeFile(path, append(b, '\n'), 0o600)
}

// LoadPrivate reads a console's key file. A file others can read is
// refused, as ssh refuses one.
func LoadPrivate(path string) (PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("cmdsig: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return PrivateKey{}, fmt.Errorf("cmdsig: %s: mode %v: a private key must be readable by its owner only (chmod 600)", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("cmdsig: %w", err)
	}
	var f privateFile
	if err := json.Unmarshal(b, &f); err != nil {
		return PrivateKey{}, fmt.Errorf("cmdsig: %s: %v", path, err)
	}
	seed, err := base64.StdEncoding.DecodeString(f.Seed)
	if err != nil || len(seed) != ed25519.SeedSize || !protocol.ValidTotemID(f.ID) || !ValidRole(f.Role) {
		return PrivateKey{}, fmt.Errorf("cmdsig: %s: not a console key file", path)
	}
	return PrivateKey{ID: f.ID, Role: f.Role, Key: ed25519.NewKeyFromSeed(seed)}, nil
}

// LoadTrusted reads a file of trusted keys (a JSON array of Entry). A
// missing file holds no keys.
func LoadTrusted(path string) ([]PublicKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cmdsig: %w", err)
	}
	var es []Entry
	if err := json.Unmarshal(b, &es); err != nil {
		return nil, fmt.Errorf("cmdsig: %s: %v", path, err)
	}
	keys := make([]PublicKey, 0, len(es))
	for _, e := range es {
		k, err := e.Parse()
		if err != nil {
			return nil, fmt.Errorf("%w (in %s)", err, path)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// AddTrusted adds k to the file of trusted keys at path (created if
// missing), replacing a key with the same id, atomically.
func AddTrusted(path string, k PublicKey) error {
	keys, err := LoadTrusted(path)
	if err != nil {
		return err
	}
	es := []Entry{k.Entry()}
	for _, o := range keys {
		if o.ID != k.ID {
			es = append(es, o.Entry())
		}
	}
	b, err := json.MarshalIndent(es, "", "  ")
	if err != nil {
		return fmt.Errorf("cmdsig: %w", err)
	}
	return writeFile(path, append(b, '\n'), 0o644)
}

// Merge joins key lists, refusing one id with two different keys or roles.
func Merge(lists ...[]PublicKey) ([]PublicKey, error) {
	seen := make(map[string]PublicKey)
	var out []PublicKey
	for _, l := range lists {
		for _, k := range l {
			if o, ok := seen[k.ID]; ok {
				if o.Role != k.Role || !o.Key.Equal(k.Key) {
					return nil, fmt.Errorf("cmdsig: key id %s is listed twice with different keys or roles", k.ID)
				}
				continue
			}
			seen[k.ID] = k
			out = append(out, k)
		}
	}
	return out, nil
}

// writeFile writes b to path atomically: temporary file, fsync, rename.
func writeFile(path string, b []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cmdsig: %w", err)
	}
	if err := atomicfile.Write(path, b, mode, ".key-*"); err != nil {
		return fmt.Errorf("cmdsig: write %s: %w", path, err)
	}
	return nil
}
