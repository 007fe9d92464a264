package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/firmware/console"
	"github.com/aslcns/totem/sync/protocol"
)

// maxSettings is how many key=value one config set carries (a command has
// at most 16 arguments).
const maxSettings = 16

// configCmd is totemctl config get TOTEM (the configuration in force,
// secrets redacted) and config set TOTEM KEY=VALUE… (validated by the
// totem's strict loader, written atomically, applied live where it can
// be; the answer names the keys that wait for a restart).
func configCmd(ctx context.Context, cfg *config.Totemctl, args []string, stdout, _ io.Writer) error {
	if len(args) < 2 || !protocol.ValidTotemID(args[1]) || (args[0] != "get" && args[0] != "set") {
		return errors.New("totemctl: config get TOTEM | config set TOTEM KEY=VALUE…")
	}
	totem := args[1]
	if args[0] == "get" {
		if len(args) != 2 {
			return errors.New("totemctl: config get TOTEM")
		}
		v, err := totemReply[console.ConfigView](ctx, cfg, totem, "config_get", nil, "config get")
		if err != nil {
			return err
		}
		keys := make([]string, 0, len(v.Settings))
		for k := range v.Settings {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		fmt.Fprintf(stdout, "# %s (live: %s)\n", or(v.File), strings.Join(v.Live, ", "))
		tw := tabwriter.NewWriter(stdout, 0, 4, 1, ' ', 0)
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t= %s\n", k, v.Settings[k])
		}
		return tw.Flush()
	}
	sets := args[2:]
	if len(sets) == 0 || len(sets) > maxSettings {
		return fmt.Errorf("totemctl: config set TOTEM KEY=VALUE… (1 to %d)", maxSettings)
	}
	a := make(map[string]string, len(sets))
	for i, kv := range sets {
		if _, err := config.ParseSetting(kv); err != nil {
			return err
		}
		a[fmt.Sprintf("s%02d", i+1)] = kv
	}
	res, err := totemReply[console.ConfigResult](ctx, cfg, totem, "config_set", a, "config set")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "written: %s\nchanged: %s\napplied live: %s\nneeds a restart: %s\n", res.File,
		or(strings.Join(res.Changed, ", ")), or(strings.Join(res.Applied, ", ")), or(strings.Join(res.Restart, ", ")))
	for _, f := range res.Failed {
		fmt.Fprintf(stdout, "not applied live (in force after a restart): %s\n", f)
	}
	return nil
}
