package keypad

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/haltest"
)

// The pins are fakes written here rather than gpiotest.Pin: gpiotest imports
// github.com/jonboulle/clockwork, which go.sum does not list.

// matrix is a keypad without diodes: a column reads Low when it is
// connected, through the keys held down, to a row driven Low. Three keys on
// a rectangle therefore make the fourth corner read as pressed, as on the
// real thing.
type matrix struct {
	mu        sync.Mutex
	down      map[[2]int]bool
	rows      []*rowPin
	cols      []*colPin
	highs     int // rows driven High: must stay 0
	badWaits  int // WaitForEdge with a timeout <= 0: must stay 0
	waits     int // WaitForEdge calls
	inWait    int // WaitForEdge calls running now
	keyAt     map[hal.Key][2]int
	keypadMap Map
}

func newMatrix(t *testing.T, m Map) *matrix {
	mx := &matrix{down: map[[2]int]bool{}, keyAt: map[hal.Key][2]int{}, keypadMap: m}
	for i, row := range m {
		mx.rows = append(mx.rows, &rowPin{Pin: &gpiotest.Pin{N: fmt.Sprintf("R%d", i), Num: i}, m: mx, i: i})
		for j, k := range row {
			mx.keyAt[k] = [2]int{i, j}
		}
	}
	for j := range m[0] {
		mx.cols = append(mx.cols, &colPin{Pin: &gpiotest.Pin{N: fmt.Sprintf("C%d", j), Num: 10 + j}, m: mx, j: j,
			edges: make(chan struct{}, 1)})
	}
	t.Cleanup(func() {
		mx.mu.Lock()
		defer mx.mu.Unlock()
		if mx.highs != 0 {
			t.Errorf("a row was driven High %d times", mx.highs)
		}
		if mx.badWaits != 0 {
			t.Errorf("WaitForEdge called %d times with a timeout <= 0", mx.badWaits)
		}
	})
	return mx
}

func (m *matrix) pins() ([]gpio.PinIO, []gpio.PinIn) {
	var rows []gpio.PinIO
	var cols []gpio.PinIn
	for _, r := range m.rows {
		rows = append(rows, r)
	}
	for _, c := range m.cols {
		cols = append(cols, c)
	}
	return rows, cols
}

// set presses (down) or releases keys.
func (m *matrix) set(down bool, keys ...hal.Key) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		at, ok := m.keyAt[k]
		if !ok {
			panic(fmt.Sprintf("no key %q", k))
		}
		if down {
			m.down[at] = true
		} else {
			delete(m.down, at)
		}
	}
	for _, c := range m.cols {
		if c.edge != gpio.NoEdge && m.level(c.j) == gpio.Low {
			select {
			case c.edges <- struct{}{}:
			default:
			}
		}
	}
}

// level computes column j; m.mu is held.
func (m *matrix) level(j int) gpio.Level {
	seenRow := map[int]bool{}
	seenCol := map[int]bool{j: true}
	queue := []int{j}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		for r := range m.rows {
			if !m.down[[2]int{r, c}] || seenRow[r] {
				continue
			}
			seenRow[r] = true
			if m.rows[r].out && m.rows[r].l == gpio.Low {
				return gpio.Low
			}
			for c2 := range m.cols {
				if m.down[[2]int{r, c2}] && !seenCol[c2] {
					seenCol[c2] = true
					queue = append(queue, c2)
				}
			}
		}
	}
	return gpio.High // pull-up
}

// rowLevels returns each row as "L", "H" or "Z".
func (m *matrix) rowLevels() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := ""
	for _, r := range m.rows {
		switch {
		case !r.out:
			s += "Z"
		case r.l == gpio.Low:
			s += "L"
		default:
			s += "H"
		}
	}
	return s
}

// rowPin and colPin are periph's gpiotest pins with the matrix's wiring:
// a row records whether it drives, a column reads what the held keys
// connect it to.
type rowPin struct {
	*gpiotest.Pin
	m   *matrix
	i   int
	out bool
	l   gpio.Level
}

