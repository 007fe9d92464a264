// Package keypad scans a matrix keypad (4x4 or 4x3) wired to periph gpio
// pins and implements hal.Keypad.
//
// Rows are driven Low one at a time while the other rows float
// (In(gpio.Float, gpio.NoEdge)); rows are never driven High, so two keys in
// one column cannot short two outputs. Columns are inputs with pull-ups: a
// column that reads Low while a row is driven Low has a key pressed at the
// crossing. Debounce happens here, on an injectable hal.Clock (a state is
// accepted after Options.Debounce identical scans), because
// gpioutil.Debounce ignores its debounce argument in conn v3.7.3.
//
// More than one key down at once is ambiguous on a matrix without diodes
// (three keys on a rectangle make a fourth appear), so any scan with two or
// more keys is ignored until every key is released.
//
// The caller owns the scan loop: it calls Run in a goroutine and cancels its
// context to stop it; Next may be called from any goroutine.
package keypad

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/aslcns/totem/hal"
)

var _ hal.Keypad = (*Keypad)(nil)

// Map gives the key at each crossing, indexed [row][column]. A zero Key
// marks a crossing with no key.
type Map [][]hal.Key

// Map4x4 is the 16-key keypad: digits, A–D in the last column, * 0 # D on
// the last row.
var Map4x4 = Map{
	{'1', '2', '3', 'A'},
	{'4', '5', '6', 'B'},
	{'7', '8', '9', 'C'},
	{'*', '0', '#', 'D'},
}

// Map4x3 is the 12-key telephone keypad.
var Map4x3 = Map{
	{'1', '2', '3'},
	{'4', '5', '6'},
	{'7', '8', '9'},
	{'*', '0', '#'},
}

// Repeat is the policy for a key held down. The zero value is the default:
// no repeat, a held key is reported once.
type Repeat struct {
	Delay    time.Duration // first repeat after this long held; 0: never
	Interval time.Duration // then every Interval; 0: Delay
}

// Defaults of Options.
const (
	DefaultScanInterval = 5 * time.Millisecond
	DefaultSettle       = 20 * time.Microsecond
	DefaultDebounce     = 4 // scans, 20 ms at DefaultScanInterval
	DefaultWakeTimeout  = 100 * time.Millisecond
	DefaultBuffer       = 64
)

// Options configure a Keypad. The zero value gives a 4x4 keypad scanned
// every 5 ms, debounced over 4 scans, without repeat and without wake.
type Options struct {
	Map          Map           // default Map4x4
	Clock        hal.Clock     // scan timing and repeat; default hal.SystemClock
	ScanInterval time.Duration // between scans; default DefaultScanInterval
	// Settle is how long a row is held Low before the columns are read;
	// default DefaultSettle, negative for none.
	Settle   time.Duration
	Debounce int    // identical scans to accept a state; default DefaultDebounce
	Repeat   Repeat // held-key policy; default no repeat
	// Wake makes Run sleep on column edges while no key is down instead of
	// scanning: all rows Low, columns FallingEdge.
	Wake bool
	// WakeTimeout bounds each WaitForEdge call while asleep; it is always
	// positive because on Linux WaitForEdge(0) waits forever and -1 returns
	// at once. Default DefaultWakeTimeout.
	WakeTimeout time.Duration
	Buffer      int // keys held while nobody calls Next; default DefaultBuffer
}

// Keypad is a scanned matrix keypad.
type Keypad struct {
	rows []gpio.PinIO
	cols []gpio.PinIn
	opts Options

	keys    chan hal.Key
	dropped atomic.Int64
	running atomic.Bool
	ended   chan struct{} // closed when Run returns

	// Scan state, owned by Run's goroutine.
	last     uint64 // last raw scan
	count    int    // identical raw scans in a row
	stable   uint64 // debounced state
	jammed   bool   // several keys down: ignore until all released
	held     int    // index of the reported key, -1 when none
	repeatAt time.Time
}

