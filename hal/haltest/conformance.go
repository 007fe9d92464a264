package haltest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aslcns/totem/hal"
)

// Time limits of the conformance checks. They are generous so that the race
// detector and a loaded CI machine do not make the checks flaky.
const (
	keyWait    = 5 * time.Second         // longest wait for a pressed key
	promptness = time.Second             // longest reaction to a cancelled ctx
	quietWait  = 30 * time.Millisecond   // how long "no key" is waited for
	hangLimit  = keyWait + 5*time.Second // Next ignoring its ctx
)

// DisplayConformance checks any hal.Display: Size is positive and stable;
// Show with the right number of lines works; lines longer than cols are cut,
// not an error; more lines than rows are cut to the first rows, not an
// error; an empty Show (nil or no lines) clears the screen; accented Italian
// text (à è é ì ò ù €) is accepted and counted in runes, not bytes.
//
// read returns what the display currently shows, as rows of text. It may
// return the rows padded with spaces to cols or trimmed, and may leave out
// empty rows at the bottom: rows are compared with trailing spaces removed,
// and missing rows count as empty. It must not return more than rows rows or
// a row wider than cols runes.
func DisplayConformance(t *testing.T, d hal.Display, read func() []string) {
	t.Helper()
	cols, rows := d.Size()
	if cols <= 0 || rows <= 0 {
		t.Fatalf("Size() = %d, %d; want positive", cols, rows)
	}
	if c, r := d.Size(); c != cols || r != rows {
		t.Fatalf("Size() = %d, %d then %d, %d; want stable", cols, rows, c, r)
	}
	s := screen{d: d, read: read, cols: cols, rows: rows}
	for _, c := range displayChecks {
		t.Run(c.name, func(t *testing.T) { c.check(t, s) })
	}
	if c, r := d.Size(); c != cols || r != rows {
		t.Fatalf("Size() = %d, %d after Show; was %d, %d", c, r, cols, rows)
	}
}

// screen is the display under check, with its size and how to read it.
type screen struct {
	d          hal.Display
	read       func() []string
	cols, rows int
}

// show calls Show and checks that the screen reads as want.
func (s screen) show(t *testing.T, lines, want []string) {
	t.Helper()
	if err := s.d.Show(lines); err != nil {
		t.Fatalf("Show(%q): %v", lines, err)
	}
	got, err := normalize(s.read(), s.cols, s.rows)
	if err != nil {
		t.Fatalf("after Show(%q): read: %v", lines, err)
	}
	want = slices.Clone(want[:min(len(want), s.rows)])
	for i := range want {
		want[i] = Cut(want[i], s.cols)
	}
	exp, _ := normalize(want, s.cols, s.rows)
	if !slices.Equal(got, exp) {
		t.Fatalf("after Show(%q):\nread %q\nwant %q", lines, got, exp)
	}
}

// pattern is a line of n characters that differs from row to row.
func pattern(row, n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteByte("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[(row+i)%36])
	}
	return b.String()
}

// displayChecks are DisplayConformance's subtests, in order.
var displayChecks = []struct {
	name  string
	check func(t *testing.T, s screen)
}{
	{"full", func(t *testing.T, s screen) {
		lines := make([]string, s.rows)
		for i := range lines {
			lines[i] = pattern(i, s.cols)
		}
		s.show(t, lines, lines)
	}},
	{"fewer_lines", func(t *testing.T, s screen) {
		s.show(t, []string{"Benvenuto"}, []string{"Benvenuto"})
	}},
	{"long_lines_cut", func(t *testing.T, s screen) {
		lines := make([]string, s.rows)
		want := make([]string, s.rows)
		for i := range lines {
			lines[i] = pattern(i, s.cols+7)
			want[i] = pattern(i, s.cols)
		}
		s.show(t, lines, want)
	}},
	{"extra_lines_cut", func(t *testing.T, s screen) {
		lines := make([]string, s.rows+2)
		for i := range lines {
			lines[i] = pattern(i, min(s.cols, 5))
		}
		s.show(t, lines, lines[:s.rows])
	}},
	{"accented", func(t *testing.T, s screen) {
		const it = "àèéìòù€"
		long := strings.Repeat(it, s.cols/utf8.RuneCountInString(it)+2)
		lines := []string{"Perché è già l'una", long, "Totale: 12,50 €", "Città: Forlì"}
		want := make([]string, len(lines))
		for i, l := range lines {
			want[i] = Cut(l, s.cols)
		}
		s.show(t, lines[:min(len(lines), s.rows)], want)
	}},
	{"empty_clears", func(t *testing.T, s screen) {
		s.show(t, []string{"X", "Y"}, []string{"X", "Y"})
		s.show(t, nil, nil)
		s.show(t, []string{"X", "Y"}, []string{"X", "Y"})
		s.show(t, []string{}, nil)
	}},
}

// normalize checks rows read from a display and returns exactly rows rows
// with trailing spaces removed.
func normalize(lines []string, cols, rows int) ([]string, error) {
	if len(lines) > rows {
		return nil, errors.New("more rows than the display has: " + strings.Join(lines, "|"))
	}
	out := make([]string, rows)
	for i, l := range lines {
		if utf8.RuneCountInString(l) > cols {
			return nil, errors.New("row wider than the display: " + l)
		}
		out[i] = strings.TrimRight(l, " ")
	}
	return out, nil
}

