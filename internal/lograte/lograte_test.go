package lograte

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestFirstThenCountPerPeriod(t *testing.T) {
	at := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	l := &Limiter{Every: time.Minute, Now: func() time.Time { return at }}
	for i := range 1000 { // 1000 lines over 100 s, one key; another key once
		at = at.Add(100 * time.Millisecond)
		l.Log(log, slog.LevelWarn, "gap/t1", "sequence gap", "n", i)
	}
	l.Log(log, slog.LevelWarn, "gap/t2", "sequence gap")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], "n=0") || strings.Contains(lines[0], "held") ||
		!strings.Contains(lines[1], "n=600") || !strings.Contains(lines[1], "repeats_held_back=599") {
		t.Fatalf("lines:\n%s", buf.String())
	}
	// Quiet keys are forgotten when the bound is reached; if none is, new
	// keys share one line.
	l = &Limiter{Every: time.Minute, Keys: 2, Now: func() time.Time { return at }}
	buf.Reset()
	for i := range 10 {
		l.Log(log, slog.LevelWarn, fmt.Sprint("k", i), "x")
	}
	if n := strings.Count(buf.String(), "\n"); n != 3 || len(l.keys) != 3 {
		t.Fatalf("%d lines, %d keys:\n%s", n, len(l.keys), buf.String())
	}
}
