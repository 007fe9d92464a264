// Package cli holds what the three mains share: the two-line main with
// signal handling, and the logger every program builds from its config.
package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// Main runs run with a context cancelled by SIGINT or SIGTERM and exits
// non-zero only when run fails, so systemd restarts the program.
func Main(run func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error) {
	TuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if code := Report(err, os.Stderr); code != 0 {
		os.Exit(code)
	}
}

// UsageError is a command line the program does not understand: Main
// prints it with the usage and exits 2, as the flag package does, instead
// of starting anything.
type UsageError struct {
	Err   error
	Usage string
}

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a *UsageError with the message and usage.
func Usagef(usage, format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...), Usage: usage}
}

// Report writes err to stderr and returns the exit status: 0 without an
// error, 2 for a usage error (with the usage), 1 otherwise.
func Report(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, err)
	var ue *UsageError
	if errors.As(err, &ue) {
		fmt.Fprint(stderr, ue.Usage)
		return 2
	}
	return 1
}

// GC settings of the programs, unless GOGC or GOMEMLIMIT say otherwise.
const (
	GCPercent   = 400       // collect when the heap is five times the live data
	MemoryLimit = 256 << 20 // soft: collect earlier rather than pass it
)

// TuneGC applies GCPercent and MemoryLimit. The programs keep little live
// data and allocate per message: at Go's default (100) the collector ran
// so often that it cost about a third of the CPU of a backlog drain.
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(MemoryLimit)
	}
}

// SetMemoryLimit sets the runtime's soft memory limit to mib MiB, unless
// GOMEMLIMIT says otherwise or mib is 0.
func SetMemoryLimit(mib int) {
	if mib > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(mib) << 20)
	}
}

// Logger returns a logger writing to w at level ("debug", "info", "warn",
// "error") in format ("text" or "json").
func Logger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// RandomID returns n random bytes in hex, for client ids and boot ids.
func RandomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Flags returns the flag set of a program or subcommand named name: its
// errors are returned (run returns them, Main prints them) and its usage
// and messages go to stderr.
func Flags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}
