package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/protocol"
)

// auditCmd is totemctl audit: the hub's central audit, filtered, or
// "audit verify" (the chain recomputed, the first broken record named:
// exit non-zero), or "audit add ACTION [DETAIL]" (an entry under this
// console's name).
func auditCmd(ctx context.Context, cfg *config.Totemctl, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "verify":
			return auditVerify(ctx, cfg, args[1:], stdout)
		case "add":
			if len(args) < 2 || len(args) > 3 {
				return errors.New("totemctl: audit add ACTION [DETAIL]")
			}
			a := map[string]string{"action": args[1]}
			if len(args) == 3 {
				a["detail"] = args[2]
			}
			rec, err := hubReply[protocol.AuditRecord](ctx, cfg, "audit_add", a, "audit add")
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "recorded as %d\n", rec.Seq)
			return nil
		}
	}
	fs := cli.Flags("audit", stderr)
	totem := fs.String("totem", "", `only this source: a totem id, or "hub"`)
	actor := fs.String("actor", "", "only actors containing this")
	action := fs.String("action", "", "only this action (command, command_refused, operator_login…)")
	since := fs.String("since", "", "from this time (RFC 3339 or YYYY-MM-DD, inclusive)")
	until := fs.String("until", "", "to this time (RFC 3339 or YYYY-MM-DD, exclusive)")
	maxN := fs.Int("max", 100, "the newest N records (1-1000)")
	out := outputFlag(fs, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkOutput(*out, false); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("totemctl: audit: unexpected %q (audit [filters] | audit verify | audit add ACTION [DETAIL])", fs.Arg(0))
	}
	a := map[string]string{"max": strconv.Itoa(*maxN)}
	for k, v := range map[string]string{"totem": *totem, "actor": *actor, "action": *action, "since": *since, "until": *until} {
		if v != "" {
			a[k] = v
		}
	}
	recs, err := hubReply[[]protocol.AuditRecord](ctx, cfg, "audit", a, "audit")
	if err != nil {
		return err
	}
	if *out == "json" {
		return writeJSON(stdout, recs)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tSOURCE\tACTOR\tACTION\tDETAIL")
	for _, rec := range recs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", rec.Seq, stamp(rec.At), rec.Source, rec.Actor, rec.Action,
			or(strings.ReplaceAll(rec.Detail, "\t", " ")))
	}
	return tw.Flush()
}

// errBroken is audit verify's error when the chain is broken.
var errBroken = errors.New("totemctl: the audit chain is broken")

func auditVerify(ctx context.Context, cfg *config.Totemctl, args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return errors.New("totemctl: audit verify takes no arguments")
	}
	v, err := hubReply[protocol.AuditVerify](ctx, cfg, "audit_verify", nil, "audit verify")
	if err != nil {
		return err
	}
	if !v.OK {
		fmt.Fprintf(stdout, "BROKEN at record %d: %s\n", v.Broken, v.Problem)
		return errBroken
	}
	fmt.Fprintf(stdout, "ok: %d records verified", v.Records)
	if v.Records > 0 {
		fmt.Fprintf(stdout, " (%d to %d)", v.First, v.Last)
	}
	if v.Purged > 0 {
		fmt.Fprintf(stdout, ", %d older records purged before them (anchored)", v.Purged)
	}
	fmt.Fprintln(stdout)
	return nil
}
