// Package sim provides simulated totem devices that run the whole firmware
// on a laptop: a card reader whose card is inserted and removed on command,
// a printer that writes each receipt as a text file, and an in-memory panel
// (display and keypad) for headless runs and tests.
//
// sim imports only the standard library and hal.
package sim

import (
	"context"
	"crypto/subtle"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aslcns/totem/hal"
)

// Card is a simulated TS-CNS card: what its chip says and its PIN.
type Card struct {
	Info  hal.CardInfo
	PIN   string
	PUK   string
	Tries int // PIN tries left; 0 means blocked
	// ATR is what the card answers to reset; nil: a TS-CNS's
	// (DemoATR) for a CNS or operator card, none for the others.
	ATR []byte
	// Err, when set, is what Info answers with the info (a chip read that
	// failed, e.g. hal.ErrCardData for unreadable data).
	Err error
}

// DemoATR is the ATR of the simulated TS-CNS cards (an Athena
// IDProtect's, as the TS-CNS of the demo).
var DemoATR = []byte{0x3B, 0xDF, 0x18, 0x00, 0x81, 0x31, 0xFE, 0x7D, 0x00, 0x6B, 0x15, 0x0C, 0x01, 0x81, 0x01, 0x11,
	0x01, 0x43, 0x4E, 0x53, 0x10, 0x31, 0x80, 0xE8}

// DemoCard returns the demo citizen's card (ROSSI MARIO, PIN 12345). The
// reference CMS's demo registry knows it.
func DemoCard() *Card {
	return &Card{
		Info: hal.CardInfo{
			Class:     hal.ClassCNS,
			Serial:    "6090012345678000",
			Issuer:    "6090",
			CF:        "RSSMRA80A01H501U",
			Surname:   "ROSSI",
			Name:      "MARIO",
			BirthDate: time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC),
			IssueDate: time.Date(2024, 12, 31, 0, 0, 0, 0, time.UTC),
			Expiry:    time.Date(2030, 12, 31, 0, 0, 0, 0, time.UTC),
		},
		PIN:   "12345",
		PUK:   "12345678",
		Tries: 3,
	}
}

// OperatorCard returns the demo operator card (BIANCHI LUCA, serial level
// 8, PIN 54321): it opens assisted mode. The vcard "operator" profile has
// the same data.
func OperatorCard() *Card {
	return &Card{
		Info: hal.CardInfo{
			Class: hal.ClassOperator, Serial: "8090000000042006", Issuer: "8090",
			CF: "BNCLCU75C15F205O", Surname: "BIANCHI", Name: "LUCA",
			BirthDate: time.Date(1975, 3, 15, 0, 0, 0, 0, time.UTC),
			IssueDate: time.Date(2023, 3, 15, 0, 0, 0, 0, time.UTC),
			Expiry:    time.Date(2029, 3, 15, 0, 0, 0, 0, time.UTC),
		},
		PIN: "54321", PUK: "87654321", Tries: 3,
	}
}

// MinorCard returns the card of a minor, VERDI LUCA, issued and waiting
// for activation in the reference CMS's demo registry (PIN 12345).
func MinorCard() *Card {
	return citizen("6090011111111006", "VRDLCU15C10H501Y", "VERDI", "LUCA",
		time.Date(2015, 3, 10, 0, 0, 0, 0, time.UTC), time.Date(2031, 3, 31, 0, 0, 0, 0, time.UTC))
}

// IssuedCard returns the card of an adult, VERDI ANNA, issued and waiting
// for activation in the reference CMS's demo registry (PIN 12345).
func IssuedCard() *Card {
	return citizen("6090022222222004", "VRDNNA70M50F205B", "VERDI", "ANNA",
		time.Date(1970, 8, 10, 0, 0, 0, 0, time.UTC), time.Date(2032, 8, 31, 0, 0, 0, 0, time.UTC))
}

