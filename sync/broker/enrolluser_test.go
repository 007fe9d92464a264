package broker

import (
	"fmt"
	"testing"
)

// The enroll user's connections are limited per source address and
// overall: many addresses, one connection each, meet the global limit;
// one address meets its own first; a refused source takes nothing from
// the global budget.
func TestEnrollGatePerSourceAndGlobal(t *testing.T) {
	g := newEnrollGate(2, 5)
	if !g.allow("192.0.2.1:1000") || !g.allow("192.0.2.1:1001") {
		t.Fatal("the first two connections of a source refused")
	}
	for i := range 3 {
		if g.allow("192.0.2.1:1002") {
			t.Fatalf("connection %d of one source over its 2 a minute admitted", i+3)
		}
	}
	// 2 of the global 5 taken: three more sources, one each, then none.
	for i := 2; i <= 4; i++ {
		if !g.allow(fmt.Sprintf("192.0.2.%d:1000", i)) {
			t.Fatalf("source %d refused under the global limit", i)
		}
	}
	if g.allow("192.0.2.9:1000") {
		t.Fatal("a new source admitted over the global limit of 5 a minute")
	}
}
