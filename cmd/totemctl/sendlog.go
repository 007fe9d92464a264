package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/bundle"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/internal/atomicfile"
	"github.com/aslcns/totem/sync/protocol"
)

// parseMixed parses fs over args with flags and positional arguments in
// any order.
func parseMixed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for range len(args) + 1 { // each round consumes at least one argument
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	return pos, nil
}

func outputFlag(fs *flag.FlagSet, csvToo bool) *string {
	if csvToo {
		return fs.String("o", "table", "output: table, csv or json")
	}
	return fs.String("o", "table", "output: table or json")
}

func checkOutput(out string, csvToo bool) error {
	if out == "table" || out == "json" || csvToo && out == "csv" {
		return nil
	}
	if csvToo {
		return fmt.Errorf("totemctl: -o %s: want table, csv or json", out)
	}
	return fmt.Errorf("totemctl: -o %s: want table or json", out)
}

// writeCSV writes the header, then one record a row.
func writeCSV[T any](w io.Writer, header []string, rows []T, record func(T) []string) error {
	cw := csv.NewWriter(w)
	cw.Write(header)
	for _, r := range rows {
		cw.Write(record(r))
	}
	cw.Flush()
	return cw.Error()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// clockOf shows a totem's clock stamp: wall time, "?" when the clock was
// not synchronised, and boot/offset.
func clockOf(s *protocol.Stamp) string {
	if s == nil {
		return "-"
	}
	sync := ""
	if !s.Synced {
		sync = "?"
	}
	boot := s.Boot
	if len(boot) > 8 {
		boot = boot[:8]
	}
	return fmt.Sprintf("%s%s boot %s +%s", s.Wall.Format("2006-01-02 15:04:05"), sync, boot,
		(time.Duration(s.Mono) * time.Millisecond).String())
}

func errCodes(es []protocol.Error) string {
	var out []string
	for _, e := range es {
		out = append(out, e.Code)
	}
	return strings.Join(out, " ")
}

func renderTotemLog(w io.Writer, rows []protocol.SendLogRow, format string) error {
	switch format {
	case "json":
		return writeJSON(w, rows)
	case "csv":
		return writeCSV(w, []string{"seq", "op_id", "kind", "state", "attempts", "protocol", "transport", "processing", "errors", "clock"},
			rows, func(r protocol.SendLogRow) []string {
				return []string{fmt.Sprint(r.Seq), r.OpID, r.Kind, r.State, fmt.Sprint(r.Attempts), r.Protocol, r.Transport,
					r.Processing, errCodes(r.Errors), clockOf(r.Stamp)}
			})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tOP ID\tKIND\tSTATE\tSENT\tPROTOCOL\tTRANSPORT\tPROCESSING\tERRORS\tTOTEM CLOCK")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.Seq, r.OpID, r.Kind, r.State, r.Attempts,
			or(r.Protocol), or(r.Transport), or(r.Processing), or(errCodes(r.Errors)), clockOf(r.Stamp))
	}
	return tw.Flush()
}

func outcomeOf(t cms.Transmission) string {
	s := t.Transport + "/" + t.Processing
	if t.Duplicate {
		s += " (duplicate)"
	}
	if t.Expect > 0 {
		s += fmt.Sprintf(" (gap: expected %d)", t.Expect)
	}
	if t.Repeats > 0 {
		s += fmt.Sprintf(" (again %d times, last %s)", t.Repeats, stamp(t.Last))
	}
	return s
}

func renderHubLog(w io.Writer, rows []cms.Transmission, format string) error {
	switch format {
	case "json":
		return writeJSON(w, rows)
	case "csv":
		return writeCSV(w, []string{"n", "received", "totem", "seq", "op_id", "kind", "ref", "protocol", "transport", "processing",
			"duplicate", "expect", "codes", "clock"}, rows, func(r cms.Transmission) []string {
			return []string{fmt.Sprint(r.N), r.At.UTC().Format(time.RFC3339), r.Totem, fmt.Sprint(r.Seq), r.OpID, r.Kind,
				r.Ref, r.Protocol, r.Transport, r.Processing, fmt.Sprint(r.Duplicate), fmt.Sprint(r.Expect),
				strings.Join(r.Codes, " "), clockOf(r.Stamp)}
		})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "N\tRECEIVED\tTOTEM\tSEQ\tKIND\tPROTOCOL\tOUTCOME\tCODES\tTOTEM CLOCK")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.N, stamp(r.At), r.Totem, r.Seq, r.Kind, or(r.Protocol),
			outcomeOf(r), or(strings.Join(r.Codes, " ")), clockOf(r.Stamp))
	}
	return tw.Flush()
}

