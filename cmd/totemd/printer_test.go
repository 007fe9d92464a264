package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aslcns/totem/hal"
)

// TestFaultMessage: each printer fault gets its own advice, a cancelled
// command and any other error theirs.
func TestFaultMessage(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("escpos: %w", hal.ErrPaperOut), "Paper out"},
		{hal.ErrCoverOpen, "Cover open"},
		{hal.ErrPrinterFault, "power-cycle"},
		{fmt.Errorf("escpos: %w", hal.ErrNotResponding), "not responding"},
		{context.DeadlineExceeded, "interrupted"},
		{errors.New("escpos: write: broken pipe"), "Printer error."},
	} {
		if got := faultMessage(tt.err); !strings.Contains(got, tt.want) {
			t.Errorf("faultMessage(%v) = %q, want it to say %q", tt.err, got, tt.want)
		}
	}
}