func (p *rowPin) String() string { return fmt.Sprintf("R%d", p.i) }
func (p *rowPin) Name() string   { return p.String() }

func (p *rowPin) Out(l gpio.Level) error {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	if l == gpio.High {
		p.m.highs++
	}
	p.out, p.l = true, l
	return p.Pin.Out(l)
}

func (p *rowPin) In(pull gpio.Pull, edge gpio.Edge) error {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	if pull != gpio.Float || edge != gpio.NoEdge {
		return errors.New("rows must float")
	}
	p.out = false
	return p.Pin.In(pull, edge)
}

type colPin struct {
	*gpiotest.Pin
	m     *matrix
	j     int
	pull  gpio.Pull
	edge  gpio.Edge
	edges chan struct{}
}

func (p *colPin) String() string { return fmt.Sprintf("C%d", p.j) }
func (p *colPin) Name() string   { return p.String() }

func (p *colPin) In(pull gpio.Pull, edge gpio.Edge) error {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	if pull != gpio.PullUp {
		return errors.New("columns need a pull-up")
	}
	p.pull, p.edge = pull, edge
	select { // flush, as gpiotest does
	case <-p.edges:
	default:
	}
	return nil
}

func (p *colPin) Read() gpio.Level {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	return p.m.level(p.j)
}

func (p *colPin) WaitForEdge(timeout time.Duration) bool {
	p.m.mu.Lock()
	p.m.waits++
	if timeout <= 0 {
		p.m.badWaits++
		p.m.mu.Unlock()
		time.Sleep(time.Millisecond)
		return false
	}
	p.m.inWait++
	p.m.mu.Unlock()
	defer func() {
		p.m.mu.Lock()
		p.m.inWait--
		p.m.mu.Unlock()
	}()
	select {
	case <-p.edges:
		return true
	case <-time.After(timeout):
		return false
	}
}

// fakeClock is the scan loop's hal.Clock in the tests: haltest's, moved
// one scan at a time when the test says so.
type fakeClock struct {
	*haltest.Clock
	interval time.Duration // the keypad's ScanInterval
}

func newClock(at time.Time) *fakeClock {
	return &fakeClock{Clock: haltest.NewClock(at), interval: DefaultScanInterval}
}

// waitTimer waits until something waits on the clock.
func (c *fakeClock) waitTimer(t *testing.T) {
	t.Helper()
	n := c.Armed()
	if c.Pending() > 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WaitArmed(ctx, n); err != nil {
		t.Fatal("nothing waits on the clock")
	}
}

// step waits for a timer and moves the clock to it, firing it.
func (c *fakeClock) step(t *testing.T) {
	t.Helper()
	c.waitTimer(t)
	if c.Advance(c.interval) == 0 {
		t.Fatalf("no wait fell due %v later", c.interval)
	}
}

// scans lets n more scans happen and waits until the last one is done.
func (c *fakeClock) scans(t *testing.T, n int) {
	t.Helper()
	for range n {
		c.step(t)
	}
	c.waitTimer(t)
}

type rig struct {
	t   *testing.T
	m   *matrix
	c   *fakeClock
	k   *Keypad
	end chan error
}

const debounce = 3

func start(t *testing.T, m Map, opts Options) *rig {
	t.Helper()
	mx := newMatrix(t, m)
	clk := newClock(time.Date(2025, 1, 1, 8, 0, 0, 0, time.UTC))
	opts.Map, opts.Clock, opts.Debounce, opts.Settle = m, clk, debounce, -1
	rows, cols := mx.pins()
	k, err := New(rows, cols, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{t: t, m: mx, c: clk, k: k, end: make(chan error, 1)}
	go func() { r.end <- k.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.end:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return")
		}
		if got := mx.rowLevels(); got != "ZZZZ"[:len(mx.rows)] {
			t.Errorf("rows after Run = %s; want all floating", got)
		}
	})
	if !opts.Wake {
		clk.waitTimer(t)
	}
	return r
}

