package rollout

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/update"
)

// The hub commands of fleet jobs (cmdsig's table: ops).
const (
	CmdCreate = "job_create" // job, manifest_sha256, targets (all | asl=NAME | id,id…), rate, abort_pct
	CmdStatus = "job_status" // job; none: every job
	CmdCancel = "job_cancel" // job
)

func (r *Rollout) uploadDir(console string) string { return filepath.Join(r.dir, "uploads", console) }

// Upload stages a piece of console's bundle. A console has one upload at a
// time: a piece at offset 0 starts its part again.
func (r *Rollout) Upload(console string, u *update.Upload) error {
	if !protocol.ValidTotemID(console) {
		return fmt.Errorf("%w: console", ErrInvalid)
	}
	dir := r.uploadDir(console)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("rollout: %w", err)
	}
	flags := os.O_WRONLY | os.O_CREATE
	if u.Offset == 0 {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(filepath.Join(dir, u.Part), flags, 0o600)
	if err != nil {
		return fmt.Errorf("rollout: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteAt(u.Data, u.Offset); err != nil {
		return fmt.Errorf("rollout: %w", err)
	}
	return nil
}

// Command runs a job command a console signed (the hub's verifier has
// checked it). trusted are the ops keys the hub trusts: a bundle is
// refused here already if none of them signed it, so a job never offers
// what every totem would refuse. fleet resolves targets=all and
// targets=asl=NAME.
func (r *Rollout) Command(console, name string, args map[string]string, trusted []cmdsig.PublicKey,
	fleet Fleet) (json.RawMessage, error) {
	switch name {
	case CmdCreate:
		j, err := r.create(console, args, trusted, fleet)
		if err != nil {
			return nil, err
		}
		j.Manifest = nil
		return json.Marshal(j)
	case CmdStatus:
		if args["job"] == "" {
			jobs, err := r.Jobs()
			if err != nil {
				return nil, err
			}
			return json.Marshal(jobs)
		}
		st, err := r.Status(args["job"])
		if err != nil {
			return nil, err
		}
		st.Job.Manifest = nil
		return json.Marshal(st)
	case CmdCancel:
		j, err := r.Cancel(args["job"])
		if err != nil {
			return nil, err
		}
		j.Manifest = nil
		return json.Marshal(j)
	}
	return nil, fmt.Errorf("rollout: unknown command %s", name)
}

// UploadWait bounds how long job_create waits for the upload it names:
// the pieces come on another connection (the rollout server's) than the
// command (the hub's), so the command can arrive first.
var UploadWait = 30 * time.Second

// awaitUpload waits until dir holds the manifest with digest sum and a
// payload of the manifest's size.
func (r *Rollout) awaitUpload(dir, sum string) ([]byte, *update.Manifest, error) {
	deadline := time.Now().Add(UploadWait)
	for {
		manifest, err := os.ReadFile(filepath.Join(dir, update.PartManifest))
		if err == nil {
			got := sha256.Sum256(manifest)
			if hex.EncodeToString(got[:]) == sum {
				m, err := update.Decode(manifest)
				if err != nil {
					return nil, nil, err
				}
				if st, err := os.Stat(filepath.Join(dir, update.PartPayload)); err == nil && st.Size() == m.Size {
					return manifest, m, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return nil, nil, errors.New("the bundle the command names was not uploaded by this console (upload again)")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Fleet is what the hub knows of its totems, for a job's targets.
type Fleet struct {
	// All lists every totem (targets=all); nil: the hub does not know
	// its fleet (an external broker).
	All func() ([]string, error)
	// InASL lists the totems that said they serve an ASL
	// (targets=asl=NAME); nil: the hub does not know.
	InASL func(asl string) []string
}

// TargetASL prefixes the ASL a job targets: targets=asl=ASL Roma 1.
const TargetASL = "asl="

func (r *Rollout) create(console string, args map[string]string, trusted []cmdsig.PublicKey,
	fleet Fleet) (*Job, error) {
	dir := r.uploadDir(console)
	manifest, m, err := r.awaitUpload(dir, args["manifest_sha256"])
	if err != nil {
		return nil, err
	}
	if _, err := update.Verify(manifest, trusted, m.Arch); err != nil {
		return nil, err
	}
	payload, err := os.ReadFile(filepath.Join(dir, update.PartPayload))
	if err != nil {
		return nil, errors.New("no payload uploaded by this console")
	}
	var targets []string
	switch t := args["targets"]; t {
	case "":
		return nil, errors.New("targets: all, asl=NAME or a comma-separated list of totem ids")
	case "all":
		if fleet.All == nil {
			return nil, errors.New("targets=all: this hub does not know its fleet (an external broker): list the totems")
		}
		if targets, err = fleet.All(); err != nil {
			return nil, err
		}
	default:
		if asl, ok := strings.CutPrefix(t, TargetASL); ok {
			if fleet.InASL == nil {
				return nil, errors.New("targets=asl: this hub does not know its totems' ASL: list the totems")
			}
			if targets = fleet.InASL(asl); len(targets) == 0 {
				// The name is the console's input: not quoted back.
				return nil, errors.New("targets=asl: no totem of the hub's fleet said it serves that ASL (totem.asl)")
			}
			break
		}
		targets = strings.Split(t, ",")
	}
	rate, err := strconv.Atoi(args["rate"])
	if err != nil {
		return nil, errors.New("rate: offers per minute, a number")
	}
	pct, err := strconv.Atoi(args["abort_pct"])
	if err != nil {
		return nil, errors.New("abort_pct: a percentage, a number")
	}
	j, err := r.Create(args["job"], manifest, payload, targets, rate, pct)
	if err != nil {
		return nil, err
	}
	os.RemoveAll(dir)
	return j, nil
}
