package term

import "github.com/aslcns/totem/hal"

// event is what a keystroke means: a key, a card move or a request to quit.
type event struct {
	key  hal.Key
	card int // +1 inserted, -1 removed
	quit bool
}

// decoder turns the bytes typed on a terminal into events. It keeps the
// state of an escape sequence split between reads.
type decoder struct {
	csi bool // inside ESC [ … up to a final byte
}

// decode returns the events in one read. A lone ESC, one not followed by
// '[' or 'O' within the same read, is KeyCancel; escape sequences (arrows,
// function keys) and unmapped bytes give nothing.
func (d *decoder) decode(b []byte) []event {
	var evs []event
	for i := 0; i < len(b); i++ {
		c := b[i]
		if d.csi {
			if c >= 0x40 && c <= 0x7e {
				d.csi = false
			}
			continue
		}
		if c == 0x1b {
			switch {
			case i+1 < len(b) && b[i+1] == '[':
				d.csi = true
				i++
			case i+2 < len(b) && b[i+1] == 'O':
				i += 2 // SS3: ESC O and one byte (F1–F4, keypad arrows)
			default:
				evs = append(evs, event{key: hal.KeyCancel})
			}
			continue
		}
		if c == '\r' && i+1 < len(b) && b[i+1] == '\n' {
			i++ // CR LF is one Enter
		}
		if ev, ok := mapByte(c); ok {
			evs = append(evs, ev)
		}
	}
	return evs
}

// mapByte maps one byte, not part of an escape sequence, to an event.
func mapByte(c byte) (event, bool) {
	switch {
	case c >= '0' && c <= '9', c >= 'A' && c <= 'D', c == '*', c == '#':
		return event{key: hal.Key(c)}, true
	case c >= 'a' && c <= 'd':
		return event{key: hal.Key(c - 'a' + 'A')}, true
	case c == '\r', c == '\n':
		return event{key: hal.KeyOK}, true
	case c == 0x7f, c == 0x08:
		return event{key: hal.KeyBack}, true
	case c == 'i', c == 'I':
		return event{card: +1}, true
	case c == 'r', c == 'R':
		return event{card: -1}, true
	case c == 'q', c == 'Q', c == 0x03:
		return event{quit: true}, true
	}
	return event{}, false
}