// tap presses key for long enough and releases it.
func (r *rig) tap(key hal.Key) {
	r.t.Helper()
	r.press(debounce, key)
	r.release(debounce, key)
}

// tapEach taps each key of keys in turn; they are reported, in order.
func (r *rig) tapEach(keys string) {
	r.t.Helper()
	for _, k := range keys {
		r.tap(hal.Key(k))
	}
	r.expect(keys)
}

// keys returns the keys reported so far.
func (r *rig) keys() string {
	var s string
	for {
		select {
		case k := <-r.k.keys:
			s += string(rune(k))
		default:
			return s
		}
	}
}

// press holds keys down and lets n scans happen.
func (r *rig) press(n int, keys ...hal.Key) {
	r.t.Helper()
	r.m.set(true, keys...)
	r.c.scans(r.t, n)
}

// release lets keys up and lets n scans happen.
func (r *rig) release(n int, keys ...hal.Key) {
	r.t.Helper()
	r.m.set(false, keys...)
	r.c.scans(r.t, n)
}

func (r *rig) expect(want string) {
	r.t.Helper()
	if got := r.keys(); got != want {
		r.t.Fatalf("keys = %q; want %q", got, want)
	}
}

func TestSingleKeys(t *testing.T) {
	r := start(t, Map4x4, Options{})
	const all = "123A456B789C*0#D"
	r.tapEach(all)
	if got := r.m.rowLevels(); got != "ZZZZ" {
		t.Errorf("rows between scans = %s; want all floating", got)
	}
}

func TestDebounceNeedsIdenticalScans(t *testing.T) {
	r := start(t, Map4x4, Options{})
	r.press(debounce-1, '5')
	r.expect("")
	r.c.scans(t, 1)
	r.expect("5")
}

func TestBounce(t *testing.T) {
	r := start(t, Map4x4, Options{})
	// Chatter on press, every run shorter than the debounce.
	for range 5 {
		r.press(debounce-1, '8')
		r.release(1, '8')
	}
	r.expect("")
	// Then it settles down: one key.
	r.press(debounce, '8')
	r.expect("8")
	// Chatter on release is no second press.
	for range 5 {
		r.release(debounce-1, '8')
		r.press(1, '8')
	}
	r.release(debounce, '8')
	r.expect("")
	r.tap('9')
	r.expect("9")
}

func TestTwoKeysIgnored(t *testing.T) {
	r := start(t, Map4x4, Options{})
	// Two at once.
	r.press(2*debounce, '1', '6')
	r.release(debounce, '1', '6')
	r.expect("")

	// A second key while the first is held: the first was reported, then
	// nothing until both are up, even when the first goes up first.
	r.press(debounce, '2')
	r.press(debounce, '3')
	r.release(2*debounce, '2')
	r.release(debounce, '3')
	r.expect("2")

	// Three keys on a rectangle: the fourth corner reads pressed too.
	r.press(2*debounce, '1', '2', '4')
	r.release(debounce, '1', '2') // '4' alone, still jammed
	r.release(debounce, '4')
	r.expect("")

	r.tap('0')
	r.expect("0")
}