func citizen(serial, cf, surname, name string, born, expiry time.Time) *Card {
	return &Card{
		Info: hal.CardInfo{Class: hal.ClassCNS, Serial: serial, Issuer: serial[:4], CF: cf, Surname: surname, Name: name,
			BirthDate: born, IssueDate: expiry.AddDate(-6, 0, 0), Expiry: expiry},
		PIN: "12345", PUK: "12345678", Tries: 3,
	}
}

// Reader is a simulated card reader.
type Reader struct {
	name string

	mu       sync.Mutex
	card     *Card
	gen      int           // bumped on every insert and remove
	reported int           // the gen the last Next reported; -1 before the first
	changed  chan struct{} // closed and replaced on every change
}

var _ hal.CardReader = (*Reader)(nil)

// NewReader returns an empty reader.
func NewReader(name string) *Reader {
	return &Reader{name: name, reported: -1, changed: make(chan struct{})}
}

// Insert puts c in the slot, replacing any card there.
func (r *Reader) Insert(c *Card) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.card = c
	r.bump()
}

// Remove empties the slot.
func (r *Reader) Remove() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.card == nil {
		return
	}
	r.card = nil
	r.bump()
}

// Present reports whether a card is in the slot.
func (r *Reader) Present() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.card != nil
}

func (r *Reader) bump() {
	r.gen++
	close(r.changed)
	r.changed = make(chan struct{})
}

// Next waits for the slot to change since the last Next, and reports its
// state now. The first call reports a card already present as inserted. A
// change between two calls is never lost; an insert and a remove both
// between two calls show as one event with Counter telling the skip, as
// PC/SC's event counter does.
func (r *Reader) Next(ctx context.Context) (hal.CardEvent, error) {
	for {
		r.mu.Lock()
		first := r.reported < 0
		if first && r.card == nil {
			r.reported = r.gen
		}
		if r.gen != r.reported {
			r.reported = r.gen
			ev := hal.CardEvent{Kind: hal.CardRemoved, Reader: r.name, Counter: r.gen}
			if r.card != nil {
				ev.Kind = hal.CardInserted
			}
			r.mu.Unlock()
			return ev, nil
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return hal.CardEvent{}, ctx.Err()
		case <-ch:
		}
	}
}

// Connect opens a session with the card in the slot.
func (r *Reader) Connect(ctx context.Context) (hal.Card, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.card == nil {
		return nil, hal.ErrNoCard
	}
	return &session{r: r, card: r.card, gen: r.gen}, nil
}

type session struct {
	r    *Reader
	card *Card
	gen  int
}

// check fails when the card of this session left the slot.
func (s *session) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.r.gen != s.gen {
		return hal.ErrCardRemoved
	}
	return nil
}

func (s *session) Info(ctx context.Context) (hal.CardInfo, error) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return hal.CardInfo{}, err
	}
	info := s.card.Info
	if s.card.Err != nil {
		return info, s.card.Err
	}
	switch info.Class {
	case hal.ClassCNS, hal.ClassOperator:
	case hal.ClassCIE:
		return info, hal.ErrCardCIE
	case hal.ClassContactless:
		return info, hal.ErrCardContactless
	default:
		return info, hal.ErrCardUnknown
	}
	return info, nil
}

var _ hal.CardProbe = (*session)(nil)

// Probe returns the card's class and ATR without reading its data.
func (s *session) Probe() (hal.CardClass, []byte) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	atr, class := s.card.ATR, s.card.Info.Class
	if atr == nil && (class == hal.ClassCNS || class == hal.ClassOperator) {
		atr = DemoATR
	}
	if class == hal.ClassOperator {
		class = hal.ClassCNS // an operator card is a TS-CNS by its ATR
	}
	return class, append([]byte(nil), atr...)
}

