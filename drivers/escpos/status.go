package escpos

import (
	"errors"
	"fmt"

	"github.com/aslcns/totem/hal"
)

// Flow-control bytes a printer sends when its buffer fills and empties.
const (
	XON  = 0x11
	XOFF = 0x13
)

// ErrBadStatus reports a status byte whose fixed bits are wrong.
var ErrBadStatus = errors.New("escpos: invalid status byte")

// Status is everything DLE EOT 1–4 (or automatic status back) says.
type Status struct {
	Offline    bool // n=1 bit 3
	CoverOpen  bool // n=2 bit 2
	FeedButton bool // n=2 bit 3: paper being fed by the button
	PaperStop  bool // n=2 bit 5: printing stopped by paper end
	Error      bool // n=2 bit 6

	CutterError     bool // n=3 bit 3
	Unrecoverable   bool // n=3 bit 5
	AutoRecoverable bool // n=3 bit 6: head too hot and similar

	PaperNearEnd bool // n=4 bits 2-3
	PaperOut     bool // n=4 bits 5-6
}

// ValidStatus reports whether b has the fixed bits of a DLE EOT answer
// (0xx1xx10).
func ValidStatus(b byte) bool { return b&0x93 == 0x12 }

// Apply decodes b, the answer to DLE EOT n (1–4), into s.
func (s *Status) Apply(n, b byte) error {
	if !ValidStatus(b) {
		return fmt.Errorf("%w: %#02x for DLE EOT %d", ErrBadStatus, b, n)
	}
	bit := func(i uint) bool { return b&(1<<i) != 0 }
	switch n {
	case 1:
		s.Offline = bit(3)
	case 2:
		s.CoverOpen = bit(2)
		s.FeedButton = bit(3)
		s.PaperStop = bit(5)
		s.Error = bit(6)
	case 3:
		s.CutterError = bit(3)
		s.Unrecoverable = bit(5)
		s.AutoRecoverable = bit(6)
	case 4:
		s.PaperNearEnd = b&0x0c != 0
		s.PaperOut = b&0x60 != 0
	default:
		return fmt.Errorf("escpos: DLE EOT %d is not a status request", n)
	}
	return nil
}

// DecodeStatus decodes a single DLE EOT n answer.
func DecodeStatus(n, b byte) (Status, error) {
	var s Status
	err := s.Apply(n, b)
	return s, err
}

// ValidASB reports whether frame is an automatic-status-back frame: the
// first byte 0xx1xx00, the other three 0xx0xxxx.
func ValidASB(frame [4]byte) bool {
	if frame[0]&0x93 != 0x10 {
		return false
	}
	for _, b := range frame[1:] {
		if b&0x90 != 0 {
			return false
		}
	}
	return true
}

// DecodeASB decodes a 4-byte automatic status back frame (GS a).
func DecodeASB(frame [4]byte) (Status, error) {
	if !ValidASB(frame) {
		return Status{}, fmt.Errorf("%w: ASB % x", ErrBadStatus, frame[:])
	}
	b0, b1, b2 := frame[0], frame[1], frame[2]
	return Status{
		Offline:         b0&0x08 != 0,
		CoverOpen:       b0&0x20 != 0,
		FeedButton:      b0&0x40 != 0,
		CutterError:     b1&0x08 != 0,
		Unrecoverable:   b1&0x20 != 0,
		AutoRecoverable: b1&0x40 != 0,
		PaperNearEnd:    b2&0x03 != 0,
		PaperOut:        b2&0x0c != 0,
	}, nil
}

// HAL returns the condition the firmware sees.
func (s Status) HAL() hal.PrinterStatus {
	return hal.PrinterStatus{
		Online:        !s.Offline,
		CoverOpen:     s.CoverOpen,
		PaperNearEnd:  s.PaperNearEnd,
		PaperOut:      s.PaperOut || s.PaperStop,
		CutterError:   s.CutterError,
		Unrecoverable: s.Unrecoverable,
	}
}

// Err returns the hal sentinel that keeps a job from printing, or nil,
// with hal.PrinterStatus.Err's precedence (cover, paper, fault, offline).
func (s Status) Err() error { return s.HAL().Err() }

// EventKind says what the printer sent.
type EventKind int

// Events the demultiplexer reports.
const (
	EvStatus EventKind = iota + 1 // a DLE EOT answer
	EvASB                         // an automatic status back frame
	EvXON
	EvXOFF
)

// Event is one unit of what the printer sent.
type Event struct {
	Kind  EventKind
	Byte  byte    // EvStatus
	Frame [4]byte // EvASB
}

// Demux splits the printer's byte stream into DLE EOT answers (0xx1xx10),
// ASB frames (first byte 0xx1xx00 and three more), XON and XOFF. Other
// bytes are counted in Dropped and skipped. The zero value is ready.
type Demux struct {
	frame   [4]byte
	have    int // bytes of an ASB frame collected, 0 when none
	Dropped int
}

// Feed takes the next byte and reports an event when one is complete.
func (d *Demux) Feed(b byte) (Event, bool) {
	if d.have > 0 {
		if b&0x90 != 0 { // not a continuation byte: restart on b
			d.Dropped += d.have
			d.have = 0
			return d.Feed(b)
		}
		d.frame[d.have] = b
		d.have++
		if d.have < 4 {
			return Event{}, false
		}
		d.have = 0
		return Event{Kind: EvASB, Frame: d.frame}, true
	}
	switch {
	case b == XON:
		return Event{Kind: EvXON}, true
	case b == XOFF:
		return Event{Kind: EvXOFF}, true
	case ValidStatus(b):
		return Event{Kind: EvStatus, Byte: b}, true
	case b&0x93 == 0x10:
		d.frame = [4]byte{b}
		d.have = 1
		return Event{}, false
	}
	d.Dropped++
	return Event{}, false
}
