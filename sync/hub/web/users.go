package web

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aslcns/totem/internal/atomicfile"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/hub"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/crypto/argon2"
)

// An ops account of the console: a name, a role (sync/cmdsig's technician
// or ops, the same roles the signed commands carry), an argon2id password
// hash and a TOTP secret. The accounts live in one JSON file in the hub's
// state directory (mode 0600), written atomically by `totemhub user add`
// and read again by the running hub when it changes, so an account is
// added without stopping the hub.
type Account struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Hash    string    `json:"hash"` // $argon2id$v=19$m=…,t=…,p=…$salt$key
	TOTP    string    `json:"totp"` // base32 secret
	Created time.Time `json:"created"`
}

// UsersFile is the accounts file's name in the hub's state directory.
const UsersFile = "console-users.json"

// Argon2id parameters: OWASP's second recommendation (19 MiB, 2 passes,
// 1 lane), about 40 ms here (BenchmarkCheckPassword); the hash string carries them, so a change
// keeps the old hashes valid.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16

	minPassword = 12
	maxPassword = 256 // argon2 of a megabyte is a denial of service
)

var validName = regexp.MustCompile(`^[a-z][a-z0-9._-]{1,31}$`)

// ValidName reports whether name can be an account's name: lower-case
// letters, digits, '.', '_' and '-', 2 to 32, starting with a letter.
func ValidName(name string) bool { return validName.MatchString(name) }

// HashPassword returns the argon2id hash string of password.
func HashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// checkPassword reports whether password matches hash; a malformed hash
// matches nothing.
func checkPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var v int
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || m > 1<<18 || t == 0 || t > 16 || p == 0 {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	key, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(key) == 0 || len(key) > 64 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1
}

// dummyHash is checked against when the name is unknown, so that a login
// takes as long for a name that does not exist as for a wrong password.
var dummyHash = sync.OnceValue(func() string {
	h, _ := HashPassword("not a password of anyone")
	return h
})

// totpIssuer names the hub in the authenticator app.
const totpIssuer = "Totem hub"

// totpOpts: RFC 6238 defaults (30 s, 6 digits, SHA-1: what every
// authenticator app takes); one step of skew either way.
var totpOpts = totp.ValidateOpts{Period: 30, Skew: 0, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// totpStep returns the time step of code for secret at now (one step of
// skew either way), or -1.
func totpStep(secret, code string, now time.Time) int64 {
	if len(code) != 6 {
		return -1
	}
	for _, d := range []int64{0, -1, 1} {
		at := now.Add(time.Duration(d) * 30 * time.Second)
		want, err := totp.GenerateCodeCustom(secret, at, totpOpts)
		if err != nil {
			return -1
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return at.Unix() / 30
		}
	}
	return -1
}

// Users is the accounts file, read again when it changes on disk.
type Users struct {
	path string

	mu    sync.Mutex
	mtime time.Time
	size  int64
	list  []Account
}

// OpenUsers returns the accounts of path; a missing file is no account.
func OpenUsers(path string) (*Users, error) {
	u := &Users{path: path}
	if err := u.reload(); err != nil {
		return nil, err
	}
	return u, nil
}

// reload reads the file again if its modification time or size changed;
// u.mu is held or u is not shared yet.
func (u *Users) reload() error {
	fi, err := os.Stat(u.path)
	if errors.Is(err, os.ErrNotExist) {
		u.list, u.mtime, u.size = nil, time.Time{}, 0
		return nil
	}
	if err != nil {
		return fmt.Errorf("web: accounts: %w", err)
	}
	if fi.ModTime().Equal(u.mtime) && fi.Size() == u.size && u.list != nil {
		return nil
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("web: accounts: %s is readable by others (mode %o): chmod 600 it", u.path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(u.path)
	if err != nil {
		return fmt.Errorf("web: accounts: %w", err)
	}
	var list []Account
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&list); err != nil {
		return fmt.Errorf("web: accounts: %s: %w", u.path, err)
	}
	for _, a := range list {
		if !ValidName(a.Name) || !cmdsig.ValidRole(a.Role) {
			return fmt.Errorf("web: accounts: %s: account %q: bad name or role", u.path, a.Name)
		}
	}
	u.list, u.mtime, u.size = list, fi.ModTime(), fi.Size()
	if u.list == nil {
		u.list = []Account{}
	}
	return nil
}

// Get returns the account name, reading the file again if it changed. A
// file that no longer reads keeps the accounts last read.
func (u *Users) Get(name string) (Account, bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	err := u.reload()
	for _, a := range u.list {
		if a.Name == name {
			return a, true, err
		}
	}
	return Account{}, false, err
}

// List returns the accounts by name.
func (u *Users) List() ([]Account, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	err := u.reload()
	out := slices.Clone(u.list)
	slices.SortFunc(out, func(a, b Account) int { return strings.Compare(a.Name, b.Name) })
	return out, err
}

// Add creates account name with role and password and returns its TOTP
// key (the otpauth:// URI the authenticator app scans). An existing name
// is refused: an account is never silently replaced.
func (u *Users) Add(name, role, password string, now time.Time) (*otp.Key, error) {
	if !ValidName(name) {
		return nil, errors.New("web: account name: 2 to 32 of a-z 0-9 . _ -, starting with a letter")
	}
	if !cmdsig.ValidRole(role) {
		return nil, fmt.Errorf("web: role %q: want %s or %s", role, cmdsig.Technician, cmdsig.Ops)
	}
	if n := len([]rune(password)); n < minPassword || len(password) > maxPassword {
		return nil, fmt.Errorf("web: password: at least %d characters, at most %d bytes", minPassword, maxPassword)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := u.reload(); err != nil {
		return nil, err
	}
	if slices.ContainsFunc(u.list, func(a Account) bool { return a.Name == name }) {
		return nil, fmt.Errorf("web: account %q exists", name)
	}
	hash, err := HashPassword(password)
	if err != nil {
		return nil, err
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: totpIssuer, AccountName: name, Period: 30,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return nil, err
	}
	list := append(slices.Clone(u.list), Account{Name: name, Role: role, Hash: hash, TOTP: key.Secret(), Created: now.UTC()})
	b, err := json.MarshalIndent(list, "", "\t")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(u.path, append(b, '\n'), 0o600, ".users-*"); err != nil {
		return nil, fmt.Errorf("web: accounts: %w", err)
	}
	u.mtime = time.Time{} // read back at the next use
	return key, nil
}

// Code is the account's TOTP code at now: for `totemhub user code`, run
// by whoever can read the accounts file anyway (the demo, recovery).
func (a Account) Code(now time.Time) (string, error) {
	return totp.GenerateCodeCustom(a.TOTP, now, totpOpts)
}

// URI is the account's otpauth:// URI, what an authenticator app scans.
func (a Account) URI() string {
	return hub.OTPAuthURI(totpIssuer, a.Name, a.TOTP)
}