func (s *session) VerifyPIN(ctx context.Context, pin []byte) error {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	if s.card.Tries <= 0 {
		return hal.ErrPINBlocked
	}
	if subtle.ConstantTimeCompare(pin, []byte(s.card.PIN)) == 1 {
		s.card.Tries = 3
		return nil
	}
	s.card.Tries--
	if s.card.Tries == 0 {
		return hal.ErrPINBlocked
	}
	return &hal.PINError{TriesLeft: s.card.Tries}
}

var _ hal.PINChanger = (*session)(nil)

// ChangePIN changes the PIN after checking the old one, as VerifyPIN does.
func (s *session) ChangePIN(ctx context.Context, oldPIN, newPIN []byte) error {
	if err := s.VerifyPIN(ctx, oldPIN); err != nil {
		return err
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.card.PIN = string(newPIN)
	return nil
}

// UnblockPIN sets a new PIN and resets the tries when puk is right.
func (s *session) UnblockPIN(ctx context.Context, puk, newPIN []byte) error {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(puk, []byte(s.card.PUK)) != 1 {
		return &hal.PINError{TriesLeft: -1}
	}
	s.card.PIN, s.card.Tries = string(newPIN), 3
	return nil
}

func (s *session) Close() error { return nil }

// Printer is a simulated receipt printer that writes each receipt as a text
// file in Dir (when Dir is set) and keeps the last ones in memory.
type Printer struct {
	Dir  string
	Cols int // columns of the paper, default 42

	mu       sync.Mutex
	status   hal.PrinterStatus
	n        int
	receipts []string
	files    []string
	printed  chan struct{} // closed (and replaced) by every receipt printed
}

var _ hal.Printer = (*Printer)(nil)

// NewPrinter returns a ready printer writing to dir ("" keeps receipts in
// memory only).
func NewPrinter(dir string) *Printer {
	return &Printer{Dir: dir, Cols: 42, status: hal.PrinterStatus{Online: true}}
}

// SetStatus sets what the printer reports (paper out, cover open…).
func (p *Printer) SetStatus(s hal.PrinterStatus) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status = s
}

// Status reports the simulated condition.
func (p *Printer) Status(ctx context.Context) (hal.PrinterStatus, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status, ctx.Err()
}

// Print renders doc as text and stores it.
func (p *Printer) Print(ctx context.Context, doc *hal.Doc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.status.Err(); err != nil {
		return err
	}
	text := Render(doc, p.Cols)
	p.n++
	if p.Dir != "" {
		name := fmt.Sprintf("%s-%03d-%s.txt", time.Now().Format("20060102-150405"), p.n, safeName(doc.Title))
		path := filepath.Join(p.Dir, name)
		if err := writeFile(path, []byte(text)); err != nil {
			return fmt.Errorf("sim: printer: %w", err)
		}
		p.files = append(p.files, path)
	}
	p.receipts = append(p.receipts, text)
	if p.printed != nil {
		close(p.printed)
		p.printed = nil
	}
	return nil
}

// WaitReceipts waits until n receipts have been printed and returns them
// all; when ctx ends first it returns those printed and an error.
func (p *Printer) WaitReceipts(ctx context.Context, n int) ([]string, error) {
	for {
		p.mu.Lock()
		got := append([]string(nil), p.receipts...)
		if p.printed == nil {
			p.printed = make(chan struct{})
		}
		ch := p.printed
		p.mu.Unlock()
		if len(got) >= n {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return got, fmt.Errorf("sim: %d receipts printed, want %d", len(got), n)
		case <-ch:
		}
	}
}

// Receipts returns every receipt printed so far, as text.
func (p *Printer) Receipts() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.receipts...)
}

// Files returns the paths of the receipt files written so far.
func (p *Printer) Files() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.files...)
}

