package console

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/aslcns/totem/config"
)

// Configurer is the totem's configuration file as the console sees it
// (firmware.Settings).
type Configurer interface {
	Get() (ConfigView, error)
	Set([]config.Setting) (ConfigResult, error)
}

// ConfigView is the Data of config_get: the configuration in force, key
// by key (secrets redacted), and the keys that change live.
type ConfigView struct {
	File     string            `json:"file"`
	Settings map[string]string `json:"settings"`
	Live     []string          `json:"live"`
}

// ConfigResult is the Data of config_set: the keys changed, those
// applied at once, and those that wait for a restart.
type ConfigResult struct {
	File    string   `json:"file"`
	Changed []string `json:"changed"`
	Applied []string `json:"applied"`
	Restart []string `json:"restart"`
	// Failed: live keys whose apply failed (written, in force after a
	// restart), "key: why".
	Failed []string `json:"failed,omitempty"`
}

var errNoConfig = errors.New("remote configuration is not available on this totem")

func (a *Console) configGet(context.Context, map[string]string) (any, error) {
	if a.o.Config == nil {
		return nil, errNoConfig
	}
	return a.o.Config.Get()
}

// configSet: args s1, s2… each "key=value" (argument names cannot hold
// the dots of a TOML key), applied together or not at all.
func (a *Console) configSet(_ context.Context, args map[string]string) (any, error) {
	if a.o.Config == nil {
		return nil, errNoConfig
	}
	names := make([]string, 0, len(args))
	for n := range args {
		names = append(names, n)
	}
	slices.Sort(names)
	sets := make([]config.Setting, 0, len(args))
	for _, n := range names {
		s, err := config.ParseSetting(args[n])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		sets = append(sets, s)
	}
	return a.o.Config.Set(sets)
}
