package pgserver

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A server whose test process died (no cleanup ran) is stopped and
// removed by the next Start; a live one is left alone.
func TestReapOrphans(t *testing.T) {
	ctx := context.Background()
	Private := func(t *testing.T, opts Options) *Server {
		s, err := Start(ctx, opts)
		if errors.Is(err, ErrMissing) && os.Getenv("CI") == "" {
			t.Skip(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Stop(); err != nil {
				t.Error(err)
			}
		})
		return s
	}
	orphan := Private(t, Options{})
	live := Private(t, Options{})
	b, err := os.ReadFile(filepath.Join(orphan.data(), "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	postmaster, _ := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(orphan.Dir, ownerFile), []byte(strconv.Itoa(dead.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	Private(t, Options{})
	if _, err := os.Stat(orphan.Dir); !os.IsNotExist(err) {
		t.Errorf("orphan's directory: %v", err)
	}
	// The directory goes only after pg_ctl stop -w saw the postmaster
	// gone (postmaster.pid removed).
	if out, _ := exec.Command("ps", "-o", "args=", "-p", strconv.Itoa(postmaster)).Output(); strings.Contains(string(out), orphan.Dir) {
		t.Logf("postmaster %d still exiting: %s", postmaster, out)
	}
	orphan.up = false // already stopped
	if _, err := live.NewDB(ctx); err != nil {
		t.Errorf("the live server: %v", err)
	}
}
