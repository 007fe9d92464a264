package main

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms/pgstore/pgserver"
	"github.com/aslcns/totem/cms/pgstore/pgtest"
	"github.com/jackc/pgx/v5"
)

// TestBenchRuns runs the whole bench on tiny sizes: it must finish and
// print every figure the issue names as a key=value line with a number.
// (The figures themselves are measured by make bench, not asserted here.)
func TestBenchRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	args := []string{"-dir", t.TempDir(), "-serial", "40", "-parallel", "160", "-backlogs", "100,200", "-anchor", "50",
		"-timeout", "1m", "-pg-backlog", "200"} // -pg: a private server of the bench's own
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
	want := []string{"enqueue_p99_ms_1", "enqueue_p99_ms_16", "bbolt_update_p99_ms", "bytes_per_op", "autopaho_file_drain_ops_s"}
	if _, err := pgserver.Bin(); err == nil || os.Getenv("CI") != "" { // under CI PostgreSQL must be there
		want = append(want, "drain_ops_s_200_pg", "drain_pg_vs_bbolt_pct")
	}
	for _, k := range want {
		if !figures[k] {
			t.Errorf("no %s line in:\n%s", k, out.String())
		}
	}
}

// With -pg the bench drains the same backlog with the CMS on PostgreSQL
// (a private server, pgtest) and prints drain_ops_s_…_pg and the ratio
// to bbolt's; the drain is verified (each operation applied once, in
// order) like bbolt's, and its database dropped at the end.
func TestBenchOnPostgreSQL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv := pgtest.Private(t, pgtest.Options{NoFsync: true})
	var out, errb bytes.Buffer
	args := []string{"-dir", t.TempDir(), "-serial", "20", "-parallel", "80", "-backlogs", "100", "-anchor", "50",
		"-timeout", "1m", "-pg", srv.URL("postgres"), "-pg-backlog", "200"}
	if err := run(ctx, args, &out, &errb); err != nil {
		t.Fatalf("bench: %v\n%s", err, errb.String())
	}
	for _, k := range []string{"drain_ops_s_200_pg=", "drain_pg_vs_bbolt_pct="} {
		if !strings.Contains(out.String(), "\n"+k) {
			t.Errorf("no %s line in:\n%s", k, out.String())
		}
	}
	c, err := pgx.Connect(ctx, srv.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var left int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname LIKE 'totem_bench_%'`).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d bench databases left (%v)", left, err)
	}
}
