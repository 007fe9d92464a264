package agent

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/update"
)

func TestDpkg(t *testing.T) {
	b := newBundle(t, "2.0.0", chunk+1)
	m, err := update.Decode(b.manifest)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	payload := filepath.Join(dir, "payload.part")
	if err := os.WriteFile(payload, b.payload, 0o600); err != nil {
		t.Fatal(err)
	}
	var calls []string
	d := &Dpkg{Dir: filepath.Join(dir, "root"), Package: "totemd", Service: "totemd.service",
		Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
			if name == "sh" { // dpkg-repack in args[3]
				calls = append(calls, "dpkg-repack")
				return nil, os.WriteFile(filepath.Join(args[3], "totemd_1.0.0_arm64.deb"), []byte("old"), 0o600)
			}
			calls = append(calls, name+" "+strings.Join(args, " "))
			if name == "dpkg-query" {
				return []byte("1.0.0"), nil
			}
			return nil, nil
		}}
	if v, err := d.Running(); err != nil || v != "1.0.0" {
		t.Fatalf("Running: %q %v", v, err)
	}
	if err := d.Install(context.Background(), payload, m); err != nil {
		t.Fatal(err)
	}
	inst := filepath.Join(d.Dir, "installing.deb")
	want := []string{"dpkg-query -W -f=${Version} totemd", "dpkg-repack", "dpkg -i " + inst, "systemctl restart totemd.service"}
	if !slices.Equal(calls, want) {
		t.Fatalf("calls %q, want %q", calls, want)
	}
	if err := d.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := calls[len(calls)-2]; got != "dpkg -i "+filepath.Join(d.Dir, "current.deb") {
		t.Fatalf("rollback ran %q", got)
	}
	if old, _ := os.ReadFile(filepath.Join(d.Dir, "current.deb")); string(old) != "old" {
		t.Fatalf("current.deb %q", old)
	}
	if err := d.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if cur, _ := os.ReadFile(filepath.Join(d.Dir, "current.deb")); string(cur) != string(b.payload) {
		t.Fatal("commit did not keep the new package")
	}

	// A payload changed after the download is refused before dpkg runs.
	calls = nil
	bad := append([]byte{}, b.payload...)
	bad[0] ^= 1
	os.WriteFile(payload, bad, 0o600)
	if err := d.Install(context.Background(), payload, m); err == nil {
		t.Fatal("installed a payload that does not match the manifest")
	}
	if len(calls) != 0 {
		t.Fatalf("ran %q", calls)
	}
}

func TestFileHealth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "health.json")
	since := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	h := FileHealth{Path: path, Since: func() time.Time { return since }}
	if ok, _ := h.Healthy(context.Background(), "2.0.0"); ok {
		t.Fatal("healthy without a report")
	}
	WriteHealth(path, HealthReport{Version: "1.0.0", At: since.Add(time.Minute)})
	if ok, _ := h.Healthy(context.Background(), "2.0.0"); ok {
		t.Fatal("healthy on the old version's report")
	}
	WriteHealth(path, HealthReport{Version: "2.0.0", At: since.Add(-time.Minute)})
	if ok, _ := h.Healthy(context.Background(), "2.0.0"); ok {
		t.Fatal("healthy on a report from before the install")
	}
	WriteHealth(path, HealthReport{Version: "2.0.0", At: since.Add(time.Minute)})
	if ok, why := h.Healthy(context.Background(), "2.0.0"); !ok {
		t.Fatal(why)
	}
}
