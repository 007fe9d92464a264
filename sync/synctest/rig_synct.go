package synctest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/update"
)

// ConsentPayload is a legitimate operation's payload: a consent on the
// first demo card (cms.DemoCards), self-service.
func ConsentPayload() []byte {
	b, _ := json.Marshal(cms.DemoConsent())
	return b
}

// AwaitDrained polls box every 20 ms until it has nothing left to send;
// it fails the test when ctx ends first, naming what (a totem, or "") and
// the queue's figures.
func AwaitDrained(t testing.TB, ctx context.Context, box *outbox.Outbox, what string) {
	t.Helper()
	if what != "" {
		what += ": "
	}
	for {
		q, err := box.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if q.Depth == 0 {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%sbacklog stuck at %+v", what, q)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// NeedMosquittoPasswd returns the mosquitto binary for a broker with a
// password file (deploy/mosquitto's way). Without mosquitto and
// mosquitto_passwd the test is skipped, or fails under CI (.ci/run
// installs them).
func NeedMosquittoPasswd(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err == nil {
		_, err = exec.LookPath("mosquitto_passwd")
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("mosquitto is not installed (.ci/run installs it)")
		}
		t.Skip("mosquitto not installed (apt-get install mosquitto)")
	}
	return bin
}

// WritePasswd writes users into a new mosquitto password file at path
// (mosquitto_passwd, mode 0600).
func WritePasswd(t testing.TB, path string, users ...creds.File) {
	t.Helper()
	for i, u := range users {
		args := []string{"-b", path, u.Username, u.Password}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command("mosquitto_passwd", args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v %s", err, out)
		}
	}
	os.Chmod(path, 0o600)
}

// DeployACL is the absolute path of the repository's
// deploy/mosquitto/acl, the ACL a deployed mosquitto runs with; the
// repository is the first folder above the test's (its package's) with a
// go.mod.
func DeployACL(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "deploy", "mosquitto", "acl")
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("synctest: no go.mod above the test's folder")
		}
		dir = up
	}
}

// SignedBundle is an update bundle's manifest for payload p (totemd
// version on arch, in chunks of chunk bytes) signed by k, marshalled.
func SignedBundle(t testing.TB, k cmdsig.PrivateKey, version, arch string, p []byte, chunk int) []byte {
	t.Helper()
	m, err := update.Build("totemd", version, arch, p, chunk)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sign(k); err != nil {
		t.Fatal(err)
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// QueuedOutbox opens an outbox in a temporary directory, closed when the
// test ends, with n consent operations (ConsentPayload) queued.
func QueuedOutbox(t testing.TB, n int) *outbox.Outbox {
	t.Helper()
	return QueuedOutboxAt(t, filepath.Join(t.TempDir(), "outbox.db"), n)
}

// QueuedOutboxAt is QueuedOutbox at path.
func QueuedOutboxAt(t testing.TB, path string, n int) *outbox.Outbox {
	t.Helper()
	box, err := outbox.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { box.Close() })
	p := ConsentPayload()
	for range n {
		if _, err := box.Enqueue(cms.KindConsent, p, time.Now(), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	return box
}

// AssertInOrder fails the test unless the CMS audit holds, for every
// totem, its sequence numbers 1, 2, 3… each once and in order, and want
// records in all.
func AssertInOrder(t testing.TB, audit []refcms.AuditRecord, want int) {
	t.Helper()
	last := map[string]uint64{}
	for _, a := range audit {
		if a.Seq != last[a.Totem]+1 {
			t.Fatalf("%s: seq %d applied after %d (twice or out of order)", a.Totem, a.Seq, last[a.Totem])
		}
		last[a.Totem] = a.Seq
	}
	if len(audit) != want {
		t.Fatalf("applied %d, want %d", len(audit), want)
	}
}

// Technician is a technician's key (id) and a verifier for target that
// trusts it and the extra keys, its replay record in a temporary
// directory closed when the test ends.
func Technician(t testing.TB, id, target string, extra ...cmdsig.PublicKey) (cmdsig.PrivateKey, *cmdsig.Verifier) {
	t.Helper()
	tech, err := cmdsig.Generate(id, cmdsig.Technician)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := cmdsig.OpenRecord(filepath.Join(t.TempDir(), "commands.db"), cmdsig.RecordOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rec.Close() })
	keys := append(append([]cmdsig.PublicKey(nil), extra...), tech.Public())
	return tech, cmdsig.NewVerifier(target, keys, rec)
}
