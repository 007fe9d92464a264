package main

import (
	"bytes"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/broker"
)

// The broker's counters reach the log as one line when they change, and
// at exit; nothing while they are zero or unchanged.
func TestLogBrokerStats(t *testing.T) {
	var n atomic.Int64
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	stats := func() broker.Stats { return broker.Stats{ConnectTimeouts: n.Load()} }
	stop := logBrokerStats(stats, log, time.Hour)
	n.Store(3)
	stop()
	if got := buf.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, `msg="broker counters" stats="ConnectTimeouts=3"`) {
		t.Fatalf("log:\n%s", got)
	}
	buf.Reset()
	stop = logBrokerStats(stats, log, time.Millisecond)
	time.Sleep(20 * time.Millisecond) // several ticks
	stop()                            // one line, however many ticks: unchanged after the first
	if got := strings.Count(buf.String(), "\n"); got != 1 {
		t.Fatalf("%d lines:\n%s", got, buf.String())
	}
	buf.Reset()
	n.Store(0)
	logBrokerStats(stats, log, time.Millisecond)()
	if buf.Len() != 0 {
		t.Fatalf("zero counters logged:\n%s", buf.String())
	}
}
