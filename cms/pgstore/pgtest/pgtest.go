// Package pgtest starts a private PostgreSQL for tests (cms/pgstore/pgserver
// does the work): one server per test package (Main, DB) or per test
// (Private), a fresh database per test from a migrated template. Without
// PostgreSQL installed the tests that need it skip with a message saying
// what to install; under CI (CI set) they fail.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/aslcns/totem/cms/pgstore/pgserver"
)

// Options configures a Server (pgserver.Options).
type Options = pgserver.Options

// Server is a private PostgreSQL cluster (pgserver.Server).
type Server = pgserver.Server

// ErrMissing says PostgreSQL's server programs are not installed.
var ErrMissing = pgserver.ErrMissing

// PasswordRole is the one role whose password the server checks.
const PasswordRole = pgserver.PasswordRole

// Bin returns the directory of the newest installed PostgreSQL's server
// programs.
func Bin() (string, error) { return pgserver.Bin() }

// Start initialises and starts a private server (pgserver.Start).
func Start(ctx context.Context, opts Options) (*Server, error) { return pgserver.Start(ctx, opts) }

var (
	shared    *Server
	sharedErr error
)

// Main runs a package's tests with one shared server (started before,
// stopped after): call it from TestMain. Tests get databases with DB.
func Main(m *testing.M, opts Options) int {
	shared, sharedErr = Start(context.Background(), opts)
	code := m.Run()
	if shared != nil {
		if err := shared.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Unavailable ends the test when err says there is no server: a skip
// with the reason, or a failure under CI (CI set), where PostgreSQL is
// installed and must work.
func Unavailable(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, ErrMissing) && os.Getenv("CI") == "" {
		tb.Skip(err)
	}
	tb.Fatal(err)
}

// DB returns the URL of a fresh migrated database on the shared server.
func DB(tb testing.TB) string {
	tb.Helper()
	if shared == nil {
		Unavailable(tb, sharedErr)
	}
	u, err := shared.NewDB(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// Shared returns the shared server of Main.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	if shared == nil {
		Unavailable(tb, sharedErr)
	}
	return shared
}

// Private starts a server of the test's own (for tests that stop it),
// stopped at the test's end.
func Private(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := Start(context.Background(), opts)
	if err != nil {
		Unavailable(tb, err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Error(err)
		}
	})
	return s
}
