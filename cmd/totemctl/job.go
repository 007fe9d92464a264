package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/eclipse/paho.golang/paho"

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/update"
	"github.com/aslcns/totem/sync/update/rollout"
)

// uploadPiece is the payload carried by one upload message: in base64
// with its envelope it stays under the broker's 256 KiB packets.
const uploadPiece = 128 << 10

// job runs `totemctl job create|status|cancel`: fleet update jobs at the
// hub (sync/update/rollout), signed ops commands.
func job(ctx context.Context, cfg *config.Totemctl, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("totemctl: job create|status|cancel")
	}
	switch args[0] {
	case "create":
		return jobCreate(ctx, cfg, args[1:], stdout, stderr)
	case "status":
		fs := cli.Flags("job status", stderr)
		out := outputFlag(fs, false)
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		a := map[string]string{}
		if fs.NArg() > 0 {
			a["job"] = fs.Arg(0)
		}
		data, err := jobRequest(ctx, cfg, rollout.CmdStatus, a)
		if err != nil {
			return err
		}
		if *out == "json" {
			_, err := stdout.Write(append(data, '\n'))
			return err
		}
		return printJob(stdout, data, fs.NArg() > 0)
	case "cancel":
		if len(args) != 2 {
			return errors.New("totemctl: job cancel JOB")
		}
		data, err := jobRequest(ctx, cfg, rollout.CmdCancel, map[string]string{"job": args[1]})
		if err != nil {
			return err
		}
		return printJob(stdout, data, false)
	}
	return fmt.Errorf("totemctl: job %s: want create, status or cancel", args[0])
}

func jobRequest(ctx context.Context, cfg *config.Totemctl, name string, args map[string]string) (json.RawMessage, error) {
	r, err := hubRequest(ctx, cfg, name, args)
	if err != nil {
		return nil, err
	}
	return r.Data, nil
}

// suffixedInt is a flag taking a number with or without its unit, as the
// usage writes it: --rate 5/min, --abort-after-failures 20%.
type suffixedInt struct {
	n      int
	suffix string
}

func (s *suffixedInt) String() string { return strconv.Itoa(s.n) + s.suffix }

func (s *suffixedInt) Set(v string) error {
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), s.suffix))
	if err != nil {
		return fmt.Errorf("a whole number, optionally followed by %s", s.suffix)
	}
	s.n = n
	return nil
}

func jobCreate(ctx context.Context, cfg *config.Totemctl, args []string, stdout, stderr io.Writer) error {
	fs := cli.Flags("job create", stderr)
	pkg := fs.String("package", "", "the .deb to roll out")
	name := fs.String("name", "", "package name (default: the .deb's, by dpkg-deb)")
	ver := fs.String("version", "", "package version (default: the .deb's)")
	arch := fs.String("arch", "", "Debian architecture (default: the .deb's)")
	target := fs.String("target", "", "all, asl=NAME (the totems that serve that ASL, their totem.asl), or a comma-separated list of totem ids")
	rate := suffixedInt{n: 1, suffix: "/min"}
	fs.Var(&rate, "rate", "totems offered the update per minute, at most (N or N/min)")
	abort := suffixedInt{n: 10, suffix: "%"}
	fs.Var(&abort, "abort-after-failures", "stop the job once failures pass this percentage of its targets (P or P%)")
	id := fs.String("id", "", "job id (default: a random one)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pkg == "" || *target == "" {
		return errors.New("totemctl: job create --package FILE --target all|asl=NAME|ID,ID… [--rate N/min] [--abort-after-failures P%]")
	}
	if *id == "" {
		*id = "job-" + cli.RandomID(4)
	}
	payload, err := os.ReadFile(*pkg)
	if err != nil {
		return fmt.Errorf("totemctl: %w", err)
	}
	for _, f := range []struct {
		v     *string
		field string
	}{{name, "Package"}, {ver, "Version"}, {arch, "Architecture"}} {
		if *f.v != "" {
			continue
		}
		out, err := exec.CommandContext(ctx, "dpkg-deb", "-f", *pkg, f.field).Output()
		if err != nil {
			return fmt.Errorf("totemctl: %s: dpkg-deb -f %s: %v (give --name, --version and --arch)", *pkg, f.field, err)
		}
		*f.v = strings.TrimSpace(string(out))
	}
	key, err := cmdsig.LoadPrivate(cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("totemctl: signing key: %w", err)
	}
	m, err := update.Build(*name, *ver, *arch, payload, update.DefaultChunk)
	if err != nil {
		return fmt.Errorf("totemctl: %w", err)
	}
	if err := m.Sign(key); err != nil {
		return fmt.Errorf("totemctl: %w", err)
	}
	manifest, err := m.Marshal()
	if err != nil {
		return err
	}
	c, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.close()
	for _, part := range []struct {
		name string
		b    []byte
	}{{update.PartManifest, manifest}, {update.PartPayload, payload}} {
		for off := 0; off < len(part.b); off += uploadPiece {
			u := update.Upload{V: protocol.Version, Part: part.name, Offset: int64(off), Total: int64(len(part.b)),
				Data: part.b[off:min(off+uploadPiece, len(part.b))]}
			b, _ := json.Marshal(u)
			if _, err := c.cm.Publish(ctx, &paho.Publish{Topic: protocol.HubUploadTopic(c.me.Username), QoS: 1, Payload: b}); err != nil {
				return fmt.Errorf("totemctl: upload: %w", err)
			}
		}
	}
	sum := sha256.Sum256(manifest)
	r, err := c.request(ctx, cfg, protocol.HubCmdTopic, protocol.HubReplyTopic(c.me.Username), rollout.CmdCreate, map[string]string{
		"job": *id, "manifest_sha256": hex.EncodeToString(sum[:]), "targets": *target,
		"rate": strconv.Itoa(rate.n), "abort_pct": strconv.Itoa(abort.n)})
	if err != nil {
		return fmt.Errorf("totemctl: hub: %w", err)
	}
	return printJob(stdout, r.Data, false)
}

// printJob prints a job (with its totems when withTotems), or a list.
func printJob(w io.Writer, data json.RawMessage, withTotems bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	var jobs []rollout.Job
	var st rollout.Status
	switch {
	case json.Unmarshal(data, &jobs) == nil:
	case json.Unmarshal(data, &st) == nil && st.Job.ID != "":
		jobs = []rollout.Job{st.Job}
	default:
		var j rollout.Job
		if err := json.Unmarshal(data, &j); err != nil {
			return fmt.Errorf("totemctl: job: %w", err)
		}
		jobs = []rollout.Job{j}
	}
	fmt.Fprintln(tw, "JOB\tPACKAGE\tVERSION\tSTATE\tTARGETS\tRATE/MIN\tABORT%\tREASON")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", j.ID, j.Package, j.Version, j.State, len(j.Targets), j.Rate, j.AbortPct, or(j.Reason))
	}
	if withTotems && st.Totems != nil {
		fmt.Fprintln(tw, "\nTOTEM\tSTATE\tCHUNKS\tREASON")
		ids := make([]string, 0, len(st.Totems))
		for id := range st.Totems {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			t := st.Totems[id]
			fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\n", id, t.State, t.Chunk, t.Chunks, or(t.Reason))
		}
	}
	return tw.Flush()
}
