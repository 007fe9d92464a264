package main

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBenchRuns runs the whole bench on tiny sizes: it must finish and
// print every figure the issue names as a key=value line with a number.
// (The figures themselves are measured by make bench, not asserted here.)
func TestBenchRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	args := []string{"-dir", t.TempDir(), "-serial", "40", "-parallel", "160", "-backlogs", "100,200", "-anchor", "50",
		"-timeout", "1m"}
	if err := run(ctx, args, &out, &errb); err != nil {
		t.Fatalf("bench: %v\n%s", err, errb.String())
	}
	figures := map[string]bool{}
	for _, line := range strings.Split(out.String(), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.ContainsAny(k, " |") {
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				t.Errorf("%s=%q is not a number", k, v)
			}
			figures[k] = true
		}
	}
	for _, k := range []string{"enqueue_p99_ms_1", "enqueue_p99_ms_16", "bbolt_update_p99_ms", "bytes_per_op",
		"autopaho_file_drain_ops_s"} {
		if !figures[k] {
			t.Errorf("no %s line in:\n%s", k, out.String())
		}
	}
}
