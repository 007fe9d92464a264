package firmware_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine the firmware, the uplink, the hub and the broker start
// has an owner that stops it: none may outlive the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
