// Package evdev reads a USB keyboard through the Linux input subsystem
// (/dev/input/event*: struct input_event records) as hal keys: the
// keypad's for Enter (#), Backspace (*) and Esc (D), the cursor keys, and
// every printable character typed as hal.Char. The operator plugs it into
// the totem in assisted mode; the keypad goes on working beside it.
package evdev

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/aslcns/totem/hal"
)

var _ hal.Keypad = (*Keyboard)(nil)

// Event is one struct input_event.
type Event struct {
	Sec, Usec int64 // when, by the kernel's clock
	Type      uint16
	Code      uint16
	Value     int32
}

// Size is the size of a struct input_event on this machine: a struct
// timeval (two longs: 16 bytes on 64-bit, 8 on 32-bit) and 8 bytes.
var Size = int(unsafe.Sizeof(unix.Timeval{})) + 8

// ErrShort is a record cut short.
var ErrShort = errors.New("evdev: short input_event")

// Decode decodes one input_event of size bytes (24 or 16) at the start of
// b, in the host's byte order.
func Decode(b []byte, size int) (Event, error) {
	if size != 24 && size != 16 {
		return Event{}, fmt.Errorf("evdev: input_event size %d, want 24 or 16", size)
	}
	if len(b) < size {
		return Event{}, ErrShort
	}
	var e Event
	o := binary.NativeEndian
	if size == 24 {
		e.Sec, e.Usec = int64(o.Uint64(b)), int64(o.Uint64(b[8:]))
	} else {
		e.Sec, e.Usec = int64(int32(o.Uint32(b))), int64(int32(o.Uint32(b[4:])))
	}
	t := b[size-8:]
	e.Type, e.Code, e.Value = o.Uint16(t), o.Uint16(t[2:]), int32(o.Uint32(t[4:]))
	return e, nil
}

// Event types and key values of linux/input-event-codes.h.
const (
	evKey = 0x01

	released = 0
	pressed  = 1
	repeated = 2
)

// Key codes with a role of their own.
const (
	keyEsc        = 1
	keyBackspace  = 14
	keyEnter      = 28
	keyLeftShift  = 42
	keyRightShift = 54
	keyCapsLock   = 58
	keyKPEnter    = 96
	keyRightAlt   = 100 // AltGr
	keyLeft       = 105
	keyRight      = 106
	keyDelete     = 111
)

// Layout maps key codes to characters: plain, with Shift, with AltGr.
type Layout map[uint16][3]byte

// letters and digits are the same on both layouts.
func base() Layout {
	l := Layout{57: {' ', ' ', 0}}
	for i, c := range "1234567890" {
		l[uint16(2+i)] = [3]byte{byte(c), 0, 0}
	}
	rows := []struct {
		first uint16
		keys  string
	}{{16, "qwertyuiop"}, {30, "asdfghjkl"}, {44, "zxcvbnm"}}
	for _, r := range rows {
		for i, c := range r.keys {
			l[r.first+uint16(i)] = [3]byte{byte(c), byte(c) - 'a' + 'A', 0}
		}
	}
	// The numeric keypad types digits and the signs on its keys.
	for code, c := range map[uint16]byte{71: '7', 72: '8', 73: '9', 75: '4', 76: '5', 77: '6', 79: '1', 80: '2', 81: '3', 82: '0', 74: '-', 83: '.', 78: '+'} {
		l[code] = [3]byte{c, 0, 0}
	}
	return l
}

// Layouts: the Italian keyboard of an ASL counter, and the US one.
var Layouts = map[string]Layout{"it": layoutIT(), "us": layoutUS()}

func layoutIT() Layout {
	l := base()
	l[3] = [3]byte{'2', '"', 0}
	l[12] = [3]byte{'\'', '?', 0}  // ' ?
	l[39] = [3]byte{0, 0, '@'}     // ò ç @
	l[40] = [3]byte{0, 0, '#'}     // à ° #
	l[51] = [3]byte{',', ';', 0}   // , ;
	l[52] = [3]byte{'.', ':', 0}   // . :
	l[53] = [3]byte{'-', '_', 0}   // - _
	l[86] = [3]byte{'<', '>', 0}   // < >
	l[26] = [3]byte{0, 0, '['}     // è é [
	l[27] = [3]byte{'+', '*', ']'} // + * ]
	l[11] = [3]byte{'0', '=', 0}   // 0 =
	l[8] = [3]byte{'7', '/', '{'}  // 7 / {
	l[41] = [3]byte{'\\', '|', 0}  // \\ |
	return l
}

func layoutUS() Layout {
	l := base()
	l[3] = [3]byte{'2', '@', 0}
	l[12] = [3]byte{'-', '_', 0}
	l[13] = [3]byte{'=', '+', 0}
	l[39] = [3]byte{';', ':', 0}
	l[40] = [3]byte{'\'', '"', 0}
	l[51] = [3]byte{',', '<', 0}
	l[52] = [3]byte{'.', '>', 0}
	l[53] = [3]byte{'/', '?', 0}
	return l
}