func safeName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '-'
	}, s)
	if s == "" {
		return "receipt"
	}
	return s
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Render lays doc out as plain text cols wide, the way a thermal printer
// would print it with its built-in font. QR codes and barcodes are shown as
// their data in brackets.
func Render(doc *hal.Doc, cols int) string {
	var b strings.Builder
	for _, bl := range doc.Blocks {
		switch bl.Kind {
		case hal.Rule:
			b.WriteString(strings.Repeat("-", cols))
			b.WriteByte('\n')
		case hal.Feed:
			b.WriteByte('\n')
		case hal.QR:
			b.WriteString(hal.Center.Pad("[QR "+bl.Text+"]", cols))
			b.WriteByte('\n')
		case hal.Barcode:
			b.WriteString(hal.Center.Pad("[|||| "+bl.Text+" ||||]", cols))
			b.WriteByte('\n')
		default:
			width := cols
			if bl.Large {
				width = cols / 2
			}
			for _, line := range hal.Wrap(bl.Text, width) {
				b.WriteString(bl.Align.Pad(line, width))
				b.WriteByte('\n')
			}
		}
	}
	return b.String()
}

// Panel is an in-memory display and keypad: what headless totemd and tests
// drive the firmware with.
type Panel struct {
	cols, rows int

	mu      sync.Mutex
	lines   []string
	changed chan struct{}
	keys    chan hal.Key
}

var (
	_ hal.Display = (*Panel)(nil)
	_ hal.Keypad  = (*Panel)(nil)
)

// NewPanel returns a cols×rows panel.
func NewPanel(cols, rows int) *Panel {
	return &Panel{cols: cols, rows: rows, changed: make(chan struct{}), keys: make(chan hal.Key, 64)}
}

// Size returns the panel's size.
func (p *Panel) Size() (int, int) { return p.cols, p.rows }

// Show replaces the screen; lines beyond the size are cut.
func (p *Panel) Show(lines []string) error {
	out := make([]string, p.rows)
	for i := 0; i < p.rows && i < len(lines); i++ {
		r := []rune(lines[i])
		if len(r) > p.cols {
			r = r[:p.cols]
		}
		out[i] = string(r)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = out
	close(p.changed)
	p.changed = make(chan struct{})
	return nil
}

// Lines returns what the screen shows.
func (p *Panel) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// Text returns the screen as one string, rows joined by newlines.
func (p *Panel) Text() string { return strings.Join(p.Lines(), "\n") }

// WaitFor waits until the screen contains substr and returns the screen.
func (p *Panel) WaitFor(ctx context.Context, substr string) (string, error) {
	return p.waitUntil(ctx, func(text string) bool { return strings.Contains(text, substr) },
		func(text string) error { return fmt.Errorf("sim: screen never showed %q; it shows:\n%s", substr, text) })
}

// WaitChange waits until the screen is no longer from (a screen read with
// Text) and returns it.
func (p *Panel) WaitChange(ctx context.Context, from string) (string, error) {
	return p.waitUntil(ctx, func(text string) bool { return text != from },
		func(text string) error { return fmt.Errorf("sim: the screen never changed from:\n%s", text) })
}

// waitUntil waits until the screen, rows joined by newlines, satisfies ok
// and returns it; when ctx is done first it returns the screen then with
// the error failed makes of it.
func (p *Panel) waitUntil(ctx context.Context, ok func(text string) bool, failed func(text string) error) (string, error) {
	for {
		p.mu.Lock()
		text := strings.Join(p.lines, "\n")
		ch := p.changed
		p.mu.Unlock()
		if ok(text) {
			return text, nil
		}
		select {
		case <-ctx.Done():
			return text, failed(text)
		case <-ch:
		}
	}
}

// Pending returns how many keys pressed wait to be read.
func (p *Panel) Pending() int { return len(p.keys) }

// Press queues key presses.
func (p *Panel) Press(keys ...hal.Key) {
	for _, k := range keys {
		p.keys <- k
	}
}

// Type presses each character of s as a key.
func (p *Panel) Type(s string) {
	for i := 0; i < len(s); i++ {
		p.Press(hal.Key(s[i]))
	}
}

// Next returns the next key pressed.
func (p *Panel) Next(ctx context.Context) (hal.Key, error) { return hal.NextKey(ctx, p.keys, nil) }
