package firmware

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aslcns/totem/firmware/maint"
)

// The codes the session, maintenance and login audits give, wrapped errors
// included; anything else is "error".
func TestEndCodes(t *testing.T) {
	for _, c := range []struct {
		f    func(error) string
		err  error
		want string
	}{
		{reason, errIdle, "idle_timeout"},
		{reason, fmt.Errorf("flow: %w", errCardIn), "card_in"},
		{reason, errBack, "back"},
		{reason, errors.New("x"), "error"},
		{maintReason, context.Canceled, "stopped"},
		{maintReason, errMaintExit, "left"},
		{maintReason, errIdle, "error"},
		{loginFailure, fmt.Errorf("gate: %w", maint.ErrExpired), "code_expired"},
		{loginFailure, maint.ErrRefused, "refused"},
		{loginFailure, context.DeadlineExceeded, "error"},
	} {
		if got := c.f(c.err); got != c.want {
			t.Errorf("%v: %q, want %q", c.err, got, c.want)
		}
	}
}
