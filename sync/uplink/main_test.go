package uplink

import (
	"testing"

	"go.uber.org/goleak"
)

// No goroutine the package starts may outlive the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
