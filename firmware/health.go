package firmware

import (
	"context"
	"log/slog"
	"sync"

	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/protocol"
)

// health is the condition of the totem's devices, for telemetry and the
// idle screen, and the alerts raised when it changes. It is safe for
// concurrent use: the print queue, the reader's goroutines and the loop
// all report to it.
type health struct {
	events func(protocol.Event) // Options.Events, nil drops them
	log    *slog.Logger

	mu       sync.Mutex
	printer  string // last printer condition
	paperLow bool   // the printer reports paper near its end
	reader   string // "ok" or "gone"
}

func newHealth(events func(protocol.Event), log *slog.Logger) *health {
	return &health{events: events, log: log, printer: "ok", reader: "ok"}
}

// event raises an alert for operations, if anyone listens.
func (h *health) event(level, code, msg string) {
	if h.events != nil {
		h.events(protocol.Event{Level: level, Code: code, Message: msg})
	}
}

func (h *health) setPrinter(err error) {
	h.mu.Lock()
	low := h.paperLow
	h.mu.Unlock()
	h.printerState(printerCondition(err, low))
}

// setPaperLow records whether the printer reports paper near its end: the
// printer's state while it is otherwise ready ("paper_near_end").
func (h *health) setPaperLow(low bool) {
	h.mu.Lock()
	h.paperLow = low
	cur := h.printer
	h.mu.Unlock()
	if cur == "ok" || cur == "paper_near_end" {
		h.printerState(printerCondition(nil, low))
	}
}

func printerCondition(err error, low bool) string {
	s := hal.PrinterFault(err)
	switch {
	case err == nil && low:
		s = "paper_near_end"
	case err == nil:
		s = "ok"
	case s == "" || s == "printer_fault":
		s = "fault" // any other fault (event printer_fault)
	}
	return s
}

func (h *health) printerState(s string) {
	h.mu.Lock()
	changed := h.printer != s
	h.printer = s
	h.mu.Unlock()
	if changed {
		level := protocol.LevelWarning
		if s == "ok" {
			level = protocol.LevelInfo
		}
		h.event(level, "printer_"+s, "receipt printer: "+s)
	}
}

// setReader records whether the reader works; it reports a change.
func (h *health) setReader(ok bool) bool {
	s := "gone"
	if ok {
		s = "ok"
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	changed := h.reader != s
	h.reader = s
	return changed
}

// devices is the condition of each device, for telemetry.
func (h *health) devices() map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return map[string]string{"printer": h.printer, "reader": h.reader}
}

// readerOK reports whether the card reader was working at last report.
func (h *health) readerOK() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reader == "ok"
}

// idleScreen is the idle screen, or the one saying that the service is
// suspended while the card reader is gone.
func (h *health) idleScreen() string {
	if h.readerOK() {
		return "idle"
	}
	return "reader_gone"
}

// readerState records whether the reader works and, on a change, tells
// the log, operations and the idle screen (an empty event on redraw).
func (h *health) readerState(ctx context.Context, ok bool, err error, redraw chan<- hal.CardEvent) {
	if !h.setReader(ok) {
		return
	}
	if ok {
		h.log.Info("card reader back")
		h.event(protocol.LevelInfo, "reader_back", "card reader available again")
	} else {
		h.log.Error("card reader gone", "err", err)
		h.event(protocol.LevelAlarm, "reader_gone", "card reader not available")
	}
	select {
	case redraw <- hal.CardEvent{}:
	case <-ctx.Done():
	}
}