// KeypadConformance checks any hal.Keypad: press injects a key as a person
// would; every valid key ('0'–'9', 'A'–'D', '*', '#') pressed comes out of
// Next, in order, whether Next was waiting or not; Next honours ctx
// cancellation and deadlines promptly (it returns an error that is, or
// wraps, ctx.Err()); a cancelled Next loses no key pressed after it; no key
// comes out that was not pressed.
//
// k must have no pending keys when the check starts. press may block until
// the keypad has taken the key, but not until Next is called.
func KeypadConformance(t *testing.T, k hal.Keypad, press func(hal.Key)) {
	t.Helper()
	var all []hal.Key
	for _, c := range []byte("0123456789ABCD*#") {
		all = append(all, hal.Key(c))
	}

	t.Run("quiet", func(t *testing.T) {
		expectQuiet(t, k)
	})
	t.Run("each_key", func(t *testing.T) {
		for _, key := range all {
			press(key)
			expectKey(t, k, key)
		}
	})
	t.Run("waiting", func(t *testing.T) { keyWhileWaiting(t, k, press) })
	t.Run("in_order", func(t *testing.T) {
		for _, key := range all {
			press(key)
		}
		for _, key := range all {
			expectKey(t, k, key)
		}
	})
	t.Run("cancelled_before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		expectErr(t, k, ctx, context.Canceled, nil)
	})
	t.Run("cancelled_while_waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		expectErr(t, k, ctx, context.Canceled, cancel)
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		expectErr(t, k, ctx, context.DeadlineExceeded, nil)
	})
	t.Run("no_key_lost_after_cancel", func(t *testing.T) { noKeyLostAfterCancel(t, k, press) })
	t.Run("quiet_at_end", func(t *testing.T) {
		expectQuiet(t, k)
	})
}

// keyWhileWaiting checks keys pressed while Next is already waiting.
func keyWhileWaiting(t *testing.T, k hal.Keypad, press func(hal.Key)) {
	for _, key := range []hal.Key{hal.KeyOK, '5', hal.KeyCancel} {
		got := make(chan hal.Key, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), keyWait)
			defer cancel()
			key, err := k.Next(ctx)
			if err != nil {
				t.Errorf("Next: %v", err)
			}
			got <- key
		}()
		time.Sleep(10 * time.Millisecond)
		press(key)
		select {
		case g := <-got:
			if g != key {
				t.Fatalf("Next = %q; want %q", g, key)
			}
		case <-time.After(hangLimit):
			t.Fatalf("Next did not return key %q", key)
		}
	}
}

// noKeyLostAfterCancel checks that Next calls cancelled, before or while
// they wait, lose none of the keys pressed after them.
func noKeyLostAfterCancel(t *testing.T, k hal.Keypad, press func(hal.Key)) {
	for i := range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		if i%2 == 0 {
			cancel()
			expectErr(t, k, ctx, context.Canceled, nil)
		} else {
			expectErr(t, k, ctx, context.Canceled, cancel)
		}
	}
	keys := []hal.Key{'7', hal.KeyBack, 'A'}
	for _, key := range keys {
		press(key)
	}
	for _, key := range keys {
		expectKey(t, k, key)
	}
}

type nextResult struct {
	key hal.Key
	err error
}

// next calls k.Next(ctx) and fails if it does not return within limit.
func next(t *testing.T, k hal.Keypad, ctx context.Context, limit time.Duration) (hal.Key, error) {
	t.Helper()
	done := make(chan nextResult, 1)
	go func() {
		key, err := k.Next(ctx)
		done <- nextResult{key, err}
	}()
	select {
	case r := <-done:
		return r.key, r.err
	case <-time.After(limit):
		t.Fatalf("Next did not return within %v", limit)
		return 0, nil
	}
}

func expectKey(t *testing.T, k hal.Keypad, want hal.Key) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), keyWait)
	defer cancel()
	got, err := next(t, k, ctx, hangLimit)
	if err != nil {
		t.Fatalf("Next: %v; want key %q", err, want)
	}
	if got != want {
		t.Fatalf("Next = %q; want %q", got, want)
	}
}

func expectQuiet(t *testing.T, k hal.Keypad) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), quietWait)
	defer cancel()
	key, err := next(t, k, ctx, hangLimit)
	if err == nil {
		t.Fatalf("Next = %q; want no key", key)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next error = %v; want context.DeadlineExceeded", err)
	}
}

// expectErr calls Next with ctx, calls cancel (when not nil) once Next is
// waiting, and checks that Next returns want promptly.
func expectErr(t *testing.T, k hal.Keypad, ctx context.Context, want error, cancel context.CancelFunc) {
	t.Helper()
	done := make(chan nextResult, 1)
	go func() {
		key, err := k.Next(ctx)
		done <- nextResult{key, err}
	}()
	if cancel != nil {
		time.Sleep(20 * time.Millisecond)
		cancel()
	}
	start := time.Now()
	var r nextResult
	select {
	case r = <-done:
	case <-time.After(promptness + 50*time.Millisecond):
		t.Fatalf("Next did not return within %v of its ctx being done", promptness)
	}
	if r.err == nil {
		t.Fatalf("Next = %q; want error %v", r.key, want)
	}
	if !errors.Is(r.err, want) {
		t.Fatalf("Next error = %v; want %v", r.err, want)
	}
	if d := time.Since(start); d > promptness {
		t.Fatalf("Next took %v after its ctx was done", d)
	}
}
