// Package term is the terminal panel of the totem: it draws the 20x4
// display in a terminal and reads the keypad from the keyboard, with keys to
// insert and remove the simulated card. It is what the demo and the manual
// tests run on, and it can be driven by tmux send-keys and read by tmux
// capture-pane.
//
// A Panel implements hal.Keypad, hal.Display and hal.Beeper on any
// io.Reader and io.Writer; Raw puts a real terminal in raw mode first.
package term

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	xterm "golang.org/x/term"

	"github.com/aslcns/totem/hal"
)

// Interface guards.
var (
	_ hal.Keypad  = (*Panel)(nil)
	_ hal.Display = (*Panel)(nil)
	_ hal.Beeper  = (*Panel)(nil)
)

// KeyBuffer is how many keys a Panel holds while no Next is waiting. Keys
// pressed beyond it are dropped and counted (see Dropped).
const KeyBuffer = 64

// Options configure a Panel.
type Options struct {
	Cols, Rows int                 // display size, default 20 and 4
	Title      string              // drawn above the box, e.g. "Totem demo-01"
	OnCard     func(inserted bool) // 'i' inserts, 'r' removes the card (nil: ignored)
	OnQuit     func()              // 'q' or Ctrl-C (nil: ignored)
	Help       string              // one line drawn under the box
}

// Panel is a terminal drawn as the totem display and read as its keypad.
//
// Keys come from Run, which the owner calls in a goroutine. OnCard and
// OnQuit are called on Run's goroutine and must not block for long.
type Panel struct {
	in   io.Reader
	opts Options

	keys    chan hal.Key
	dropped atomic.Int64
	running atomic.Bool
	ended   chan struct{} // closed when Run returns

	mu     sync.Mutex // guards out and everything drawn
	out    io.Writer
	lines  []string // exactly Rows lines, each padded to Cols runes
	status string
}

// New makes a panel reading keystrokes from in and drawing on out. It draws
// nothing until Run, Show or Status is called. The caller keeps in and out
// and closes them when done.
func New(in io.Reader, out io.Writer, opts Options) *Panel {
	if opts.Cols <= 0 {
		opts.Cols = 20
	}
	if opts.Rows <= 0 {
		opts.Rows = 4
	}
	p := &Panel{
		in:    in,
		opts:  opts,
		keys:  make(chan hal.Key, KeyBuffer),
		ended: make(chan struct{}),
		out:   out,
	}
	p.lines = p.screen(nil)
	return p
}

// chunk is the result of one Read.
type chunk struct {
	data []byte
	err  error
}

// Run draws the panel, then reads in and turns keystrokes into keys and
// callbacks until ctx is done or in ends. It returns nil when ctx is done or
// in reaches EOF, and the read error otherwise. Run may be called once.
//
// Reads happen on a goroutine of Run. When ctx is done while a Read is
// blocked, Run interrupts it with SetReadDeadline if in has one and waits
// for it; otherwise Run returns at once and that Read ends, discarding its
// bytes, when in yields data or is closed by its owner.
func (p *Panel) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("term: Run called twice")
	}
	defer close(p.ended)
	if err := p.redraw(); err != nil {
		return err
	}

	chunks := make(chan chunk)
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, 256)
		for {
			n, err := p.in.Read(buf)
			c := chunk{data: append([]byte(nil), buf[:n]...), err: err}
			select {
			case chunks <- c:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		close(stop)
		type deadliner interface{ SetReadDeadline(time.Time) error }
		if d, ok := p.in.(deadliner); ok && d.SetReadDeadline(time.Now()) == nil {
			<-readerDone
			d.SetReadDeadline(time.Time{})
		}
	}()

	var dec decoder
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-chunks:
			for _, ev := range dec.decode(c.data) {
				p.handle(ev)
			}
			if c.err == io.EOF {
				return nil
			}
			if c.err != nil {
				return fmt.Errorf("term: read: %w", c.err)
			}
		}
	}
}