// New returns a keypad on rows (driven) and cols (read), which must match
// opts.Map. It configures no pin until Run.
func New(rows []gpio.PinIO, cols []gpio.PinIn, opts Options) (*Keypad, error) {
	if opts.Map == nil {
		opts.Map = Map4x4
	}
	if len(rows) != len(opts.Map) {
		return nil, fmt.Errorf("keypad: %d row pins for a %d-row key map", len(rows), len(opts.Map))
	}
	for i, r := range opts.Map {
		if len(r) != len(cols) {
			return nil, fmt.Errorf("keypad: %d column pins for %d keys in map row %d", len(cols), len(r), i)
		}
	}
	if len(rows)*len(cols) > 64 || len(rows) == 0 || len(cols) == 0 {
		return nil, fmt.Errorf("keypad: unsupported %dx%d matrix", len(rows), len(cols))
	}
	for i, p := range rows {
		if p == nil {
			return nil, fmt.Errorf("keypad: row %d: no pin", i)
		}
	}
	for i, p := range cols {
		if p == nil {
			return nil, fmt.Errorf("keypad: column %d: no pin", i)
		}
	}
	if opts.Clock == nil {
		opts.Clock = hal.SystemClock{}
	}
	if opts.ScanInterval <= 0 {
		opts.ScanInterval = DefaultScanInterval
	}
	if opts.Settle == 0 {
		opts.Settle = DefaultSettle
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.Repeat.Interval <= 0 {
		opts.Repeat.Interval = opts.Repeat.Delay
	}
	if opts.WakeTimeout <= 0 {
		opts.WakeTimeout = DefaultWakeTimeout
	}
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	return &Keypad{
		rows:  rows,
		cols:  cols,
		opts:  opts,
		keys:  make(chan hal.Key, opts.Buffer),
		ended: make(chan struct{}),
		held:  -1,
		count: opts.Debounce, // nothing down until a scan says otherwise
	}, nil
}

// Run scans the keypad until ctx is done, then leaves every row floating
// and returns nil. It returns an error when a pin cannot be set. Run may be
// called once; the caller runs it in a goroutine and waits for it.
func (k *Keypad) Run(ctx context.Context) (err error) {
	if !k.running.CompareAndSwap(false, true) {
		return errors.New("keypad: Run called twice")
	}
	defer close(k.ended)
	defer func() {
		if e := k.idle(); err == nil {
			err = e
		}
	}()
	if err := k.idle(); err != nil {
		return err
	}
	for {
		raw, err := k.scan()
		if err != nil {
			return err
		}
		k.update(raw, k.opts.Clock.Now())
		if k.opts.Wake && k.quiet() {
			if err := k.sleep(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			continue // scan at once what woke us
		}
		select {
		case <-ctx.Done():
			return nil
		case <-k.opts.Clock.After(k.opts.ScanInterval):
		}
	}
}

// idle floats every row and sets the columns to plain pulled-up inputs.
func (k *Keypad) idle() error {
	for _, r := range k.rows {
		if err := r.In(gpio.Float, gpio.NoEdge); err != nil {
			return fmt.Errorf("keypad: row %s: %w", r, err)
		}
	}
	for _, c := range k.cols {
		if err := c.In(gpio.PullUp, gpio.NoEdge); err != nil {
			return fmt.Errorf("keypad: column %s: %w", c, err)
		}
	}
	return nil
}

func (k *Keypad) settle() {
	if k.opts.Settle > 0 {
		time.Sleep(k.opts.Settle)
	}
}

// scan drives each row Low in turn and returns the crossings read Low, bit
// row*len(cols)+col.
func (k *Keypad) scan() (uint64, error) {
	var raw uint64
	n := len(k.cols)
	for i, r := range k.rows {
		if err := r.Out(gpio.Low); err != nil {
			return 0, fmt.Errorf("keypad: row %s: %w", r, err)
		}
		k.settle()
		for j, c := range k.cols {
			if c.Read() == gpio.Low {
				raw |= 1 << (i*n + j)
			}
		}
		if err := r.In(gpio.Float, gpio.NoEdge); err != nil {
			return 0, fmt.Errorf("keypad: row %s: %w", r, err)
		}
	}
	return raw, nil
}

// quiet reports whether no key is down and none is being debounced.
func (k *Keypad) quiet() bool {
	return k.stable == 0 && k.last == 0 && k.count >= k.opts.Debounce
}

// update debounces raw and reports keys.
func (k *Keypad) update(raw uint64, now time.Time) {
	if raw == k.last {
		if k.count < k.opts.Debounce {
			k.count++
		}
	} else {
		k.last, k.count = raw, 1
	}
	if k.count >= k.opts.Debounce && raw != k.stable {
		k.stable = raw
		switch bits.OnesCount64(raw) {
		case 0:
			k.jammed, k.held = false, -1
		case 1:
			if i := bits.TrailingZeros64(raw); !k.jammed && i != k.held {
				k.held = i
				k.repeatAt = now.Add(k.opts.Repeat.Delay)
				k.emit(i)
			}
		default:
			// Two keys, or three on a rectangle that fake a fourth: the
			// matrix cannot tell which, so ignore all until released.
			k.jammed, k.held = true, -1
		}
		return
	}
	if k.held >= 0 && k.opts.Repeat.Delay > 0 && !now.Before(k.repeatAt) {
		k.repeatAt = k.repeatAt.Add(k.opts.Repeat.Interval)
		if k.repeatAt.Before(now) {
			k.repeatAt = now.Add(k.opts.Repeat.Interval)
		}
		k.emit(k.held)
	}
}

func (k *Keypad) emit(i int) {
	n := len(k.cols)
	key := k.opts.Map[i/n][i%n]
	if key == 0 {
		return
	}
	select {
	case k.keys <- key:
	default:
		k.dropped.Add(1)
	}
}

// sleep drives every row Low and waits for a falling edge on any column,
// or for ctx. The WaitForEdge calls always get a positive timeout and run
// in a loop that checks ctx.
func (k *Keypad) sleep(ctx context.Context) error {
	for _, r := range k.rows {
		if err := r.Out(gpio.Low); err != nil {
			return fmt.Errorf("keypad: row %s: %w", r, err)
		}
	}
	for _, c := range k.cols {
		if err := c.In(gpio.PullUp, gpio.FallingEdge); err != nil {
			return fmt.Errorf("keypad: column %s: edge: %w", c, err)
		}
	}
	k.settle()
	woken := false
	for _, c := range k.cols {
		if c.Read() == gpio.Low { // pressed before the edges were armed
			woken = true
		}
	}
	if !woken {
		wake := make(chan struct{}, 1)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, c := range k.cols {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if c.WaitForEdge(k.opts.WakeTimeout) {
						select {
						case wake <- struct{}{}:
						default:
						}
						return
					}
				}
			})
		}
		select {
		case <-ctx.Done():
		case <-wake:
		}
		close(stop)
		wg.Wait()
	}
	if err := k.idle(); err != nil {
		return err
	}
	return ctx.Err()
}

// Next returns the next key pressed, waiting until ctx is done. Keys pressed
// while nobody waits are kept, up to Options.Buffer of them. Once Run has
// returned and every kept key is taken, Next returns hal.ErrClosed.
func (k *Keypad) Next(ctx context.Context) (hal.Key, error) {
	return hal.NextKey(ctx, k.keys, k.ended)
}

// Dropped returns how many keys were dropped because Options.Buffer keys
// were already waiting for Next.
func (k *Keypad) Dropped() int { return int(k.dropped.Load()) }
