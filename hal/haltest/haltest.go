// Package haltest is the test kit of hal: plain-Go fakes of the devices
// (Display, Keypad, Speaker) with public fields, and conformance functions that every
// driver and simulator must pass (DisplayConformance, KeypadConformance).
//
// haltest imports only the standard library and hal, so any package may use
// it in its tests.
package haltest

import (
	"context"
	"sync"
	"unicode/utf8"

	"github.com/aslcns/totem/hal"
)

// Interface guards.
var (
	_ hal.Display = (*Display)(nil)
	_ hal.Keypad  = (*Keypad)(nil)
	_ hal.Speaker = (*Speaker)(nil)
)

// Display is an in-memory hal.Display. The zero value is a 20x4 display.
//
// Lines is what the display shows: at most Rows lines, each cut to Cols
// runes, not padded. Shown records every call to Show in the same form.
// Set the fields before use; while Show may run on another goroutine read
// them through Screen and History, which hold the lock.
type Display struct {
	Cols, Rows int        // 0 means 20 and 4
	Lines      []string   // what the display shows now
	Shown      [][]string // every screen shown, oldest first
	Err        error      // when not nil, Show returns it and shows nothing

	mu sync.Mutex
}

// Size returns Cols and Rows, or 20 and 4 when they are zero.
func (d *Display) Size() (cols, rows int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.size()
}

func (d *Display) size() (cols, rows int) {
	cols, rows = d.Cols, d.Rows
	if cols <= 0 {
		cols = 20
	}
	if rows <= 0 {
		rows = 4
	}
	return cols, rows
}

// Show replaces the screen with lines, keeping at most Rows of them and
// cutting each to Cols runes. It returns Err when Err is set.
func (d *Display) Show(lines []string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.Err != nil {
		return d.Err
	}
	cols, rows := d.size()
	lines = lines[:min(len(lines), rows)]
	screen := make([]string, len(lines))
	for i, l := range lines {
		screen[i] = Cut(l, cols)
	}
	d.Lines = screen
	d.Shown = append(d.Shown, screen)
	return nil
}

// Screen returns a copy of Lines.
func (d *Display) Screen() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.Lines...)
}

// History returns a copy of Shown.
func (d *Display) History() [][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := make([][]string, len(d.Shown))
	for i, s := range d.Shown {
		h[i] = append([]string(nil), s...)
	}
	return h
}

// Cut returns the first n runes of s (all of s when it is shorter).
func Cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}

// Keypad is an in-memory hal.Keypad: Press queues keys, Next takes them in
// order. The zero value is ready to use and its methods are safe for
// concurrent use.
type Keypad struct {
	mu     sync.Mutex
	queue  []hal.Key
	signal chan struct{} // closed and replaced by Press
}

// Press queues keys as if a person pressed them, in order. Keys are not
// checked: a test may press an invalid key on purpose.
func (k *Keypad) Press(keys ...hal.Key) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.queue = append(k.queue, keys...)
	if k.signal != nil {
		close(k.signal)
		k.signal = nil
	}
}

// Pending returns how many pressed keys Next has not returned yet.
func (k *Keypad) Pending() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.queue)
}

// Next returns the oldest pressed key, waiting for one until ctx is done.
func (k *Keypad) Next(ctx context.Context) (hal.Key, error) {
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		k.mu.Lock()
		if len(k.queue) > 0 {
			key := k.queue[0]
			k.queue = k.queue[1:]
			k.mu.Unlock()
			return key, nil
		}
		if k.signal == nil {
			k.signal = make(chan struct{})
		}
		wait := k.signal
		k.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-wait:
		}
	}
}

// Utterance is one text a Speaker was asked to say.
type Utterance struct {
	Lang, Text string
}

// Speaker is an in-memory hal.Speaker: it records every utterance. The
// zero value is ready to use and its methods are safe for concurrent use.
type Speaker struct {
	Err error // when not nil, Say returns it and records nothing

	mu   sync.Mutex
	said []Utterance
}

// Say records text in lang.
func (s *Speaker) Say(ctx context.Context, lang, text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return s.Err
	}
	s.said = append(s.said, Utterance{Lang: lang, Text: text})
	return nil
}

// Said returns a copy of the utterances recorded, oldest first.
func (s *Speaker) Said() []Utterance {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Utterance(nil), s.said...)
}
