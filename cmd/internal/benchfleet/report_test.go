package main

import (
	"bytes"
	"os"
	"testing"
	"time"
)

// TestReport pins the bench's output, tables and key=value lines (what
// make bench-fleet's readers parse), for fixed results of every kind of
// run.
func TestReport(t *testing.T) {
	c := config{queued: 7, idleTele: 2 * time.Second, pgHubs: []int{1, 3}}
	emb := result{broker: "embedded", totems: 5, ops: 35, opsPerSec: 1234.4, slowest: 1500 * time.Millisecond, median: 700 * time.Millisecond,
		dups: 1, gaps: 2, dropped: 3, rssMB: 45.67, cpuUsPerOp: 89.01, resends: 4, raw: 2}
	mosq := emb
	mosq.broker, mosq.totems = "mosquitto-2hubs", 3
	pg := func(hubs int) pgResult {
		return pgResult{result: emb, hubs: hubs, lost: 5, twice: 6, hubsCPUUsPerOp: 1.25, pgCPUUsPerOp: 2.5, mosqCPUUsPerOp: 3.75,
			selfCPUUsPerOp: 4.5, busy: 0.456, appliedPerHub: []int64{20, 15}}
	}
	var w bytes.Buffer
	report(&w, c, []result{emb}, &mosq)
	pgReport(&w, c, []pgResult{pg(1), pg(3)})
	idleResult{totems: 4, rssKBPerTotem: 12.34, cpuMsPerMin: 0.5678, detect: 6100 * time.Millisecond}.report(&w, c)
	want, err := os.ReadFile("testdata/report.golden")
	if err != nil {
		t.Fatal(err)
	}
	if w.String() != string(want) {
		t.Errorf("report:\n%s\nwant (testdata/report.golden):\n%s", w.String(), want)
	}
}
