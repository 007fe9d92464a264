// Package hal is the contract between the totem firmware and its devices:
// small interfaces for the card reader, the receipt printer, the keypad,
// the text display and the speaker, optional one-method capabilities, and the sentinel
// errors the firmware branches on.
//
// hal imports only the standard library. Drivers in drivers/... implement
// these interfaces on real hardware; hal/sim implements them with simulated
// devices and hal/haltest ships fakes and conformance checks.
package hal

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Drivers translate vendor errors into these at their
// boundary so that firmware never imports a vendor package.
var (
	ErrNoCard        = errors.New("hal: no card in the reader")
	ErrCardRemoved   = errors.New("hal: card removed")
	ErrCardUnknown   = errors.New("hal: not a TS-CNS card")
	ErrCardData      = errors.New("hal: unreadable card data")
	ErrCardExpired   = errors.New("hal: card expired")
	ErrWrongPIN      = errors.New("hal: wrong PIN")
	ErrPINBlocked    = errors.New("hal: PIN blocked")
	ErrNoReader      = errors.New("hal: no card reader")
	ErrPaperOut      = errors.New("hal: printer out of paper")
	ErrCoverOpen     = errors.New("hal: printer cover open")
	ErrPrinterFault  = errors.New("hal: printer fault")
	ErrNotResponding = errors.New("hal: device not responding")
	ErrTimeout       = errors.New("hal: timeout")
	ErrClosed        = errors.New("hal: device closed")
)

// Refinements of ErrCardUnknown that tell the citizen what to do instead:
// both match ErrCardUnknown with errors.Is, so code that only knows the
// broad sentinel keeps working.
var (
	// ErrCardCIE: the card is an identity card (CIE 3.0), not the health
	// card; the citizen is asked to use the TS-CNS.
	ErrCardCIE = fmt.Errorf("hal: identity card (CIE), not the health card: %w", ErrCardUnknown)
	// ErrCardContactless: the card answered over the contactless interface
	// only and none of its applications holds the CNS files; the citizen is
	// asked to insert it fully into the contact slot.
	ErrCardContactless = fmt.Errorf("hal: card read contactless without CNS data: %w", ErrCardUnknown)
)

// PINError reports a refused PIN with the tries the chip says are left
// (-1 when the chip does not say). It matches ErrWrongPIN with errors.Is.
type PINError struct {
	TriesLeft int
}

func (e *PINError) Error() string { return "hal: wrong PIN" }

// Is reports whether target is ErrWrongPIN.
func (e *PINError) Is(target error) bool { return target == ErrWrongPIN }

// CardEventKind says what happened in a reader.
type CardEventKind int

// Card events.
const (
	CardInserted CardEventKind = iota + 1
	CardRemoved
)

func (k CardEventKind) String() string {
	switch k {
	case CardInserted:
		return "inserted"
	case CardRemoved:
		return "removed"
	}
	return "unknown"
}

// CardEvent is an insertion or a removal in a reader. Counter increases on
// every change so a missed pair of events can be detected.
type CardEvent struct {
	Kind    CardEventKind
	Reader  string
	Counter int
}

// CardReader watches one card slot.
type CardReader interface {
	// Next blocks until the state of the slot changes, or ctx is done.
	// The first call reports a card already present as CardInserted.
	Next(ctx context.Context) (CardEvent, error)
	// Connect opens an exclusive session with the card in the slot.
	// It returns ErrNoCard when the slot is empty.
	Connect(ctx context.Context) (Card, error)
}

// ReaderHealth is an optional capability of a CardReader whose service can
// go away and come back on its own (pcscd restarting): Healthy reports
// whether the reader can be used now.
type ReaderHealth interface {
	Healthy() bool
}

// Card is an exclusive session with a TS-CNS card. Close leaves the card
// reset and unpowered, with no verified PIN state behind.
type Card interface {
	// Info reads the identity data that needs no PIN.
	Info(ctx context.Context) (CardInfo, error)
	// VerifyPIN presents pin to the chip. The slice is the only copy the
	// firmware holds; implementations must not retain it.
	VerifyPIN(ctx context.Context, pin []byte) error
	Close() error
}

// PINChanger is an optional capability of a Card: changing the PIN, and
// unblocking it with the PUK, on the chip. The slices are the only copies
// the caller holds; implementations must not retain them.
type PINChanger interface {
	ChangePIN(ctx context.Context, oldPIN, newPIN []byte) error
	UnblockPIN(ctx context.Context, puk, newPIN []byte) error
}

// CardProbe is an optional capability of a Card: its ATR and the class
// the ATR implies, known from the connection without sending the chip
// anything, so nothing personal is read (the technician's reader test).
type CardProbe interface {
	Probe() (CardClass, []byte)
}

// CardClass is the kind of card the ATR and the probe found.
type CardClass string

// Card classes.
const (
	ClassCNS         CardClass = "cns"
	ClassContactless CardClass = "contactless"
	ClassCIE         CardClass = "cie"
	ClassOperator    CardClass = "operator"
	ClassUnknown     CardClass = "unknown"
)

// CardInfo is what a TS-CNS chip tells without a PIN. It is personal data:
// never log it.
type CardInfo struct {
	Class     CardClass
	Serial    string // 16 digits, EF.ID_Carta
	Issuer    string // 4 digits
	CF        string // codice fiscale
	Surname   string
	Name      string
	BirthDate time.Time
	IssueDate time.Time
	Expiry    time.Time
}

