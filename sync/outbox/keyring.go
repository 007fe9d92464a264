package outbox

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// errNoKeyring reports a sealed payload in an outbox opened without keys:
// a configuration error, not a bad entry.
var errNoKeyring = fmt.Errorf("%w: sealed and no keyring is configured", ErrUnreadable)

// Keyring holds the AES-256 keys that seal payloads at rest. It lives in
// its own file, outside the database, readable by its owner only. The
// newest key seals new entries; older keys open the entries they sealed.
// It is safe for concurrent use.
type Keyring struct {
	path string
	mu   sync.RWMutex
	keys []ringKey // by ascending id; the last one is current
}

type ringKey struct {
	id      uint32
	key     []byte
	created time.Time
	aead    cipher.AEAD
}

// keyFile is the keyring file format.
type keyFile struct {
	V    int       `json:"v"`
	Keys []keyJSON `json:"keys"`
}

type keyJSON struct {
	ID      uint32    `json:"id"`
	Key     []byte    `json:"key"` // 32 bytes, base64
	Created time.Time `json:"created"`
}

// LoadKeyring reads the keyring at path, or creates it with one new key
// (mode 0600, written atomically) if it does not exist. A file readable by
// group or others is refused.
func LoadKeyring(path string) (*Keyring, error) {
	k := &Keyring{path: path}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := k.Rotate(); err != nil {
			return nil, err
		}
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: keyring %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("outbox: keyring %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("outbox: keyring %s: mode %04o, want 0600", path, fi.Mode().Perm())
	}
	var f keyFile
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&f); err != nil {
		return nil, fmt.Errorf("outbox: keyring %s: %w", path, err)
	}
	if f.V != 1 || len(f.Keys) == 0 {
		return nil, fmt.Errorf("outbox: keyring %s: no keys or unknown version %d", path, f.V)
	}
	for _, j := range f.Keys {
		rk, err := newRingKey(j.ID, j.Key, j.Created)
		if err != nil {
			return nil, fmt.Errorf("outbox: keyring %s: key %d: %w", path, j.ID, err)
		}
		if len(k.keys) > 0 && rk.id <= k.keys[len(k.keys)-1].id {
			return nil, fmt.Errorf("outbox: keyring %s: key ids not ascending at %d", path, j.ID)
		}
		k.keys = append(k.keys, rk)
	}
	return k, nil
}

func newRingKey(id uint32, key []byte, created time.Time) (ringKey, error) {
	if id == 0 || len(key) != 32 {
		return ringKey{}, errors.New("want a non-zero id and 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return ringKey{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return ringKey{}, err
	}
	return ringKey{id: id, key: bytes.Clone(key), created: created, aead: aead}, nil
}

// Rotate adds a new random key, saves the keyring atomically and makes
// the new key the one that seals new entries.
func (k *Keyring) Rotate() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	id := uint32(1)
	if len(k.keys) > 0 {
		id = k.keys[len(k.keys)-1].id + 1
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	rk, err := newRingKey(id, raw, time.Now().UTC().Round(0))
	if err != nil {
		return err
	}
	keys := append(slices.Clip(k.keys), rk)
	if err := saveKeys(k.path, keys); err != nil {
		return fmt.Errorf("outbox: keyring %s: %w", k.path, err)
	}
	k.keys = keys
	return nil
}

// Current returns the id of the key that seals new entries.
func (k *Keyring) Current() uint32 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.keys[len(k.keys)-1].id
}

func saveKeys(path string, keys []ringKey) (err error) {
	f := keyFile{V: 1}
	for _, rk := range keys {
		f.Keys = append(f.Keys, keyJSON{ID: rk.id, Key: rk.key, Created: rk.created})
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err == nil {
		if _, err = tmp.Write(append(b, '\n')); err == nil {
			err = tmp.Sync()
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncPath(dir)
}

// aad binds a sealed payload to its entry: id, seq and kind.
func aad(id string, seq uint64, kind string) []byte {
	b := make([]byte, 0, len(id)+8+len(kind))
	b = append(b, id...)
	b = binary.BigEndian.AppendUint64(b, seq)
	return append(b, kind...)
}

// Seal seals plaintext with the current key, bound to aad (the caller's
// name for the record it goes in), and returns the key id and nonce that
// Open needs with it. Other stores of the totem that keep personal data
// (the print queue's receipts with secrets) seal with the same keyring.
func (k *Keyring) Seal(plaintext, aad []byte) (key uint32, nonce, sealed []byte) {
	k.mu.RLock()
	rk := k.keys[len(k.keys)-1]
	k.mu.RUnlock()
	nonce = make([]byte, rk.aead.NonceSize())
	rand.Read(nonce)
	return rk.id, nonce, rk.aead.Seal(nil, nonce, plaintext, aad)
}

// Open returns the plaintext Seal sealed with key, nonce and aad. An error
// wraps ErrUnreadable: the key is not in the keyring, or the bytes or the
// aad are not the ones sealed.
func (k *Keyring) Open(key uint32, nonce, sealed, aad []byte) ([]byte, error) {
	k.mu.RLock()
	i, found := slices.BinarySearchFunc(k.keys, key, func(rk ringKey, id uint32) int {
		return int(int64(rk.id) - int64(id))
	})
	var rk ringKey
	if found {
		rk = k.keys[i]
	}
	k.mu.RUnlock()
	if !found {
		return nil, fmt.Errorf("key %d not in the keyring: %w", key, ErrUnreadable)
	}
	if len(nonce) != rk.aead.NonceSize() {
		return nil, fmt.Errorf("bad nonce: %w", ErrUnreadable)
	}
	p, err := rk.aead.Open(nil, nonce, sealed, aad)
	if err != nil {
		return nil, fmt.Errorf("key %d: %v: %w", key, err, ErrUnreadable)
	}
	return p, nil
}

// seal stores payload in r, sealed with the current key if a keyring is set.
func (c *codec) seal(r *record, seq uint64, payload []byte) error {
	if c.keys == nil {
		r.Payload = payload
		return nil
	}
	r.Key, r.Nonce, r.Sealed = c.keys.Seal(payload, aad(r.ID, seq, r.Kind))
	return nil
}

// open returns the plaintext of a sealed payload.
func (c *codec) open(r *record, seq uint64) ([]byte, error) {
	if c.keys == nil {
		return nil, fmt.Errorf("entry %d: %w", seq, errNoKeyring)
	}
	p, err := c.keys.Open(r.Key, r.Nonce, r.Sealed, aad(r.ID, seq, r.Kind))
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", seq, err)
	}
	return p, nil
}