func renderTransmission(w io.Writer, t cms.Transmission, format string) error {
	if format == "json" {
		return writeJSON(w, t)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"N", fmt.Sprint(t.N)}, {"Received", stamp(t.At)}, {"Totem", t.Totem}, {"Seq", fmt.Sprint(t.Seq)},
		{"Op id", t.OpID}, {"Kind", t.Kind}, {"Refers to", or(t.Ref)}, {"Protocol", or(t.Protocol)},
		{"Outcome", outcomeOf(t)}, {"Totem clock", clockOf(t.Stamp)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	for _, e := range t.Errors {
		fmt.Fprintf(tw, "Error:\t%s %s\n", e.Code, e.Message)
	}
	return tw.Flush()
}

// sendlog: a totem's send log, the hub's, or one entry of the hub's.
//
//	sendlog TOTEM [-n N] [-o table|csv|json]
//	sendlog TOTEM --print [-n N]
//	sendlog --hub [--totem T] [--outcome O] [--from D] [--to D] [--before N] [--max N] [-o …]
//	sendlog show N [-o table|json]
//	sendlog receipt N --out FILE.zip
func sendlog(ctx context.Context, cfg *config.Totemctl, args []string, stdout, stderr io.Writer) error {
	fs := cli.Flags("sendlog", stderr)
	hub := fs.Bool("hub", false, "the hub's send log (every totem's transmissions)")
	n := fs.Int("n", 0, "a totem's newest N entries (default 50; 20 with --print)")
	paper := fs.Bool("print", false, "print a totem's send log as a receipt on its printer")
	var f hubLogFilter
	fs.StringVar(&f.totem, "totem", "", "hub: only this totem")
	fs.StringVar(&f.outcome, "outcome", "", "hub: accepted, rejected, refused or duplicate")
	fs.StringVar(&f.from, "from", "", "hub: from this day (YYYY-MM-DD)")
	fs.StringVar(&f.to, "to", "", "hub: to this day (YYYY-MM-DD, exclusive)")
	fs.Uint64Var(&f.before, "before", 0, "hub: the page before entry N")
	fs.IntVar(&f.max, "max", 50, "hub: entries per page")
	out := outputFlag(fs, true)
	zipOut := fs.String("out", "", "receipt: the ZIP file to write")
	pos, err := parseMixed(fs, args)
	if err != nil {
		return err
	}
	if err := checkOutput(*out, true); err != nil {
		return err
	}
	if *paper && (*hub || len(pos) != 1) {
		return errors.New("totemctl: sendlog --print is for one totem: sendlog TOTEM --print [-n N]")
	}
	switch {
	case len(pos) == 2 && pos[0] == "receipt":
		return receipt(ctx, cfg, pos[1], *zipOut, stdout)
	case len(pos) == 2 && pos[0] == "show":
		return sendlogShow(ctx, cfg, pos[1], *out, stdout)
	case *hub && len(pos) == 0:
		return hubSendlog(ctx, cfg, f, *out, stdout, stderr)
	case *paper && !*hub && len(pos) == 1 && protocol.ValidTotemID(pos[0]):
		return sendlogPrint(ctx, cfg, pos[0], *n, stdout)
	case !*paper && !*hub && len(pos) == 1 && protocol.ValidTotemID(pos[0]):
		return totemSendlog(ctx, cfg, pos[0], *n, *out, stdout)
	}
	return errors.New("totemctl: sendlog TOTEM [--print] | sendlog --hub [filters] | sendlog show N | sendlog receipt N --out FILE.zip")
}

// sendlogShow prints entry n of the hub's send log.
func sendlogShow(ctx context.Context, cfg *config.Totemctl, n, out string, stdout io.Writer) error {
	if _, err := strconv.ParseUint(n, 10, 64); err != nil {
		return fmt.Errorf("totemctl: sendlog show %q: want an entry number", n)
	}
	t, err := hubReply[cms.Transmission](ctx, cfg, "sendlog_show", map[string]string{"n": n}, "sendlog")
	if err != nil {
		return err
	}
	return renderTransmission(stdout, t, out)
}

// hubLogFilter is what sendlog --hub asks for.
type hubLogFilter struct {
	totem, outcome, from, to string
	before                   uint64
	max                      int
}

// hubSendlog prints a page of the hub's send log, and on stderr the flag
// that gives the next one.
func hubSendlog(ctx context.Context, cfg *config.Totemctl, f hubLogFilter, out string, stdout, stderr io.Writer) error {
	a := map[string]string{"max": fmt.Sprint(f.max)}
	for k, v := range map[string]string{"totem": f.totem, "outcome": f.outcome, "from": f.from, "to": f.to} {
		if v != "" {
			a[k] = v
		}
	}
	if f.before > 0 {
		a["before"] = fmt.Sprint(f.before)
	}
	page, err := hubReply[struct {
		Rows []cms.Transmission `json:"rows"`
		Next uint64             `json:"next"`
	}](ctx, cfg, "sendlog", a, "sendlog")
	if err != nil {
		return err
	}
	if page.Next > 0 {
		fmt.Fprintf(stderr, "more: --before %d\n", page.Next)
	}
	return renderHubLog(stdout, page.Rows, out)
}

// sendlogPrint has a totem print its send log (its newest n entries).
func sendlogPrint(ctx context.Context, cfg *config.Totemctl, totem string, n int, stdout io.Writer) error {
	a := map[string]string{}
	if n > 0 {
		a["n"] = fmt.Sprint(n)
	}
	p, err := totemReply[printReply](ctx, cfg, totem, "sendlog_print", a, "sendlog")
	if err != nil {
		return err
	}
	return renderPrint(stdout, p)
}

// totemSendlog prints a totem's send log, its newest n entries (50 when
// n is 0).
func totemSendlog(ctx context.Context, cfg *config.Totemctl, totem string, n int, out string, stdout io.Writer) error {
	if n <= 0 {
		n = 50
	}
	rows, err := totemReply[[]protocol.SendLogRow](ctx, cfg, totem, "sendlog", map[string]string{"n": fmt.Sprint(n)}, "sendlog")
	if err != nil {
		return err
	}
	return renderTotemLog(stdout, rows, out)
}

// receipt writes the receipt bundle of the hub's send log entry n (as
// sendlog show N names it) to path: the ZIP with the PDF receipt and, for
// a rejected or refused transmission, the CSV of its errors (cms/bundle).
// It goes through the signed sendlog_show, so the same role reads it.
func receipt(ctx context.Context, cfg *config.Totemctl, n, path string, stdout io.Writer) error {
	if _, err := strconv.ParseUint(n, 10, 64); err != nil {
		return fmt.Errorf("totemctl: sendlog receipt %q: want an entry number", n)
	}
	if path == "" {
		return errors.New("totemctl: sendlog receipt N --out FILE.zip")
	}
	t, err := hubReply[cms.Transmission](ctx, cfg, "sendlog_show", map[string]string{"n": n}, "sendlog receipt")
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := bundle.Write(&b, t); err != nil {
		return fmt.Errorf("totemctl: sendlog receipt: %w", err)
	}
	if err := writeFile(path, b.Bytes()); err != nil {
		return fmt.Errorf("totemctl: sendlog receipt: %w", err)
	}
	files := bundle.PDFName(t.N)
	if bundle.HasErrors(&t) {
		files += ", " + bundle.CSVName(t.N)
	}
	_, err = fmt.Fprintf(stdout, "%s: %s (%d bytes)\n", path, files, b.Len())
	return err
}

// writeFile writes b to path atomically (internal/atomicfile: a temporary
// file beside it, synced, renamed), mode 0600: a half-written bundle is
// never left.
func writeFile(path string, b []byte) error {
	return atomicfile.Write(path, b, 0o600, "."+filepath.Base(path)+".tmp-*")
}

// printReply is what a totem's sendlog_print answers.
type printReply struct {
	Job     uint64 `json:"job"`
	Entries int    `json:"entries"`
	Printed bool   `json:"printed"`
	Printer string `json:"printer"`
}

func renderPrint(w io.Writer, p printReply) error {
	s := fmt.Sprintf("send log: %d entries, print job %d: printed", p.Entries, p.Job)
	if !p.Printed {
		s = fmt.Sprintf("send log: %d entries, print job %d: not printed yet (%s); see jobs", p.Entries, p.Job, p.Printer)
	}
	_, err := fmt.Fprintln(w, s)
	return err
}

// actionRow is what resend, void, correct and cancel answer.
type actionRow struct {
	OpID       string           `json:"op_id"`
	Seq        uint64           `json:"seq"`
	Kind       string           `json:"kind"`
	Ref        string           `json:"ref,omitempty"`
	State      string           `json:"state"`
	Protocol   string           `json:"protocol,omitempty"`
	Transport  string           `json:"transport,omitempty"`
	Processing string           `json:"processing,omitempty"`
	Duplicate  bool             `json:"duplicate,omitempty"`
	Errors     []protocol.Error `json:"errors,omitempty"`
	// Receipt: refund's print job on the totem.
	Receipt *printReply `json:"receipt,omitempty"`
}

func renderAction(w io.Writer, a actionRow) error {
	s := fmt.Sprintf("seq %d %s %s: %s", a.Seq, a.Kind, a.OpID, a.State)
	if a.Ref != "" {
		s += ", refers to " + a.Ref
	}
	if a.Transport != "" {
		s += fmt.Sprintf(", %s/%s %s", a.Transport, a.Processing, a.Protocol)
	}
	for _, e := range a.Errors {
		s += fmt.Sprintf("\n  %s: %s", e.Code, e.Message)
	}
	if a.State == "pending" && a.Transport == "" {
		s += " (queued: the outcome will show in the send log)"
	}
	if p := a.Receipt; p != nil {
		if p.Printed {
			s += fmt.Sprintf("\nreceipt: print job %d: printed", p.Job)
		} else {
			s += fmt.Sprintf("\nreceipt: print job %d: not printed yet (%s); see jobs", p.Job, p.Printer)
		}
	}
	_, err := fmt.Fprintln(w, s)
	return err
}

// action runs resend, void, correct, cancel or refund on a totem.
//
//	resend TOTEM OPID
//	void TOTEM OPID
//	correct TOTEM OPID consents=CODE=1|0,… | payment=REFERENCE
//	cancel TOTEM OPID [--reason TEXT]
//	refund TOTEM OPID [--reason TEXT]
func action(ctx context.Context, cfg *config.Totemctl, name string, args []string, stdout, stderr io.Writer) error {
	fs := cli.Flags(name, stderr)
	reason := fs.String("reason", "", "cancel, refund: why (no personal data)")
	pos, err := parseMixed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 || !protocol.ValidTotemID(pos[0]) {
		return fmt.Errorf("totemctl: %s TOTEM OPID …", name)
	}
	a := map[string]string{"id": pos[1]}
	for _, kv := range pos[2:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || name != "correct" || (k != "consents" && k != "payment") {
			return fmt.Errorf("totemctl: %s: argument %q not understood", name, kv)
		}
		a[k] = v
	}
	if *reason != "" {
		a["reason"] = *reason
	}
	row, err := totemReply[actionRow](ctx, cfg, pos[0], name, a, name)
	if err != nil {
		return err
	}
	if err := renderAction(stdout, row); err != nil {
		return err
	}
	return actionFailed(name, row)
}

// actionFailed is the error (and so the exit status) of a correction or
// cancellation the CMS rejected: a script that cancels must not take a
// refusal for success. (A void's answer is a rejection by design, OP_VOID;
// a resend reports the original's outcome, whatever it was.)
func actionFailed(name string, row actionRow) error {
	if name != "correct" && name != "cancel" || row.Processing != protocol.ProcessingRejected {
		return nil
	}
	codes := make([]string, 0, len(row.Errors))
	for _, e := range row.Errors {
		codes = append(codes, e.Code)
	}
	return fmt.Errorf("totemctl: %s %s: rejected by the CMS (%s)", name, row.OpID, strings.Join(codes, ", "))
}

// resyncReport is what resync answers.
type resyncReport struct {
	HubLastSeq   uint64 `json:"hub_last_seq"`
	LocalLastSeq uint64 `json:"local_last_seq"`
	Checked      int    `json:"checked"`
	Differences  []struct {
		Seq     uint64 `json:"seq"`
		OpID    string `json:"op_id,omitempty"`
		Kind    string `json:"kind,omitempty"`
		What    string `json:"what"`
		Totem   string `json:"totem"`
		Hub     string `json:"hub"`
		Adopted bool   `json:"adopted"`
	} `json:"differences"`
}

func renderResync(w io.Writer, r resyncReport, format string) error {
	if format == "json" {
		return writeJSON(w, r)
	}
	fmt.Fprintf(w, "checked %d operations; totem's last seq %d, hub's %d; %d differences (the hub's record wins)\n",
		r.Checked, r.LocalLastSeq, r.HubLastSeq, len(r.Differences))
	if len(r.Differences) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tKIND\tDIFFERENCE\tTOTEM HAD\tHUB HAS\tADOPTED")
	for _, d := range r.Differences {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%v\n", d.Seq, or(d.Kind), d.What, d.Totem, d.Hub, d.Adopted)
	}
	return tw.Flush()
}

func resync(ctx context.Context, cfg *config.Totemctl, args []string, stdout, stderr io.Writer) error {
	fs := cli.Flags("resync", stderr)
	out := outputFlag(fs, false)
	pos, err := parseMixed(fs, args)
	if err != nil {
		return err
	}
	if err := checkOutput(*out, false); err != nil {
		return err
	}
	if len(pos) != 1 || !protocol.ValidTotemID(pos[0]) {
		return errors.New("totemctl: resync TOTEM")
	}
	rep, err := totemReply[resyncReport](ctx, cfg, pos[0], "resync", nil, "resync")
	if err != nil {
		return err
	}
	return renderResync(stdout, rep, *out)
}

// totemRequest sends the command name to a totem and waits for its reply.
func totemRequest(ctx context.Context, cfg *config.Totemctl, totem, name string, args map[string]string) (*protocol.Reply, error) {
	return request(ctx, cfg, totem, name, args)
}

// hubRequest sends the command name to the hub and waits for its reply.
func hubRequest(ctx context.Context, cfg *config.Totemctl, name string, args map[string]string) (*protocol.Reply, error) {
	return request(ctx, cfg, "", name, args)
}

// request connects, sends the command name to a totem (the hub when
// totem is "") and waits for its reply.
func request(ctx context.Context, cfg *config.Totemctl, totem, name string, args map[string]string) (*protocol.Reply, error) {
	c, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer c.close()
	topic, rt, who := protocol.HubCmdTopic, protocol.HubReplyTopic(c.me.Username), "hub:"
	if totem != "" {
		topic, rt, who = protocol.Topic(totem, protocol.LeafCmd), protocol.ReplyTopic(totem, c.me.Username), totem
	}
	r, err := c.request(ctx, cfg, topic, rt, name, args)
	if err != nil {
		return nil, fmt.Errorf("totemctl: %s %w", who, err)
	}
	return r, nil
}

// hubReply sends the command name to the hub and decodes its reply's
// data into a T; what names the command in a decoding error.
func hubReply[T any](ctx context.Context, cfg *config.Totemctl, name string, args map[string]string, what string) (T, error) {
	return reply[T](ctx, cfg, "", name, args, what)
}

// totemReply is hubReply for a totem's command.
func totemReply[T any](ctx context.Context, cfg *config.Totemctl, totem, name string, args map[string]string, what string) (T, error) {
	return reply[T](ctx, cfg, totem, name, args, what)
}

func reply[T any](ctx context.Context, cfg *config.Totemctl, totem, name string, args map[string]string, what string) (T, error) {
	var v T
	r, err := request(ctx, cfg, totem, name, args)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(r.Data, &v); err != nil {
		return v, fmt.Errorf("totemctl: %s: %w", what, err)
	}
	return v, nil
}