// Decoder turns key events into hal keys, keeping Shift, AltGr and Caps
// Lock. The zero value is not ready: use NewDecoder.
type Decoder struct {
	layout             Layout
	shift, altgr, caps bool
}

// NewDecoder returns a decoder for layout (nil: Italian).
func NewDecoder(layout Layout) *Decoder {
	if layout == nil {
		layout = Layouts["it"]
	}
	return &Decoder{layout: layout}
}

// Key returns the hal key of e, if e types one (a press or an
// auto-repeat of a key that means something; modifiers only change
// state).
func (d *Decoder) Key(e Event) (hal.Key, bool) {
	if e.Type != evKey {
		return 0, false
	}
	switch e.Code {
	case keyLeftShift, keyRightShift:
		d.shift = e.Value != released
		return 0, false
	case keyRightAlt:
		d.altgr = e.Value != released
		return 0, false
	}
	if e.Value != pressed && e.Value != repeated {
		return 0, false
	}
	switch e.Code {
	case keyCapsLock:
		if e.Value == pressed {
			d.caps = !d.caps
		}
		return 0, false
	case keyEnter, keyKPEnter:
		return hal.KeyOK, true
	case keyBackspace:
		return hal.KeyBack, true
	case keyEsc:
		return hal.KeyCancel, true
	case keyLeft:
		return hal.KeyLeft, true
	case keyRight:
		return hal.KeyRight, true
	case keyDelete:
		return hal.KeyDelete, true
	}
	m, ok := d.layout[e.Code]
	if !ok {
		return 0, false
	}
	c := m[0]
	switch {
	case d.altgr:
		c = m[2]
	case d.shift != (d.caps && m[0] >= 'a' && m[0] <= 'z') && m[1] != 0:
		c = m[1]
	}
	if c < 0x20 || c >= 0x7f {
		return 0, false
	}
	return hal.Char(c), true
}

// Keyboard is a keyboard at a Linux input device path, opened when it is
// there and again after it is unplugged and plugged back. Run reads it;
// Next takes its keys.
type Keyboard struct {
	path   string
	layout Layout
	size   int // of a record: Size
	retry  time.Duration
	keys   chan hal.Key
	open   func(string) (io.ReadCloser, error)
}

// New returns the keyboard at path (e.g. /dev/input/by-id/…-event-kbd)
// with layout (nil: Italian).
func New(path string, layout Layout) *Keyboard {
	return &Keyboard{path: path, layout: layout, size: Size, retry: 2 * time.Second, keys: make(chan hal.Key, 64),
		open: func(p string) (io.ReadCloser, error) { return os.Open(p) }}
}

// Run reads the keyboard until ctx is done, opening it while it is
// missing every couple of seconds. log, if not nil, hears of the device
// coming and going.
func (k *Keyboard) Run(ctx context.Context, log func(msg string, err error)) error {
	if log == nil {
		log = func(string, error) {}
	}
	missing := false
	for ctx.Err() == nil {
		f, err := k.open(k.path)
		if err != nil {
			if !missing {
				log("keyboard not there", err)
				missing = true
			}
			t := time.NewTimer(k.retry)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			continue
		}
		missing = false
		log("keyboard connected", nil)
		// Closing the device ends the read when ctx is done.
		stop := context.AfterFunc(ctx, func() { f.Close() })
		err = k.read(ctx, f)
		if stop() {
			f.Close()
		}
		if ctx.Err() == nil {
			log("keyboard gone", err)
		}
	}
	return nil
}

// read hands r's keys to Next until a read fails or ctx is done.
func (k *Keyboard) read(ctx context.Context, r io.Reader) error {
	return Stream(r, k.size, NewDecoder(k.layout), func(key hal.Key) bool {
		select {
		case k.keys <- key:
			return true
		case <-ctx.Done():
			return false
		}
	})
}

// Stream decodes r, input_event records of size bytes, through d and
// calls key for each hal key typed until r fails or key returns false.
func Stream(r io.Reader, size int, d *Decoder, key func(hal.Key) bool) error {
	buf := make([]byte, size*64)
	have := 0
	for {
		n, err := r.Read(buf[have:])
		have += n
		i := 0
		for ; have-i >= size; i += size {
			e, derr := Decode(buf[i:], size)
			if derr != nil {
				return derr
			}
			if k, ok := d.Key(e); ok && !key(k) {
				return nil
			}
		}
		have = copy(buf, buf[i:have])
		if err != nil {
			if errors.Is(err, io.EOF) && have > 0 {
				return ErrShort
			}
			return err
		}
	}
}

// Next returns the next key typed, waiting until ctx is done.
func (k *Keyboard) Next(ctx context.Context) (hal.Key, error) { return hal.NextKey(ctx, k.keys, nil) }
