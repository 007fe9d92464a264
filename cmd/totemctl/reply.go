package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aslcns/totem/sync/protocol"
)

// replyTables are the totem commands whose reply totemctl prints as a
// table; the others print their JSON.
var replyTables = map[string]func(w io.Writer, data []byte) error{
	"status":           renderTotemStatus,
	"jobs":             renderJobs,
	"test_credentials": renderCredentialsTest,
}

// renderCredentialsTest prints Test credenziali's report as totemd
// credentials test does: each topic checked, then the verdict; a KO is
// an error (the exit status says it).
func renderCredentialsTest(w io.Writer, data []byte) error {
	var r struct {
		Own     []uplinkTopic `json:"own"`
		Foreign *uplinkTopic  `json:"foreign"`
		OK      bool          `json:"ok"`
		Verdict string        `json:"verdict"`
	}
	if err := json.Unmarshal(data, &r); err != nil || r.Verdict == "" {
		return fmt.Errorf("totemctl: test-credentials: not a report: %v", err)
	}
	for _, c := range r.Own {
		fmt.Fprintf(w, "  %-40s %s\n", c.Topic, c.state())
	}
	if r.Foreign != nil {
		fmt.Fprintf(w, "  %-40s %s (must be refused)\n", r.Foreign.Topic, r.Foreign.state())
	}
	fmt.Fprintln(w, r.Verdict)
	if !r.OK {
		return errors.New("totemctl: test-credentials: " + r.Verdict)
	}
	return nil
}

// uplinkTopic is one topic of the report (sync/uplink.TopicCheck).
type uplinkTopic struct {
	Topic   string `json:"topic"`
	Granted bool   `json:"granted"`
}

func (c uplinkTopic) state() string {
	if c.Granted {
		return "granted"
	}
	return "refused"
}

// renderReply prints the data of a command's reply.
func renderReply(w io.Writer, name string, data []byte, asJSON bool) error {
	if len(data) == 0 {
		_, err := fmt.Fprintln(w, "ok")
		return err
	}
	if f := replyTables[name]; f != nil && !asJSON {
		return f(w, data)
	}
	_, err := fmt.Fprintln(w, string(data))
	return err
}

// renderTotemStatus prints a totem's status (its telemetry) one field a
// line.
func renderTotemStatus(w io.Writer, data []byte) error {
	var t protocol.Telemetry
	if err := json.Unmarshal(data, &t); err != nil {
		return fmt.Errorf("totemctl: status: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("totem", t.Totem)
	row("at", stamp(t.At))
	row("uptime", (time.Duration(t.Uptime) * time.Second).String())
	q := fmt.Sprintf("%d waiting, last seq %d", t.Queue.Depth, t.Queue.LastSeq)
	if t.Queue.Depth > 0 {
		q += fmt.Sprintf(", oldest seq %d since %s", t.Queue.OldestSeq, stamp(t.Queue.Oldest))
	}
	row("queue", q)
	if l := t.Last; l != nil {
		row("last outcome", strings.Join(nonEmpty(fmt.Sprintf("seq %d", l.Seq), l.Kind, l.Transport+"/"+l.Processing, l.Protocol, stamp(l.At)), "  "))
	} else {
		row("last outcome", "-")
	}
	row("devices", pairs(t.Devices))
	if s := t.Storage; s != nil {
		st := fmt.Sprintf("%.0f%% of quota, %d pending, %d bytes", s.Fraction*100, s.Pending, s.Bytes)
		if s.Quarantined > 0 {
			st += fmt.Sprintf(", %d in quarantine", s.Quarantined)
		}
		if s.Alarm {
			st += " (ALARM)"
		}
		row("storage", st)
	}
	if len(t.Refused) > 0 {
		m := make(map[string]string, len(t.Refused))
		for k, v := range t.Refused {
			m[k] = fmt.Sprint(v)
		}
		row("refused commands", pairs(m))
	}
	if c := t.ConnRefused; c != nil {
		row("connection refused", fmt.Sprintf("%s (0x%02X) ×%d, %s – %s", c.Reason, c.Code, c.Count, stamp(c.First), stamp(c.Last)))
	}
	return tw.Flush()
}

// renderJobs prints a totem's print queue, one job a line.
func renderJobs(w io.Writer, data []byte) error {
	var jobs []protocol.PrintJob
	if err := json.Unmarshal(data, &jobs); err != nil {
		return fmt.Errorf("totemctl: jobs: %w", err)
	}
	if len(jobs) == 0 {
		_, err := fmt.Fprintln(w, "no print jobs")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tATTEMPTS\tCOPIES\tCREATED\tTITLE\tOP\tLAST ERROR")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", j.ID, j.State, j.Attempts, j.Copies, stamp(j.Created),
			j.Title, or(j.OpID), or(j.LastErr))
	}
	return tw.Flush()
}

// pairs prints a map as "k=v k=v" in key order ("-" when empty).
func pairs(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return strings.Join(out, " ")
}

func nonEmpty(ss ...string) []string {
	return slices.DeleteFunc(ss, func(s string) bool { return s == "" || s == "/" })
}
