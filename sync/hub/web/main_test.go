package web_test

import (
	"testing"

	"go.uber.org/goleak"
)

// No goroutine the package starts (the alert watch, the listener, the
// rig's hub) may outlive the tests. The tests' own HTTP clients keep idle
// connections to servers already closed: theirs, not the package's.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"))
}