// Printer prints receipts.
type Printer interface {
	// Print prints doc. It blocks until the printer has taken it, ctx is
	// done, or a fault (ErrPaperOut, ErrCoverOpen, ErrNotResponding…) stops it.
	Print(ctx context.Context, doc *Doc) error
	// Status reports the printer's condition.
	Status(ctx context.Context) (PrinterStatus, error)
}

// PrinterStatus is the decoded condition of a printer.
type PrinterStatus struct {
	Online        bool
	CoverOpen     bool
	PaperNearEnd  bool
	PaperOut      bool
	CutterError   bool
	Unrecoverable bool
}

// Err returns the sentinel that keeps a job from printing, or nil.
func (s PrinterStatus) Err() error {
	switch {
	case s.CoverOpen:
		return ErrCoverOpen
	case s.PaperOut:
		return ErrPaperOut
	case s.CutterError, s.Unrecoverable:
		return ErrPrinterFault
	case !s.Online:
		return ErrNotResponding
	}
	return nil
}

// PrinterFault is the code of the printer sentinel err is: "paper_out",
// "cover_open", "not_responding" or "printer_fault"; "" for nil and for
// any other error. It is the one sorting of a printer's faults: the
// citizen's screens, the totem's health and the technician's command
// each say these codes their own way.
func PrinterFault(err error) string {
	for _, f := range printerFaults {
		if errors.Is(err, f.err) {
			return f.code
		}
	}
	return ""
}

var printerFaults = []struct {
	err  error
	code string
}{
	{ErrPaperOut, "paper_out"},
	{ErrCoverOpen, "cover_open"},
	{ErrNotResponding, "not_responding"},
	{ErrPrinterFault, "printer_fault"},
}

// Align is a line alignment.
type Align int

// Alignments.
const (
	Left Align = iota
	Center
	Right
)

// BlockKind is what a receipt block holds.
type BlockKind int

// Block kinds.
const (
	Text BlockKind = iota
	QR
	Barcode
	Rule // a full-width separator line
	Feed // an empty line
)

// Block is one element of a receipt.
type Block struct {
	Kind  BlockKind
	Text  string // the line, or the QR/barcode data
	Align Align
	Bold  bool
	Large bool // double width and height
}

// Doc is a receipt as a list of blocks, independent of the printer's
// command language and width. The printer cuts after the last block.
type Doc struct {
	Title  string // short name for files and logs, never personal data
	Blocks []Block
	// Sensitive marks a receipt with secrets on it (the first halves of
	// PIN and PUK): once on paper, no copy of it may be kept.
	Sensitive bool
}

// Key is a key of the totem keypad: '0'–'9', 'A'–'D', '*', '#'.
type Key byte

// Keys with a role in every screen.
const (
	KeyOK     Key = '#' // Conferma
	KeyBack   Key = '*' // Indietro
	KeyCancel Key = 'D' // Annulla
)

// Valid reports whether k is a key of the 4x4 keypad.
func (k Key) Valid() bool {
	return k >= '0' && k <= '9' || k >= 'A' && k <= 'D' || k == '*' || k == '#'
}

// Keys only a full keyboard sends (a USB keyboard in assisted mode): it
// sends the keypad's keys for Enter (#), Backspace (*) and Esc (D), these
// for the cursor, and Char for every character typed — digits included,
// so that a keyboard never types where only the keypad may (the PIN).
const (
	KeyLeft   Key = 0x01 // the cursor one character back
	KeyRight  Key = 0x02 // the cursor one character on
	KeyDelete Key = 0x03 // the character under the cursor deleted
)

// Char is the key of printable ASCII character c typed on a keyboard;
// it is never a keypad key.
func Char(c byte) Key { return Key(0x80 | c&0x7f) }

// Char returns the character k carries when k is a typed character.
func (k Key) Char() (byte, bool) {
	c := byte(k) &^ 0x80
	return c, k&0x80 != 0 && c >= 0x20 && c < 0x7f
}

// Keypad reports key presses.
type Keypad interface {
	// Next blocks until a key is pressed or ctx is done.
	Next(ctx context.Context) (Key, error)
}

// NextKey is Keypad.Next for a driver that queues keys on keys from a
// reader that closes ended when it stops (nil: one that never does): a
// key, or ctx's error, or, once ended is closed and no key is left,
// ErrClosed.
func NextKey(ctx context.Context, keys <-chan Key, ended <-chan struct{}) (Key, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	select {
	case key := <-keys:
		return key, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-ended:
		select {
		case key := <-keys:
			return key, nil
		default:
			return 0, ErrClosed
		}
	}
}

// Display shows text on a character display.
type Display interface {
	// Size is the display's columns and rows.
	Size() (cols, rows int)
	// Show replaces the whole screen with lines (at most rows of them, each
	// at most cols runes; longer input is cut).
	Show(lines []string) error
}

// Speaker speaks text aloud: the speech output of the screens (EN 301 549
// 5.1.3), through the totem's speaker or headphone jack.
type Speaker interface {
	// Say speaks text in language lang ("it" or "en"), cutting short the
	// utterance still playing. It returns once the utterance is
	// synthesised and started, not when it has been heard.
	Say(ctx context.Context, lang, text string) error
}

// Beeper is an optional capability of a keypad or display.
type Beeper interface {
	Beep() error
}

// Clock is the time source used for timeouts, debounce and backoff, so
// tests can drive it. hal imports nothing of ours, so the layers above
// it that may not import hal (sync) read time through internal/clock's
// Clock, the same two methods: a value of either is the other.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
