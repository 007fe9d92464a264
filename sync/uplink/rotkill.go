//go:build totemd_rotkill

package uplink

import (
	"fmt"
	"os"
	"syscall"
)

// In the kill test's build only (-tags totemd_rotkill, cmd/totemd's
// TestRotationSurvivesKill9AtEveryStep): TOTEMD_ROTATE_KILL_AT names a
// rotation step (generated, pending, sent, replied, promoted) at which
// the process sends itself SIGKILL, as a power cut would: no deferred
// function, no flush, no clean disconnect.
func init() {
	at := os.Getenv("TOTEMD_ROTATE_KILL_AT")
	if at == "" {
		return
	}
	killStep = func(step string) {
		if step != at {
			return
		}
		fmt.Fprintf(os.Stderr, "test hook: kill -9 at rotation step %s\n", step)
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL is not handled: nothing runs after it
	}
}
