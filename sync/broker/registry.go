package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aslcns/totem/internal/asciiset"
	"github.com/aslcns/totem/internal/fleetuser"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/protocol"
	"go.etcd.io/bbolt"
)

// User is one broker user of the fleet (internal/fleetuser: the same
// record in the PostgreSQL store's fleet_users).
type User = fleetuser.User

// Registry is the durable list of broker users, kept in a bbolt file
// (OpenRegistry) or in a store every hub process shares (NewRegistry).
// It is safe for concurrent use and is itself an Authenticator.
type Registry struct {
	st        RegistryStore
	provision sync.Mutex // serialises Provision's read-check-write in this process
	validity  Validity
	events    events // credential events per user (events.go)
}

var _ Authenticator = (*Registry)(nil)

// OpenRegistry opens the registry at path, creating it atomically if it
// does not exist.
func OpenRegistry(path string) (*Registry, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if err := createDB(path); err != nil {
			return nil, fmt.Errorf("broker: create registry: %w", err)
		}
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("broker: open registry: %w", err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range []string{usersBucket, locksBucket, enrollBucket} {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("broker: open registry: %w", err)
	}
	return NewRegistry(boltStore{db}), nil
}

// NewRegistry returns the registry whose records st keeps (a shared
// store: sync/pgshare); closing the registry closes st.
func NewRegistry(st RegistryStore) *Registry {
	return &Registry{st: st, validity: DefaultValidity}
}

// createDB makes an initialised bbolt file next to path and links it into
// place, so a power cut never leaves a half-created registry behind.
func createDB(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".registry-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	f.Close()
	defer os.Remove(tmp)
	db, err := bbolt.Open(tmp, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte(usersBucket))
		return err
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// Link, unlike rename, never replaces a registry someone else created.
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Close closes the store (the bbolt file).
func (r *Registry) Close() error {
	if err := r.st.Close(); err != nil {
		return fmt.Errorf("broker: close registry: %w", err)
	}
	return nil
}

// Put stores u, replacing any user with the same name. A new secret
// lifts the user's lock and forgets its failures, which were counted
// against the old one: re-enrolling a locked totem is one way back.
func (r *Registry) Put(u User) error {
	if err := validUser(u.Username, u.Role); err != nil {
		return err
	}
	if _, err := creds.Verify(u.Hash, ""); err != nil {
		return fmt.Errorf("broker: user %q: %w", u.Username, err)
	}
	b, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	err = r.st.Update(u.Username, func(tx RegistryTx) error {
		if err := bucket(tx, locksBucket).Delete(u.Username); err != nil {
			return err
		}
		return bucket(tx, usersBucket).Put(u.Username, b)
	})
	if err != nil {
		return fmt.Errorf("broker: put user: %w", err)
	}
	return nil
}

// Get returns the user called username, if there is one.
func (r *Registry) Get(username string) (User, bool, error) {
	u, found, err := viewJSON[User](r.st, usersBucket, username)
	if err != nil {
		return User{}, false, fmt.Errorf("broker: get user %q: %w", username, err)
	}
	return u, found, nil
}

// Authenticate reports the role of username if password is its secret
// and the user is not locked. It is Check from no known address: a
// failure counts towards the lock.
func (r *Registry) Authenticate(username, password string) (string, bool) {
	role, out, _ := r.Check(username, password, "")
	return role, out == Accepted
}

// Lookup returns the role of username if the registry has it.
func (r *Registry) Lookup(username string) (string, bool) {
	u, ok, err := r.Get(username)
	if err != nil || !ok {
		return "", false
	}
	return u.Role, true
}

// Provision makes sure username (role) has working credentials in the file
// at path. If the file holds username's credentials for role and the
// registry has a matching hash, nothing changes. Otherwise new credentials
// are generated, the file is written (atomically, mode 0600) and the hash is
// stored, which invalidates any older secret. It returns the credentials.
func (r *Registry) Provision(username, role, path string) (creds.File, error) {
	if err := validUser(username, role); err != nil {
		return creds.File{}, err
	}
	r.provision.Lock()
	defer r.provision.Unlock()
	var out creds.File
	// In one update of the store: on a shared store two hub processes
	// provisioning the same name do it one after the other.
	err := r.st.Update(username, func(tx RegistryTx) error {
		var u User
		ok, err := getJSON(bucket(tx, usersBucket), username, &u)
		if err != nil {
			return err
		}
		if f, err := creds.Load(path); err == nil && f.Username == username && f.Role == role && ok && u.Role == role {
			if match, _ := creds.Verify(u.Hash, f.Password); match {
				out = f
				return nil
			}
			// A totem between the two steps of a rotation (rotate.go).
			if match, _ := creds.Verify(u.Next, f.Password); u.Next != "" && match {
				out = f
				return nil
			}
		}
		f, err := creds.Generate(username, role)
		if err != nil {
			return err
		}
		now := time.Now().UTC()
		if role == creds.RoleTotem {
			f.Expires, f.RotateAt = r.validity.first(now)
		}
		hash, err := creds.Hash(f.Password)
		if err != nil {
			return err
		}
		// File first: if the registry update then fails, the next
		// Provision sees a mismatch and starts over.
		if err := creds.Save(path, f); err != nil {
			return err
		}
		if err := putUser(tx, User{Username: username, Role: role, Hash: hash, Created: now, Expires: f.Expires}); err != nil {
			return err
		}
		out = f
		return nil
	})
	if err != nil {
		return creds.File{}, fmt.Errorf("broker: provision %q: %w", username, err)
	}
	return out, nil
}

// validUser checks a username for its role. Totem and console names appear
// as topic levels, so they must be protocol.ValidTotemID; hub names never
// do and only need to be short and printable.
func validUser(username, role string) error {
	switch role {
	case creds.RoleTotem, creds.RoleConsole:
		if !protocol.ValidTotemID(username) {
			return fmt.Errorf("broker: invalid %s username %q", role, username)
		}
	case creds.RoleHub:
		if !validHubName(username) {
			return fmt.Errorf("broker: invalid hub username %q", username)
		}
	default:
		return fmt.Errorf("broker: unknown role %q", role)
	}
	return nil
}

func validHubName(s string) bool { return hubNameChars.Valid(s, 1, 128) }

var hubNameChars = asciiset.Of("A-Za-z0-9_.:-")

// Usernames returns the names of the users with role, sorted (the fleet
// registry lists every totem ever provisioned).
func (r *Registry) Usernames(role string) ([]string, error) {
	var names []string
	err := r.st.View(func(tx RegistryTx) error {
		return bucket(tx, usersBucket).ForEach(func(k string, v []byte) error {
			var u User
			if json.Unmarshal(v, &u) == nil && u.Role == role {
				names = append(names, k)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("broker: list users: %w", err)
	}
	return names, nil
}
