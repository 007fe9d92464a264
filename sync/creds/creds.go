// Package creds holds MQTT credentials: the file a totem or a console keeps
// its username and secret in, random secret generation, and the salted hash
// the broker stores instead of the secret.
//
// Secrets are 192-bit random tokens, so a single salted SHA-256 is enough to
// store them: there is no low-entropy password to stretch, and the broker's
// authentication hook stays cheap on the client's goroutine.
package creds

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aslcns/totem/internal/atomicfile"
)

// Roles a broker user can have.
const (
	RoleTotem   = "totem"   // one totem: only its own topic subtree
	RoleHub     = "hub"     // the hub's ingest: ops in, results and policy out
	RoleConsole = "console" // a technician's or ops console: presence, health, commands
)

// ValidRole reports whether r is a known role.
func ValidRole(r string) bool {
	return r == RoleTotem || r == RoleHub || r == RoleConsole
}

// File is what a credentials file holds.
type File struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Role     string `json:"role"`
	// Expires is when the hub stops accepting the secret, RotateAt when
	// the totem replaces it itself (before Expires, by [fleet]
	// rotate_before); zero for credentials that never expire (hubs,
	// consoles, and files written before expiry existed).
	Expires  time.Time `json:"expires,omitzero"`
	RotateAt time.Time `json:"rotate_at,omitzero"`
}

// Generate returns new credentials for username with a random secret.
func Generate(username, role string) (File, error) {
	if !ValidRole(role) {
		return File{}, fmt.Errorf("creds: unknown role %q", role)
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return File{}, fmt.Errorf("creds: %w", err)
	}
	return File{Username: username, Password: base64.RawURLEncoding.EncodeToString(b), Role: role}, nil
}

// Errors of Load besides the file's absence (fs.ErrNotExist, which a
// totem waiting for its enrollment expects).
var (
	// ErrMalformed: the file is not a complete credentials file.
	ErrMalformed = errors.New("not a credentials file")
	// ErrPermissions: group or others may read the file, so the secret
	// may already be known; like ssh, it is not used.
	ErrPermissions = errors.New("readable by group or others")
)

// maxFile bounds what Load reads: a credentials file is about 150 bytes.
const maxFile = 64 << 10

// Load reads a credentials file. The file must be readable by its owner
// only (Save writes it 0600): a secret others could read is refused, with
// the command that mends it. Errors name the file and never quote its
// content, which holds the secret.
func Load(path string) (File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return File{}, fmt.Errorf("creds: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return File{}, fmt.Errorf("creds: %w", err)
	}
	if !st.Mode().IsRegular() {
		return File{}, fmt.Errorf("creds: %s: %w: not a regular file", path, ErrMalformed)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return File{}, fmt.Errorf("creds: %s: %w (mode %04o): chmod 600 %s", path, ErrPermissions, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(fh, maxFile+1))
	if err != nil {
		return File{}, fmt.Errorf("creds: %s: %w", path, err)
	}
	if len(b) > maxFile {
		return File{}, fmt.Errorf("creds: %s: %w: larger than %d bytes", path, ErrMalformed, maxFile)
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		// json's messages can quote a character of the input: say where.
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return File{}, fmt.Errorf("creds: %s: %w: invalid JSON at byte %d", path, ErrMalformed, se.Offset)
		}
		return File{}, fmt.Errorf("creds: %s: %w: not a JSON object of strings username, password, role", path, ErrMalformed)
	}
	if f.Username == "" || f.Password == "" || !ValidRole(f.Role) {
		return File{}, fmt.Errorf("creds: %s: %w: incomplete credentials (username, password and role needed)", path, ErrMalformed)
	}
	return f, nil
}

// Save writes f to path atomically (temp file, fsync, rename) with mode 0600.
func Save(path string, f File) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("creds: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creds: %w", err)
	}
	if err := atomicfile.Write(path, append(b, '\n'), 0o600, ".creds-*"); err != nil {
		return fmt.Errorf("creds: %w", err)
	}
	return nil
}

// Hash returns the stored form of password: "sha256$<salt hex>$<digest hex>".
func Hash(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("creds: %w", err)
	}
	return format(salt, password), nil
}

func format(salt []byte, password string) string {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(password))
	return "sha256$" + hex.EncodeToString(salt) + "$" + hex.EncodeToString(h.Sum(nil))
}

// ErrBadHash is returned by Verify for a malformed stored hash.
var ErrBadHash = errors.New("creds: malformed hash")

// Verify reports whether password matches the stored hash, in constant time.
func Verify(hash, password string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 3 || parts[0] != "sha256" {
		return false, ErrBadHash
	}
	salt, err := hex.DecodeString(parts[1])
	if err != nil || len(salt) == 0 {
		return false, ErrBadHash
	}
	return subtle.ConstantTimeCompare([]byte(format(salt, password)), []byte(hash)) == 1, nil
}
