// Package totem_test holds the checks that keep the module's shape: the
// direction of imports between layers (style.md §1), a package comment on
// every package, and the programs working together as built binaries.
package totem_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/aslcns/totem"

type pkg struct {
	ImportPath string
	Doc        string
	Name       string
	Deps       []string
	Imports    []string
	Standard   bool
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps=false", "-json", "./...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// deps returns the transitive dependencies of every package of the module.
func deps(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, "./...").Output()
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string][]string)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		m[f[0]] = f[1:]
	}
	return m
}

func rel(p string) string {
	if p == module {
		return "."
	}
	return strings.TrimPrefix(p, module+"/")
}

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// allowed reports whether package from (relative) may depend on package to
// (relative, inside the module).
func allowed(from, to string) (bool, string) {
	switch {
	case under(to, "cmd") && !under(from, "cmd"):
		return false, "only mains live in cmd"
	case under(to, "firmware") && !under(from, "firmware") && !under(from, "cmd"):
		return false, "nothing imports firmware but the mains"
	case under(from, "hal") && !under(to, "hal"):
		return false, "hal imports only the standard library (and hal)"
	case under(from, "internal"):
		return false, "internal/* are leaves (standard library and vendor packages only)"
	// config and the CMS reach the internal/* leaves (and only them, and
	// cardid below): a file is written atomically (atomicfile) and a bbolt
	// file opened (boltdb) one way for every package, not once per layer.
	case from == "config" && !under(to, "internal"):
		return false, "config is a leaf (but for the internal/* leaves)"
	case under(from, "cardid"):
		return false, "cardid is a leaf"
	// cardid is the one exception on both sides below: the CMS and the card
	// stack check the same codes (TEAM, Luhn, CF) and may not import each
	// other, so the arithmetic sits in a leaf both reach.
	// The private-PostgreSQL kit starts servers: tests only (their
	// imports are not in go list -deps, so any edge to it is a mistake).
	case under(to, "cms/pgstore/pgtest") && !under(from, "cms/pgstore/pgtest"):
		return false, "pgtest is a test kit: only tests import it"
	// The central side's kit (broker + hub + CMS, MQTT client, log
	// capture) likewise: tests of any package above cms import it.
	case under(to, "sync/synctest") && !under(from, "sync/synctest"):
		return false, "synctest is a test kit: only tests import it"
	// The speech driver's kit (sox's figures of a WAV file) likewise.
	case under(to, "drivers/speech/speechtest") && !under(from, "drivers/speech/speechtest"):
		return false, "speechtest is a test kit: only tests import it"
	// And the fake systemd the tests of totemd and totemhub run them under.
	case under(to, "cmd/internal/sdnotify/sdnotifytest") && !under(from, "cmd/internal/sdnotify/sdnotifytest"):
		return false, "sdnotifytest is a test kit: only tests import it"
	case under(from, "cms") && !under(to, "cms") && to != "cardid" && !under(to, "internal"):
		return false, "cms imports nothing of ours outside cms (but the cardid and internal/* leaves)"
	case under(from, "drivers") && (under(to, "firmware") || under(to, "sync") || to == "config" || under(to, "cms")):
		return false, "drivers import only hal (and drivers)"
	case under(from, "sync") && (under(to, "drivers") || to == "config" || under(to, "hal")):
		return false, "sync imports neither drivers, config nor hal"
	}
	return true, ""
}

func TestLayers(t *testing.T) {
	for from, ds := range deps(t) {
		for _, d := range ds {
			if !under(d, module) {
				continue
			}
			if ok, why := allowed(rel(from), rel(d)); !ok {
				t.Errorf("%s depends on %s: %s", rel(from), rel(d), why)
			}
		}
	}
}

// The rule function itself must refuse what style.md forbids.
func TestLayerRules(t *testing.T) {
	bad := [][2]string{
		{"hal", "sync/outbox"}, {"hal/sim", "cms"}, {"drivers/term", "firmware"}, {"drivers/term", "config"},
		{"drivers/term", "sync/protocol"}, {"sync/hub", "drivers/term"}, {"sync/uplink", "config"},
		{"config", "hal"}, {"cms", "sync/protocol"}, {"sync/hub", "firmware"}, {"hal", "cmd/internal/cli"},
		{"cardid", "hal"}, {"cardid", "cms"}, {"cms", "hal"}, {"drivers/cns", "cms"},
		{"cms/pgstore", "sync/hub"}, {"cms/pgstore", "config"}, {"cms/pgstore/pgtest", "sync/protocol"},
		{"cmd/totemhub", "cms/pgstore/pgtest"}, {"sync/hub", "cms/pgstore/pgtest"}, {"cms/pgstore", "cms/pgstore/pgtest"},
		{"firmware", "sync/synctest"}, {"cmd/totemhub", "sync/synctest"}, {"sync/hub", "sync/synctest"},
		{"sync/synctest", "hal"}, {"sync/synctest", "drivers/term"}, {"sync/synctest", "config"}, {"sync/synctest", "firmware"},
		{"cms", "sync/synctest"}, {"drivers/speech", "drivers/speech/speechtest"}, {"firmware", "drivers/speech/speechtest"},
		{"cmd/totemd", "cmd/internal/sdnotify/sdnotifytest"}, {"cmd/internal/sdnotify", "cmd/internal/sdnotify/sdnotifytest"},
		{"config", "cms"}, {"config", "sync/protocol"}, {"config", "hal"}, {"cms", "config"},
		{"internal/atomicfile", "config"}, {"internal/boltdb", "cms"}, {"internal/lograte", "sync/protocol"},
		{"internal/atomicfile", "cardid"}, {"hal", "internal/atomicfile"},
		{"hal", "internal/boltdb"}, {"hal/haltest", "internal/lograte"}, {"internal/clock", "hal"},
		{"hal", "internal/clock"}, {"hal/haltest", "internal/clock"},
	}
	for _, b := range bad {
		if ok, _ := allowed(b[0], b[1]); ok {
			t.Errorf("%s → %s allowed", b[0], b[1])
		}
	}
	good := [][2]string{{"firmware", "hal/sim"}, {"sync/hub", "cms"}, {"drivers/term", "hal"}, {"cmd/totemd", "firmware"},
		{"cms", "cardid"}, {"drivers/cns", "cardid"}, {"cmd/totemhub", "cms/pgstore"}, {"sync/hub", "cms/pgstore"},
		{"cms/pgstore", "cms"}, {"sync/synctest", "sync/hub"}, {"sync/synctest", "cms/refcms"},
		{"config", "internal/atomicfile"}, {"cms/refcms", "internal/boltdb"}, {"sync/hub/web", "internal/atomicfile"},
		{"sync/uplink", "internal/clock"}, {"cms/refcms", "internal/clock"}, {"cmd/totemhub", "internal/clock"}}
	for _, g := range good {
		if ok, why := allowed(g[0], g[1]); !ok {
			t.Errorf("%s → %s refused: %s", g[0], g[1], why)
		}
	}
}

func TestPackageComments(t *testing.T) {
	for _, p := range listPackages(t) {
		if p.Doc == "" {
			t.Errorf("%s has no package comment", rel(p.ImportPath))
		}
	}
}
