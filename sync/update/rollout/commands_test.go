package rollout

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/aslcns/totem/sync/update"
)

func upload(t *testing.T, r *Rollout, console string, manifest, payload []byte) {
	t.Helper()
	for _, p := range []struct {
		part string
		b    []byte
	}{{update.PartManifest, manifest}, {update.PartPayload, payload}} {
		for off := 0; off < len(p.b); off += 5000 {
			u := update.Upload{V: protocol.Version, Part: p.part, Offset: int64(off), Total: int64(len(p.b)),
				Data: p.b[off:min(off+5000, len(p.b))]}
			b, _ := json.Marshal(u)
			got, err := update.DecodeUpload(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Upload(console, got); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func digest(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// job_create takes only the bundle the signed command names, signed by an
// ops key the hub trusts.
func TestCommandCreate(t *testing.T) {
	r, manifest, payload, trusted := createRig(t)
	fleet := Fleet{All: func() ([]string, error) { return []string{"a", "b"}, nil }}
	args := func(sum string) map[string]string {
		return map[string]string{"job": "j1", "manifest_sha256": sum, "targets": "all", "rate": "5", "abort_pct": "20"}
	}
	if _, err := r.Command("ops", CmdCreate, args(digest(manifest)), trusted, fleet); err == nil {
		t.Fatal("created without an upload")
	}
	upload(t, r, "ops", manifest, payload)
	if _, err := r.Command("ops", CmdCreate, args(strings.Repeat("0", 64)), trusted, fleet); err == nil {
		t.Fatal("created for another manifest's digest")
	}
	if _, err := r.Command("other", CmdCreate, args(digest(manifest)), trusted, fleet); err == nil {
		t.Fatal("created from another console's upload")
	}
	stranger, _ := cmdsig.Generate("ops1", cmdsig.Ops)
	if _, err := r.Command("ops", CmdCreate, args(digest(manifest)), []cmdsig.PublicKey{stranger.Public()}, fleet); err == nil {
		t.Fatal("created a bundle no trusted key signed")
	}
	out, err := r.Command("ops", CmdCreate, args(digest(manifest)), trusted, fleet)
	if err != nil {
		t.Fatal(err)
	}
	var j Job
	if err := json.Unmarshal(out, &j); err != nil || j.ID != "j1" || len(j.Targets) != 2 || j.Rate != 5 {
		t.Fatalf("%s %v", out, err)
	}
	out, err = r.Command("ops", CmdStatus, map[string]string{"job": "j1"}, trusted, fleet)
	if err != nil || !strings.Contains(string(out), `"queued"`) {
		t.Fatalf("status %s %v", out, err)
	}
	if _, err := r.Command("ops", CmdCancel, map[string]string{"job": "j1"}, trusted, fleet); err != nil {
		t.Fatal(err)
	}
}

// createRig is a rollout with a short upload wait and a bundle signed by
// an ops key, the one trusted key.
func createRig(t *testing.T) (r *Rollout, manifest, payload []byte, trusted []cmdsig.PublicKey) {
	t.Helper()
	UploadWait = 50 * time.Millisecond
	r, _, _, _ = newRig(t)
	k, err := cmdsig.Generate("ops1", cmdsig.Ops)
	if err != nil {
		t.Fatal(err)
	}
	manifest, payload = signedBy(t, k)
	return r, manifest, payload, []cmdsig.PublicKey{k.Public()}
}

func signedBy(t *testing.T, k cmdsig.PrivateKey) ([]byte, []byte) {
	t.Helper()
	p := make([]byte, 2*update.MinChunk+1)
	return synctest.SignedBundle(t, k, "2.0.0", "arm64", p, update.MinChunk), p
}

// targets=asl=NAME offers the job to the totems that said they serve
// that ASL; an ASL no totem serves, or a hub that knows none, creates
// nothing.
func TestCommandCreateForAnASL(t *testing.T) {
	r, manifest, payload, trusted := createRig(t)
	asked := ""
	fleet := Fleet{
		All: func() ([]string, error) { return []string{"a", "b", "c"}, nil },
		InASL: func(asl string) []string {
			asked = asl
			if asl == "ASL Roma 1" {
				return []string{"b", "c"}
			}
			return nil
		},
	}
	args := func(job, targets string) map[string]string {
		return map[string]string{"job": job, "manifest_sha256": digest(manifest), "targets": targets, "rate": "1", "abort_pct": "50"}
	}
	upload(t, r, "ops", manifest, payload)
	if _, err := r.Command("ops", CmdCreate, args("j0", "asl=ASL Nessuna"), trusted, fleet); err == nil {
		t.Fatal("created for an ASL no totem serves")
	}
	if _, err := r.Command("ops", CmdCreate, args("j0", "asl=ASL Roma 1"), trusted, Fleet{}); err == nil {
		t.Fatal("created for an ASL on a hub that knows none")
	}
	out, err := r.Command("ops", CmdCreate, args("j1", "asl=ASL Roma 1"), trusted, fleet)
	if err != nil {
		t.Fatal(err)
	}
	var j Job
	if err := json.Unmarshal(out, &j); err != nil || asked != "ASL Roma 1" || !slices.Equal(j.Targets, []string{"b", "c"}) {
		t.Fatalf("job %s (asked %q): %v", out, asked, err)
	}
}
