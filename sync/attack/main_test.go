package attack

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"

	"github.com/aslcns/totem/sync/synctest"
)

// logCheck is the name of the final personal-data check in TestMain.
const logCheck = "TestMain/no-personal-data-in-logs"

var (
	table = flag.Bool("attack.table", false, "print the table attack → outcome → figures after the run")

	bins   string // the built totemhub, totemctl and totemd
	logDir string // every log the suite wrote: read by the personal-data check
)

// failf fails the test on a finding's assertion.
func failf(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Fatalf(format, args...)
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	// 3 000 hostile sockets and the rig's own need more than the usual
	// 1 024 descriptors; the hard limit is the bound.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	dir, err := os.MkdirTemp("", "totem-attack-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(dir)
	bins = filepath.Join(dir, "bin")
	logDir = filepath.Join(dir, "logs")
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	// The binaries as they ship: no race detector, no build tags (totemd
	// has its simulated reader without pcsc).
	build := exec.Command("go", "build", "-o", bins+string(filepath.Separator), "./cmd/totemhub", "./cmd/totemctl", "./cmd/totemd")
	build.Dir = filepath.Join("..", "..")
	if src := os.Getenv("ATTACK_SRC"); src != "" {
		// The binaries of another tree, e.g. a fix branch's
		// (git archive BRANCH | tar -x -C DIR), against this suite.
		build.Dir = src
		fmt.Printf("attack: binaries built from %s\n", src)
	}
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "attack: go build: %v\n%s", err, out)
		return 2
	}
	code := m.Run()

	leaks := scanLogs(logDir)
	outcome := "ok"
	switch {
	case len(leaks) > 0:
		outcome = "FAIL"
		fmt.Printf("--- FAIL: %s: %d log lines carry personal data:\n", logCheck, len(leaks))
		printLeaks(leaks)
		if code == 0 {
			code = 1
		}
	}
	files, lines := logStats(logDir)
	addRow(row{attack: "11 personal data in any log line", test: logCheck, outcome: outcome,
		figs: []string{fmt.Sprintf("log files %d", files), fmt.Sprintf("lines %d", lines), fmt.Sprintf("leaks %d", len(leaks))}})
	if *table {
		printTable(os.Stdout)
	}
	return code
}

// attackPIN is the PIN-like value the malformed envelopes carry.
const attackPIN = "93172864"

// personal is what must never be in a log line besides a codice fiscale
// of any shape: the names and codes of the demo cards (the malformed
// envelopes carry them), the test PINs and the envelopes' PIN-like field.
var personal = append(synctest.Personal(), attackPIN)

// scanLogs returns every line of every file under dir that carries
// personal data (synctest.PII), as "file:line: text" with the data
// itself masked. The match is exact: a log quotes what it got, and the
// names are upper case as on a card.
func scanLogs(dir string) []string {
	var leaks []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for n := 1; sc.Scan(); n++ {
			if bad := synctest.PII(sc.Text(), attackPIN); len(bad) > 0 {
				masked := bad[0]
				if len(masked) > 200 {
					masked = masked[:200] + "…"
				}
				leaks = append(leaks, fmt.Sprintf("%s:%d: %s", filepath.Base(path), n, masked))
			}
		}
		return nil
	})
	return leaks
}

func printLeaks(leaks []string) {
	for i, l := range leaks {
		if i == 20 {
			fmt.Printf("    … and %d more\n", len(leaks)-i)
			break
		}
		fmt.Println("    " + l)
	}
}

func logStats(dir string) (files, lines int) {
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		files++
		if b, err := os.ReadFile(path); err == nil {
			lines += strings.Count(string(b), "\n")
		}
		return nil
	})
	return files, lines
}

// row is one attack of the table.
type row struct {
	attack, test, outcome string
	figs                  []string
}

var (
	rowsMu sync.Mutex
	rows   []row
)

func addRow(r row) {
	rowsMu.Lock()
	rows = append(rows, r)
	rowsMu.Unlock()
}

// record starts the table row of t's attack; its outcome is set when the
// test ends. Figures are added with fig.
func record(t *testing.T, attack string) *row {
	r := &row{attack: attack, test: t.Name()}
	t.Cleanup(func() {
		switch {
		case t.Skipped():
			r.outcome = "skipped"
		case t.Failed():
			r.outcome = "FAIL"
		default:
			r.outcome = "ok"
		}
		addRow(*r)
	})
	return r
}

func (r *row) fig(format string, args ...any) { r.figs = append(r.figs, fmt.Sprintf(format, args...)) }

func printTable(w io.Writer) {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].attack < rows[j].attack })
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ATTACK\tOUTCOME\tFIGURES")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.attack, r.outcome, strings.Join(r.figs, ", "))
	}
	tw.Flush()
}
