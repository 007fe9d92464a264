package firmware

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/firmware/console"
)

// Settings is totemd's configuration file as the console (config_get,
// config_set) and SIGHUP change it: one apply function for both. A change
// is loaded with the same strict loader as at start; one that does not
// load is refused with the loader's error (file and key or line) and the
// file is left as it was; one that loads is written atomically (temporary
// file, fsync, rename, the file's mode kept), then what can change live
// is applied and the rest named as waiting for a restart.
type Settings struct {
	path string
	live map[string]func(*config.Totemd) error
	log  *slog.Logger

	mu   sync.Mutex
	boot *config.Totemd // what the running parts were built from
	cur  *config.Totemd // what the live settings are now
}

// NewSettings returns the Settings of the file at path ("" = the demo
// defaults, which cannot be changed remotely), loaded as loaded. live maps
// the dotted keys that can change without a restart to what applies them.
func NewSettings(path string, loaded *config.Totemd, live map[string]func(*config.Totemd) error, log *slog.Logger) *Settings {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Settings{path: path, live: live, log: log, boot: loaded, cur: loaded}
}

// ConfigResult is the Data of config_set, and what a reload did.
type ConfigResult = console.ConfigResult

// LiveKeys returns the keys applied without a restart, sorted.
func (s *Settings) LiveKeys() []string {
	keys := make([]string, 0, len(s.live))
	for k := range s.live {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Current returns the configuration in force: what parts started after
// a change (the uplink, once the credentials are there) are built from.
func (s *Settings) Current() *config.Totemd {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Get returns the configuration in force, key by key, secrets redacted.
func (s *Settings) Get() (console.ConfigView, error) {
	s.mu.Lock()
	cur := s.cur
	s.mu.Unlock()
	m, err := config.Flatten(cur)
	if err != nil {
		return console.ConfigView{}, err
	}
	return console.ConfigView{File: s.path, Settings: m, Live: s.LiveKeys()}, nil
}

// ErrNoFile is Set's error when totemd runs without --config.
var ErrNoFile = errors.New("firmware: totemd runs on the demo defaults (no --config): no file to change")

// Set changes the file: every setting or none.
func (s *Settings) Set(sets []config.Setting) (ConfigResult, error) {
	if s.path == "" {
		return ConfigResult{}, ErrNoFile
	}
	if len(sets) == 0 {
		return ConfigResult{}, errors.New("config_set: no key=value")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := os.ReadFile(s.path)
	if err != nil {
		return ConfigResult{}, fmt.Errorf("config: %w", err)
	}
	b, err := config.Edit(old, sets)
	if err != nil {
		return ConfigResult{}, err
	}
	next, err := config.LoadTotemdBytes(s.path, b)
	if err != nil {
		return ConfigResult{}, s.named(err)
	}
	if err := config.WriteFile(s.path, b); err != nil {
		return ConfigResult{}, err
	}
	return s.apply(next), nil
}

// Reload reads the file again (SIGHUP) and applies it like Set.
func (s *Settings) Reload() (ConfigResult, error) {
	if s.path == "" {
		return ConfigResult{}, ErrNoFile
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next, err := config.LoadTotemd(s.path)
	if err != nil {
		return ConfigResult{}, s.named(err)
	}
	return s.apply(next), nil
}

// named makes a loader's error name the file: a syntax or type error
// does, a value refused by Validate names only its key.
func (s *Settings) named(err error) error {
	if strings.Contains(err.Error(), s.path) {
		return err
	}
	return fmt.Errorf("config: %s: %s", s.path, strings.TrimPrefix(err.Error(), "config: "))
}

// apply applies next's live settings that differ from the current ones
// and names those that differ from what the running parts were built
// with and need a restart. s.mu is held.
func (s *Settings) apply(next *config.Totemd) ConfigResult {
	r := ConfigResult{File: s.path, Changed: config.Changed(s.cur, next), Applied: []string{}, Restart: []string{}}
	failed := make(map[string]bool)
	for _, k := range r.Changed {
		f := s.live[k]
		if f == nil {
			continue
		}
		if err := f(next); err != nil {
			// Written, not applied: it takes effect with a restart.
			r.Failed = append(r.Failed, k+": "+err.Error())
			failed[k] = true
			continue
		}
		r.Applied = append(r.Applied, k)
	}
	for _, k := range config.Changed(s.boot, next) {
		if s.live[k] == nil || failed[k] {
			r.Restart = append(r.Restart, k)
		}
	}
	s.cur = next
	s.log.Info("configuration applied", "changed", r.Changed, "applied", r.Applied, "restart", r.Restart)
	return r
}
