package hal

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestPrinterFault pins the one sorting of the printer's faults the
// screens, the health and totemd's printer command word their own way.
func TestPrinterFault(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{ErrPaperOut, "paper_out"},
		{fmt.Errorf("escpos: job: %w", ErrCoverOpen), "cover_open"},
		{fmt.Errorf("escpos: status 1: no answer: %w", ErrNotResponding), "not_responding"},
		{ErrPrinterFault, "printer_fault"},
		{PrinterStatus{Online: true, CutterError: true}.Err(), "printer_fault"},
		{PrinterStatus{}.Err(), "not_responding"},
		{context.Canceled, ""},
		{errors.New("escpos: write: broken pipe"), ""},
	} {
		if got := PrinterFault(tt.err); got != tt.want {
			t.Errorf("PrinterFault(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
