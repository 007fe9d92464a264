package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms/pgstore/pgserver"
)

// TestBenchFleetRuns runs the fleet bench on a tiny fleet against a real
// totemhub built for the test: it must finish, read back every operation
// applied once and in order, and print each figure as key=value with a
// number; acknowledged drops must be 0. Some totems are clients of
// docs/protocol.md only (raw.go). (Speed is measured by make
// bench-fleet, not asserted here.)
func TestBenchFleetRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds totemhub")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := t.TempDir()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin+"/", "github.com/aslcns/totem/cmd/totemhub").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var out, errb bytes.Buffer
	args := []string{"-hub", bin + "/totemhub", "-dir", t.TempDir(), "-sizes", "2,5", "-queued", "7", "-timeout", "1m", "-raw-every", "2",
		"-mosquitto", "3", "-acl", "../../../deploy/mosquitto/acl",
		"-idle", "4", "-idle-telemetry", "1s", "-idle-window", "2s", "-pg", "4", "-pg-nofsync"}
	if err := run(ctx, args, &out, &errb); err != nil {
		t.Fatalf("bench-fleet: %v\n%s", err, errb.String())
	}
	figures := map[string]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.ContainsAny(k, " |") {
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				t.Errorf("%s=%q is not a number", k, v)
			}
			figures[k] = v
		}
	}
	for _, n := range []string{"2", "5"} {
		for _, k := range []string{"fleet_ops_s_", "fleet_slowest_s_", "fleet_median_s_", "fleet_hub_rss_mb_", "fleet_gaps_"} {
			if _, ok := figures[k+n]; !ok {
				t.Errorf("no %s%s line in:\n%s", k, n, out.String())
			}
		}
		if figures["fleet_drops_"+n] != "0" {
			t.Errorf("fleet_drops_%s=%s, want 0", n, figures["fleet_drops_"+n])
		}
	}
	// Totems 1 and 3 of 5 spoke docs/protocol.md only, and run's check
	// that every operation was applied once, in order, covered theirs.
	if figures["fleet_raw_totems_5"] != "2" || figures["fleet_raw_totems_2"] != "1" {
		t.Errorf("raw totems: %s and %s, want 2 and 1", figures["fleet_raw_totems_5"], figures["fleet_raw_totems_2"])
	}
	// The steady state: figures, and the silent totem offline by the
	// hub's timer, not before 3 telemetry intervals.
	for _, k := range []string{"fleet_idle_rss_kb_per_totem", "fleet_idle_cpu_ms_per_totem_min", "fleet_offline_detect_s"} {
		if _, ok := figures[k]; !ok {
			t.Errorf("no %s line in:\n%s", k, out.String())
		}
	}
	if d, err := strconv.ParseFloat(figures["fleet_offline_detect_intervals"], 64); err != nil || d < 2.95 {
		t.Errorf("fleet_offline_detect_intervals=%q, want at least 3", figures["fleet_offline_detect_intervals"])
	}
	// The run on mosquitto with two hubs, where it is installed (CI
	// installs it).
	if _, err := exec.LookPath("mosquitto"); err == nil || os.Getenv("CI") != "" {
		if _, ok := figures["fleet_ops_s_3_mosquitto_2hubs"]; !ok || figures["fleet_drops_3_mosquitto_2hubs"] != "0" {
			t.Errorf("mosquitto run: %v", figures)
		}
	}
	// The runs on mosquitto + PostgreSQL with 1 and 3 totemhub
	// processes, where both are installed (CI installs them): read back
	// from the ops and audit tables, nothing lost, nothing twice.
	if _, err := pgserver.Bin(); err == nil || os.Getenv("CI") != "" {
		for _, k := range []string{"4_pg_1hub", "4_pg_3hubs"} {
			if _, ok := figures["fleet_ops_s_"+k]; !ok || figures["fleet_lost_"+k] != "0" || figures["fleet_twice_"+k] != "0" ||
				figures["fleet_drops_"+k] != "0" {
				t.Errorf("PostgreSQL run %s: %v", k, figures)
			}
		}
	}
}
