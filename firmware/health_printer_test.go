package firmware

import (
	"errors"
	"fmt"
	"testing"

	"github.com/aslcns/totem/hal"
)

// TestPrinterCondition pins the printer states the health reports (each
// also an event, printer_STATE): any fault the hal does not name is
// "fault", like hal.ErrPrinterFault.
func TestPrinterCondition(t *testing.T) {
	for _, tt := range []struct {
		err  error
		low  bool
		want string
	}{
		{nil, false, "ok"},
		{nil, true, "paper_near_end"},
		{fmt.Errorf("escpos: %w", hal.ErrPaperOut), true, "paper_out"},
		{hal.ErrCoverOpen, false, "cover_open"},
		{hal.ErrNotResponding, false, "not_responding"},
		{hal.ErrPrinterFault, false, "fault"},
		{errors.New("escpos: write: broken pipe"), false, "fault"},
	} {
		if got := printerCondition(tt.err, tt.low); got != tt.want {
			t.Errorf("printerCondition(%v, %v) = %q, want %q", tt.err, tt.low, got, tt.want)
		}
	}
}