func (p *Panel) handle(ev event) {
	switch {
	case ev.key != 0:
		select {
		case p.keys <- ev.key:
		default:
			p.dropped.Add(1)
		}
	case ev.card != 0:
		if p.opts.OnCard != nil {
			p.opts.OnCard(ev.card > 0)
		}
	case ev.quit:
		if p.opts.OnQuit != nil {
			p.opts.OnQuit()
		}
	}
}

// Next returns the next key pressed, waiting until ctx is done. Keys pressed
// while nobody waits are kept, up to KeyBuffer of them. Once Run has
// returned and every kept key is taken, Next returns hal.ErrClosed.
func (p *Panel) Next(ctx context.Context) (hal.Key, error) {
	return hal.NextKey(ctx, p.keys, p.ended)
}

// Dropped returns how many keys were dropped because KeyBuffer keys were
// already waiting for Next.
func (p *Panel) Dropped() int { return int(p.dropped.Load()) }

// Size returns the display's columns and rows.
func (p *Panel) Size() (cols, rows int) { return p.opts.Cols, p.opts.Rows }

// Show replaces the display with lines, keeping the first Rows of them and
// cutting each to Cols runes, and redraws the whole panel. Control
// characters are shown as spaces.
func (p *Panel) Show(lines []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = p.screen(lines)
	return p.draw()
}

// Status sets the line drawn under the box (e.g. "Carta inserita · in
// linea") and redraws the panel.
func (p *Panel) Status(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status = clean(s)
	p.draw() // a broken terminal shows up in Show's error
}

// Lines returns what the display shows: Rows lines, each padded with spaces
// to Cols runes.
func (p *Panel) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// Beep rings the terminal bell.
func (p *Panel) Beep() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.out, "\a"); err != nil {
		return fmt.Errorf("term: write: %w", err)
	}
	return nil
}

func (p *Panel) redraw() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.draw()
}

// screen returns lines as the display shows them.
func (p *Panel) screen(lines []string) []string {
	s := make([]string, p.opts.Rows)
	for i := range s {
		l := ""
		if i < len(lines) {
			l = lines[i]
		}
		s[i] = pad(clean(l), p.opts.Cols)
	}
	return s
}

// draw writes the whole panel. p.mu must be held.
func (p *Panel) draw() error {
	var b strings.Builder
	b.WriteString("\x1b[H\x1b[2J") // home, clear screen
	if p.opts.Title != "" {
		b.WriteString(clean(p.opts.Title) + "\r\n")
	}
	rule := strings.Repeat("─", p.opts.Cols)
	b.WriteString("┌" + rule + "┐\r\n")
	for _, l := range p.lines {
		b.WriteString("│" + l + "│\r\n")
	}
	b.WriteString("└" + rule + "┘\r\n")
	if p.status != "" {
		b.WriteString(p.status + "\r\n")
	}
	if p.opts.Help != "" {
		b.WriteString(clean(p.opts.Help) + "\r\n")
	}
	if _, err := io.WriteString(p.out, b.String()); err != nil {
		return fmt.Errorf("term: write: %w", err)
	}
	return nil
}

// clean replaces control characters, which would break the box, with spaces.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r >= 0x7f && r < 0xa0 {
			return ' '
		}
		return r
	}, s)
}

// pad cuts s to n runes or pads it with spaces to n runes.
func pad(s string, n int) string {
	c := 0
	for i := range s {
		if c == n {
			return s[:i]
		}
		c++
	}
	return s + strings.Repeat(" ", n-c)
}

// Raw puts the terminal f in raw mode and returns a function that restores
// it. It fails if f is not a terminal.
func Raw(f *os.File) (restore func(), err error) {
	fd := int(f.Fd())
	if !xterm.IsTerminal(fd) {
		return nil, fmt.Errorf("term: %s is not a terminal", f.Name())
	}
	old, err := xterm.MakeRaw(fd)
	if err != nil {
		return nil, fmt.Errorf("term: raw mode: %w", err)
	}
	var once sync.Once
	return func() { once.Do(func() { xterm.Restore(fd, old) }) }, nil
}
