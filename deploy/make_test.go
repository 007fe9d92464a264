package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// On a fresh machine make test and make run install the packages first
// (deps) and only then decide whether the PC/SC driver can be built: the
// tag is taken after deps ran. Here deps is a script that "installs" the
// PC/SC header, and go a script that records its arguments.
func TestMakeTagsAfterDeps(t *testing.T) {
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Fatal("make is needed by make test itself:", err)
	}
	dir := t.TempDir()
	header := filepath.Join(dir, "winscard.h")
	deps := filepath.Join(dir, "deps.sh")
	goArgs := filepath.Join(dir, "go.args")
	fakeGo := filepath.Join(dir, "go")
	if err := os.WriteFile(deps, []byte("touch '"+header+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fakeGo, []byte("#!/bin/sh\necho \"$@\" >> '"+goArgs+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(mk, "-s", "-C", "..", "GO="+fakeGo, "DEPS_SCRIPT="+deps, "PCSC_HEADER="+header,
		"BIN="+filepath.Join(dir, "bin"), "deps", "build").CombinedOutput()
	if err != nil {
		t.Fatalf("make deps build: %v\n%s", err, out)
	}
	b, err := os.ReadFile(goArgs)
	if err != nil {
		t.Fatal(err)
	}
	var build string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "build ") {
			build = l
		}
	}
	if !strings.Contains(build, "-tags pcsc") {
		t.Fatalf("the build after deps ran without the pcsc tag: %q", build)
	}
}

// deps.sh installs what make test uses, mosquitto (the interop tests) and
// the PC/SC stack included: a missing one turned those tests into skips
// on a fresh machine.
func TestDepsInstallsWhatTestsUse(t *testing.T) {
	b, err := os.ReadFile("deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	var pkgs []string
	for _, m := range regexp.MustCompile(`need\+=\(([a-z0-9.+-]+)\)`).FindAllStringSubmatch(string(b), -1) {
		pkgs = append(pkgs, m[1])
	}
	for _, want := range []string{"mosquitto", "pcscd", "vsmartcard-vpcd", "libpcsclite-dev", "tmux", "socat", "gcc"} {
		if !slices.Contains(pkgs, want) {
			t.Errorf("deps.sh does not install %s (it installs %v)", want, pkgs)
		}
	}
	if out, err := exec.Command("bash", "-n", "deps.sh").CombinedOutput(); err != nil {
		t.Fatalf("deps.sh: %v\n%s", err, out)
	}
}
