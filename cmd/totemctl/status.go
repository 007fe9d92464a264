package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
)

// statusCmd reads the hub's fleet registry through the signed fleet
// command, page by page: it answers at once whatever the fleet's size
// and however often the totems publish, and lists the offline ones too.
func statusCmd(ctx context.Context, cfg *config.Totemctl, args []string, stdout, stderr io.Writer) error {
	fs := cli.Flags("status", stderr)
	out := outputFlag(fs, false)
	offline := fs.Bool("offline", false, "only totems offline (or never seen)")
	alert := fs.Bool("alert", false, "only totems with an alert (offline, device fault, outbox alarm, quarantine, clock)")
	backlog := fs.Int("backlog", 0, "only totems with at least N operations queued")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkOutput(*out, false); err != nil {
		return err
	}
	if *backlog < 0 {
		return fmt.Errorf("totemctl: --backlog %d: want 0 or more", *backlog)
	}
	a := map[string]string{"max": "200"}
	if *offline {
		a["offline"] = "true"
	}
	if *alert {
		a["alert"] = "true"
	}
	if *backlog > 0 {
		a["backlog"] = strconv.Itoa(*backlog)
	}
	one := ""
	if fs.NArg() > 0 {
		one = fs.Arg(0)
		if !protocol.ValidTotemID(one) {
			return fmt.Errorf("totemctl: bad totem id %q", one)
		}
	}
	c, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.close()
	var rows []hub.TotemStatus
	// Pages follow one another by totem id: at most one per 200 entries,
	// bounded so a misbehaving hub cannot keep the console looping.
	for page := 0; ; page++ {
		r, err := c.request(ctx, cfg, protocol.HubCmdTopic, protocol.HubReplyTopic(c.me.Username), "fleet", a)
		if err != nil {
			return fmt.Errorf("totemctl: hub: %w", err)
		}
		var p hub.FleetPage
		if err := json.Unmarshal(r.Data, &p); err != nil {
			return fmt.Errorf("totemctl: fleet: %w", err)
		}
		rows = append(rows, p.Totems...)
		if p.Next == "" || p.Next <= a["after"] || page > p.Total/200+1 {
			break
		}
		a["after"] = p.Next
	}
	if one != "" {
		i := sort.Search(len(rows), func(i int) bool { return rows[i].Totem >= one })
		if i == len(rows) || rows[i].Totem != one {
			return fmt.Errorf("totemctl: totem %s is not in the hub's fleet registry (or not selected)", one)
		}
		rows = rows[i : i+1]
	}
	return printStatus(stdout, rows, *out)
}

// printStatus prints the registry's entries. JSON escapes every control
// character itself; the table shows what totems sent only once cleaned
// of terminal escape sequences and control characters.
func printStatus(w io.Writer, rows []hub.TotemStatus, format string) error {
	if format == "json" {
		if rows == nil {
			rows = []hub.TotemStatus{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOTEM\tSTATUS\tSINCE\tLAST SEEN\tVERSION\tQUEUE\tOLDEST\tOUTBOX\tCLOCK\tLAST OUTCOME\tDEVICES\tCREDENTIALS\tALERTS")
	now := time.Now()
	for _, r := range rows {
		st := r.Status
		if r.Reason != "" {
			st += " (" + r.Reason + ")"
		}
		oldest := "-"
		if r.Queue > 0 && !r.Oldest.IsZero() {
			oldest = ago(r.Oldest)
		}
		outbox := "-"
		if r.Storage > 0 || r.StorageHigh || r.Quarantined > 0 {
			outbox = fmt.Sprintf("%d%%", int(r.Storage*100))
			if r.StorageHigh {
				outbox += " ALARM"
			}
			if r.Quarantined > 0 {
				outbox += fmt.Sprintf(" (%d quarantined)", r.Quarantined)
			}
		}
		clock := "-"
		if r.ClockSynced != nil {
			clock = map[bool]string{true: "synced", false: "NOT SYNCED"}[*r.ClockSynced]
		}
		last := "-"
		if l := r.Last; l != nil {
			last = fmt.Sprintf("#%d %s %s/%s", l.Seq, l.Kind, l.Transport, l.Processing)
			if len(l.Codes) > 0 {
				last += " " + strings.Join(l.Codes, ",")
			}
		}
		var devs []string
		for k, v := range r.Devices {
			devs = append(devs, k+"="+v)
		}
		sort.Strings(devs)
		// The credentials' expiry, with the days left: EXPIRED once the
		// broker refuses them (the totem must be re-enrolled).
		cred := "-"
		if e := r.CredentialsExpire; !e.IsZero() {
			cred = fmt.Sprintf("%s (%dd)", e.Local().Format("2006-01-02"), int(e.Sub(now).Hours()/24))
			if !now.Before(e) {
				cred = e.Local().Format("2006-01-02") + " EXPIRED"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", clean(r.Totem), st, stamp(r.Since), ago(r.LastSeen),
			or(clean(r.Version)), r.Queue, oldest, outbox, clock, clean(last), or(clean(strings.Join(devs, ","))), cred,
			or(clean(strings.Join(r.Alerts, ","))))
	}
	return tw.Flush()
}

// Terminal escape sequences: CSI (ESC [ … final byte), OSC (ESC ] … BEL or
// ST) and the two-byte ones (ESC and one character).
var escapes = regexp.MustCompile(`\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b.?|\x9b[0-?]*[ -/]*[@-~]`)

// clean makes a string a totem sent safe to print on a terminal: escape
// sequences removed, then every control and format character (C0, C1,
// DEL, bidirectional overrides…); tabs and newlines too, which would break
// the table.
func clean(s string) string {
	s = escapes.ReplaceAllString(s, "")
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, s)
}
