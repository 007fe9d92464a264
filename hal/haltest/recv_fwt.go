package haltest

import (
	"context"
	"testing"
)

// Recv waits for a value on ch and returns it; it fails t, saying that
// what never came, if ctx ends or its deadline (Bound when it has none)
// passes first. For an event a test waits on (a result, an event, a
// callback's signal) instead of a select written out again. Call it from
// the test's goroutine.
func Recv[T any](t testing.TB, ctx context.Context, ch <-chan T, what string) T {
	t.Helper()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, Bound)
		defer cancel()
	}
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		select { // a value and the end together: the value counts
		case v := <-ch:
			return v
		default:
		}
		t.Fatalf("%s: never came (%v)", what, context.Cause(ctx))
	}
	var zero T
	return zero
}