func TestGhostReadsFourthCorner(t *testing.T) {
	m := newMatrix(t, Map4x4)
	k, err := New(func() []gpio.PinIO { r, _ := m.pins(); return r }(), func() []gpio.PinIn { _, c := m.pins(); return c }(), Options{Settle: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.idle(); err != nil {
		t.Fatal(err)
	}
	m.set(true, '1', '2', '4')
	raw, err := k.scan()
	if err != nil {
		t.Fatal(err)
	}
	// '1' bit 0, '2' bit 1, '4' bit 4, ghost '5' bit 5.
	if want := uint64(1<<0 | 1<<1 | 1<<4 | 1<<5); raw != want {
		t.Fatalf("scan = %b; want %b", raw, want)
	}
}

func TestHeldKeyReportedOnce(t *testing.T) {
	r := start(t, Map4x4, Options{})
	r.press(400, hal.KeyOK) // 2 s at 5 ms
	r.release(debounce, hal.KeyOK)
	r.expect("#")
}

func TestHeldKeyRepeat(t *testing.T) {
	r := start(t, Map4x4, Options{Repeat: Repeat{Delay: 500 * time.Millisecond, Interval: 100 * time.Millisecond}})
	r.press(debounce, '2')
	r.expect("2")
	r.c.scans(t, 99) // 495 ms
	r.expect("")
	r.c.scans(t, 41) // 700 ms: repeats at 500, 600, 700
	r.expect("222")
	r.release(debounce+40, '2')
	r.expect("")
}

func Test4x3(t *testing.T) {
	r := start(t, Map4x3, Options{})
	const all = "123456789*0#"
	r.tapEach(all)
	if len(r.m.cols) != 3 {
		t.Fatalf("%d columns", len(r.m.cols))
	}
}

func TestNewChecksPins(t *testing.T) {
	m := newMatrix(t, Map4x4)
	rows, cols := m.pins()
	if _, err := New(rows[:3], cols, Options{}); err == nil {
		t.Error("3 rows for a 4x4 map: no error")
	}
	if _, err := New(rows, cols, Options{Map: Map4x3}); err == nil {
		t.Error("4 columns for a 4x3 map: no error")
	}
	rows[2] = nil
	if _, err := New(rows, cols, Options{}); err == nil {
		t.Error("nil pin: no error")
	}
}

func TestConformance(t *testing.T) {
	r := start(t, Map4x4, Options{})
	haltest.KeypadConformance(t, r.k, r.tap)
}

func TestWake(t *testing.T) {
	r := start(t, Map4x4, Options{Wake: true, WakeTimeout: 2 * time.Millisecond})
	asleep := func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			r.m.mu.Lock()
			n := r.m.inWait
			r.m.mu.Unlock()
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("keypad did not go to sleep")
			}
			time.Sleep(100 * time.Microsecond)
		}
		if got := r.m.rowLevels(); got != "LLLL" {
			t.Fatalf("rows asleep = %s; want all Low", got)
		}
	}
	asleep()
	// Sleeping spans several WaitForEdge timeouts without scanning.
	time.Sleep(10 * time.Millisecond)
	r.m.mu.Lock()
	waits := r.m.waits
	r.m.mu.Unlock()
	if waits < 4 {
		t.Errorf("%d WaitForEdge calls in 10 ms of sleep; want a loop of short waits", waits)
	}
	for _, k := range "5D*" {
		r.press(debounce-1, hal.Key(k)) // the wake-up scan counts as the first
		r.m.set(false, hal.Key(k))
		for range debounce {
			r.c.step(t)
		}
		asleep()
	}
	r.expect("5D*")
}

func TestWakeCancel(t *testing.T) {
	m := newMatrix(t, Map4x4)
	rows, cols := m.pins()
	k, err := New(rows, cols, Options{Wake: true, WakeTimeout: 5 * time.Millisecond, Clock: newClock(time.Time{}), Settle: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	end := make(chan error, 1)
	go func() { end <- k.Run(ctx) }()
	time.Sleep(10 * time.Millisecond)
	cancel()
	select {
	case err := <-end:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Run did not end after cancel")
	}
	m.mu.Lock()
	inWait := m.inWait
	m.mu.Unlock()
	if inWait != 0 {
		t.Errorf("%d WaitForEdge calls still running after Run returned", inWait)
	}
	if got := m.rowLevels(); got != "ZZZZ" {
		t.Errorf("rows after Run = %s; want all floating", got)
	}
	if _, err := k.Next(context.Background()); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("Next after Run = %v; want hal.ErrClosed", err)
	}
}
