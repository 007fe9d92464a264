package hub_test

import (
	"testing"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/sync/protocol"
	"go.uber.org/goleak"
)

// No goroutine the package starts may outlive the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The totem's void and the CMS's are one kind.
func TestVoidKind(t *testing.T) {
	if protocol.KindVoid != cms.KindVoid {
		t.Fatalf("protocol %q, cms %q", protocol.KindVoid, cms.KindVoid)
	}
}
