// Package benchkit holds what the benchmark commands (bench, benchfleet)
// share: their main, their work directory, their lists of sizes and the
// operation they queue.
package benchkit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/aslcns/totem/cms"
)

// Main runs run with a context cancelled by SIGINT or SIGTERM; a failure
// is printed after name and exits 1.
func Main(name string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// WorkDir returns dir, or when it is "" a new temporary directory named
// after prefix; cleanup removes what WorkDir made.
func WorkDir(dir, prefix string) (_ string, cleanup func(), err error) {
	if dir != "" {
		return dir, func() {}, nil
	}
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	return d, func() { os.RemoveAll(d) }, nil
}

// Counts parses a comma-separated list of positive numbers, each at most
// max (no bound when max is 0); a bad one is "bad what".
func Counts(list, what string, max int) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 || max > 0 && n > max {
			return nil, fmt.Errorf("bad %s %q", what, f)
		}
		out = append(out, n)
	}
	return out, nil
}

// ConsentPayload is a realistic operation: a consent for a demo card.
func ConsentPayload() []byte {
	b, _ := json.Marshal(cms.DemoConsent())
	return b
}
