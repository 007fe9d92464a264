package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
)

// unlock asks the hub to lift the lock of a totem's or console's
// credentials (8 failed authentications in a row) and says what it lifted.
func unlock(ctx context.Context, cfg *config.Totemctl, args []string, stdout, _ io.Writer) error {
	res, err := accountReply[hub.UnlockResult](ctx, cfg, "unlock", args)
	if err != nil {
		return err
	}
	if !res.Locked {
		fmt.Fprintf(stdout, "%s was not locked (%d failed authentications forgotten)\n", res.Username, res.Lock.Failures)
		return nil
	}
	fmt.Fprintf(stdout, "%s unlocked: locked %s from %s after %d failed authentications\n",
		res.Username, stamp(res.Lock.LockedAt), or(res.Lock.From), res.Lock.Failures)
	// A locked totem stopped asking but for one probe a day (sync/uplink).
	fmt.Fprintln(stdout, "a totem reconnects at its next probe (within a day), or at once when totemd is restarted")
	return nil
}

// lockUser locks a broker user until an unlock (ops): a stolen totem.
func lockUser(ctx context.Context, cfg *config.Totemctl, args []string, stdout, _ io.Writer) error {
	res, err := accountReply[hub.LockResult](ctx, cfg, "lock", args)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s locked: refused until totemctl unlock %s\n", res.Username, res.Username)
	return nil
}

// accountReply sends the hub command name about the one account args
// names (a totem or a console) and returns the hub's reply.
func accountReply[T any](ctx context.Context, cfg *config.Totemctl, name string, args []string) (T, error) {
	if len(args) != 1 || !protocol.ValidTotemID(args[0]) {
		var zero T
		return zero, fmt.Errorf("totemctl: %s NAME (a totem or console)", name)
	}
	return hubReply[T](ctx, cfg, name, map[string]string{"name": args[0]}, name)
}

// locks lists the broker users with failed authentications counted.
func locks(ctx context.Context, cfg *config.Totemctl, args []string, stdout, stderr io.Writer) error {
	return hubList(ctx, cfg, "locks", args, stdout, stderr, nil, renderLocks)
}

// hubList runs a hub command that answers a list of T: -o table|json,
// the request, the decoding, an optional order, then JSON or render.
func hubList[T any](ctx context.Context, cfg *config.Totemctl, name string, args []string, stdout, stderr io.Writer,
	order func(a, b T) int, render func(io.Writer, []T) error) error {
	fs := cli.Flags(name, stderr)
	out := outputFlag(fs, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkOutput(*out, false); err != nil {
		return err
	}
	list, err := hubReply[[]T](ctx, cfg, name, nil, name)
	if err != nil {
		return err
	}
	if order != nil {
		slices.SortStableFunc(list, order)
	}
	if *out == "json" {
		return writeJSON(stdout, list)
	}
	return render(stdout, list)
}

func renderLocks(w io.Writer, ls []broker.Lock) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tSTATE\tFAILURES\tLOCKED AT\tFROM\tLAST FAILURE\tLAST FROM")
	for _, l := range ls {
		state, at := "counting", "-"
		if l.Locked {
			state, at = "LOCKED", stamp(l.LockedAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", l.Username, state, l.Failures, at, or(l.From), stamp(l.Last), or(l.LastFrom))
	}
	return tw.Flush()
}

// enrollTotem asks the hub for a totem's enrollment code (registering the
// totem if needed) and prints it with its expiry: ops gives it to the
// technician by a second channel, who types `totemd enroll CODE`.
func enrollTotem(ctx context.Context, cfg *config.Totemctl, args []string, stdout, _ io.Writer) error {
	if len(args) != 1 || !protocol.ValidTotemID(args[0]) {
		return fmt.Errorf("totemctl: enroll TOTEM")
	}
	c, err := hubReply[hub.EnrollCode](ctx, cfg, "enroll", map[string]string{"totem": args[0]}, "enroll")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "totem %s: enrollment code %s, valid until %s, single use\n"+
		"on the totem: totemd enroll --config FILE %s\n", c.Totem, c.Code, stamp(c.Expires), c.Code)
	return nil
}

// totemCommands are the commands a totem answers: its firmware's and its
// uplink's (test_credentials).
func totemCommands() map[string]string {
	t := cmdsig.Commands("totem")
	maps.Copy(t, cmdsig.LinkCommands())
	return t
}

// credentialsList lists the broker users with their expiry (soonest
// first), a rotation pending and their lock.
func credentialsList(ctx context.Context, cfg *config.Totemctl, args []string, stdout, stderr io.Writer) error {
	return hubList(ctx, cfg, "credentials", args, stdout, stderr, soonestExpiry, renderCredentials)
}

// soonestExpiry orders credentials by expiry, those that never expire
// last.
func soonestExpiry(a, b broker.Credential) int {
	if a.Expires.IsZero() != b.Expires.IsZero() {
		if a.Expires.IsZero() {
			return 1
		}
		return -1
	}
	return a.Expires.Compare(b.Expires)
}

func renderCredentials(stdout io.Writer, cs []broker.Credential) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tROLE\tEXPIRES\tIN\tROTATION\tLOCK")
	now := time.Now()
	for _, c := range cs {
		exp, in := "never", "-"
		if !c.Expires.IsZero() {
			exp, in = stamp(c.Expires), fmt.Sprintf("%dd", int(c.Expires.Sub(now).Hours()/24))
			if !now.Before(c.Expires) {
				in = "EXPIRED"
			}
		}
		rot := stamp(c.Rotated)
		if c.Pending {
			rot = "pending"
		}
		lock := "-"
		switch {
		case c.Locked:
			lock = "LOCKED"
		case c.Failures > 0:
			lock = fmt.Sprintf("%d failures", c.Failures)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Username, c.Role, exp, in, rot, lock)
	}
	return tw.Flush()
}
