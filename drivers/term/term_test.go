package term

import (
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/haltest"
)

// screen returns the rows inside the box of the last panel drawn on out.
func screen(out string) []string {
	if i := strings.LastIndex(out, "\x1b[2J"); i >= 0 {
		out = out[i:]
	}
	var rows []string
	for _, l := range strings.Split(out, "\r\n") {
		if strings.HasPrefix(l, "│") && strings.HasSuffix(l, "│") && utf8.RuneCountInString(l) >= 2 {
			rows = append(rows, strings.TrimSuffix(strings.TrimPrefix(l, "│"), "│"))
		}
	}
	return rows
}

type running struct {
	p    *Panel
	in   *io.PipeWriter
	out  *haltest.Buffer
	stop context.CancelFunc
	err  chan error
}

// start runs a panel on a pipe. The cleanup stops it, closes the pipe and
// checks that no goroutine of the panel is left.
func start(t *testing.T, opts Options) *running {
	t.Helper()
	pr, pw := io.Pipe()
	out := new(haltest.Buffer)
	p := New(pr, out, opts)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{p: p, in: pw, out: out, stop: cancel, err: make(chan error, 1)}
	go func() { r.err <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		pw.Close()
		select {
		case <-r.err:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return")
		}
		noLeak(t)
	})
	return r
}

// wait waits for Run to return and returns its error.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.err:
		r.err <- err // for the cleanup
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

// noLeak fails if a goroutine running panel code outlives the test.
func noLeak(t *testing.T) {
	t.Helper()
	var stacks string
	for range 200 {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "term.(*Panel)") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("leaked goroutines:\n%s", stacks)
}

func TestKeyMapping(t *testing.T) {
	for _, c := range []struct {
		name  string
		in    []string // one Write each
		keys  string
		cards []bool
		quits int
	}{
		{name: "digits", in: []string{"0123456789"}, keys: "0123456789"},
		{name: "letters", in: []string{"abcdABCD"}, keys: "ABCDABCD"},
		{name: "star_hash", in: []string{"*#"}, keys: "*#"},
		{name: "enter_cr", in: []string{"\r"}, keys: "#"},
		{name: "enter_lf", in: []string{"\n"}, keys: "#"},
		{name: "enter_crlf", in: []string{"\r\n"}, keys: "#"},
		{name: "enter_twice", in: []string{"\r", "\r"}, keys: "##"},
		{name: "backspace", in: []string{"\x7f", "\x08"}, keys: "**"},
		{name: "esc_alone", in: []string{"\x1b"}, keys: "D"},
		{name: "esc_twice", in: []string{"\x1b", "\x1b\x1b"}, keys: "DDD"},
		{name: "esc_then_key", in: []string{"\x1b5"}, keys: "D5"},
		{name: "arrows", in: []string{"\x1b[A", "\x1b[B\x1b[C\x1b[D"}},
		{name: "function_keys", in: []string{"\x1b[15~", "\x1bOP", "\x1b[1;5D"}},
		{name: "csi_split", in: []string{"\x1b[", "1;5", "A"}},
		{name: "mixed", in: []string{"1\x1b[A2\x1b[D#"}, keys: "12#"},
		{name: "unmapped", in: []string{"xyz eEfF!\t€à"}},
		{name: "card", in: []string{"i", "r", "ir"}, cards: []bool{true, false, true, false}},
		{name: "quit", in: []string{"q", "\x03"}, quits: 2},
		{name: "all", in: []string{"7i\r\x1b[Br\x7fq"}, keys: "7#*", cards: []bool{true, false}, quits: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			var cards []bool
			quits := 0
			r := start(t, Options{
				OnCard: func(in bool) { cards = append(cards, in) },
				OnQuit: func() { quits++ },
			})
			for _, s := range c.in {
				if _, err := io.WriteString(r.in, s); err != nil {
					t.Fatal(err)
				}
			}
			r.in.Close()
			if err := r.wait(t); err != nil {
				t.Fatalf("Run: %v", err)
			}
			// Run has returned: the callbacks are done and Next drains the keys.
			var keys []byte
			for {
				k, err := r.p.Next(context.Background())
				if errors.Is(err, hal.ErrClosed) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				keys = append(keys, byte(k))
			}
			if string(keys) != c.keys {
				t.Errorf("keys %q; want %q", keys, c.keys)
			}
			if !slices.Equal(cards, c.cards) {
				t.Errorf("cards %v; want %v", cards, c.cards)
			}
			if quits != c.quits {
				t.Errorf("quits %d; want %d", quits, c.quits)
			}
		})
	}
}

func TestNilCallbacks(t *testing.T) {
	r := start(t, Options{})
	io.WriteString(r.in, "irq\x03")
	r.in.Close()
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
}

func TestShowBox(t *testing.T) {
	for _, size := range [][2]int{{20, 4}, {16, 2}} {
		cols, rows := size[0], size[1]
		out := new(haltest.Buffer)
		p := New(strings.NewReader(""), out, Options{
			Cols: cols, Rows: rows,
			Title: "Totem demo-01",
			Help:  "0-9 A-D * #  Invio=#",
		})
		if c, r := p.Size(); c != cols || r != rows {
			t.Fatalf("Size() = %d, %d", c, r)
		}
		lines := []string{"Perché è già l'una?", "àèéìòù€ àèéìòù€ àèéìòù€", "a\tb\nc", "x"}
		if err := p.Show(lines); err != nil {
			t.Fatal(err)
		}
		p.Status("Carta inserita · in linea")
		got := out.String()
		last := got[strings.LastIndex(got, "\x1b[H\x1b[2J")+len("\x1b[H\x1b[2J"):]
		if strings.Contains(strings.ReplaceAll(last, "\r\n", ""), "\n") {
			t.Errorf("bare LF in output: %q", last)
		}
		rule := strings.Repeat("─", cols)
		want := []string{"Totem demo-01", "┌" + rule + "┐"}
		for i := range rows {
			want = append(want, "│"+pad(clean(lines[i]), cols)+"│")
		}
		want = append(want, "└"+rule+"┘", "Carta inserita · in linea", "0-9 A-D * #  Invio=#", "")
		if gotLines := strings.Split(last, "\r\n"); !slices.Equal(gotLines, want) {
			t.Errorf("panel %dx%d:\n%s\nwant:\n%s", cols, rows, strings.Join(gotLines, "\n"), strings.Join(want, "\n"))
		}
		for i, l := range screen(got) {
			if n := utf8.RuneCountInString(l); n != cols {
				t.Errorf("row %d %q is %d runes; want %d", i, l, n, cols)
			}
		}
		if !slices.Equal(p.Lines(), screen(got)) {
			t.Errorf("Lines() = %q; drawn %q", p.Lines(), screen(got))
		}
		if rows == 4 && p.Lines()[1] != "àèéìòù€ àèéìòù€ àèéì" {
			t.Errorf("accented row cut to %q", p.Lines()[1])
		}
	}
}

func TestDisplayConformance(t *testing.T) {
	r := start(t, Options{Title: "Totem", Help: "aiuto"})
	t.Run("Lines", func(t *testing.T) {
		haltest.DisplayConformance(t, r.p, r.p.Lines)
	})
	t.Run("drawn", func(t *testing.T) {
		haltest.DisplayConformance(t, r.p, func() []string { return screen(r.out.String()) })
	})
	p := New(strings.NewReader(""), io.Discard, Options{Cols: 16, Rows: 2})
	t.Run("16x2", func(t *testing.T) {
		haltest.DisplayConformance(t, p, p.Lines)
	})
}

func TestKeypadConformance(t *testing.T) {
	r := start(t, Options{})
	haltest.KeypadConformance(t, r.p, func(k hal.Key) {
		if _, err := r.in.Write([]byte{byte(k)}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRunStopsOnCancel(t *testing.T) {
	r := start(t, Options{})
	io.WriteString(r.in, "5")
	if k, err := r.p.Next(context.Background()); k != '5' || err != nil {
		t.Fatalf("Next = %q, %v", k, err)
	}
	r.stop()
	if err := r.wait(t); err != nil {
		t.Fatalf("Run = %v; want nil when ctx is done", err)
	}
	if _, err := r.p.Next(context.Background()); !errors.Is(err, hal.ErrClosed) {
		t.Fatalf("Next after Run = %v; want hal.ErrClosed", err)
	}
	if err := r.p.Run(context.Background()); err == nil {
		t.Fatal("second Run did not fail")
	}
	// The cleanup closes the pipe and checks that the reader has ended.
}

// TestRunStopsReadWithDeadline checks that Run interrupts a blocked read on
// an input with read deadlines and leaves no goroutine behind, even if the
// input stays open.
func TestRunStopsReadWithDeadline(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	p := New(pr, io.Discard, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	pw.Write([]byte("#"))
	if k, err := p.Next(context.Background()); k != '#' || err != nil {
		t.Fatalf("Next = %q, %v", k, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	noLeak(t)
	// The input is usable again by its owner.
	pw.Write([]byte("x"))
	buf := make([]byte, 1)
	if _, err := pr.Read(buf); err != nil || buf[0] != 'x' {
		t.Fatalf("read after Run: %q, %v", buf, err)
	}
}

func TestRunEnds(t *testing.T) {
	t.Run("eof", func(t *testing.T) {
		r := start(t, Options{})
		r.in.Close()
		if err := r.wait(t); err != nil {
			t.Fatalf("Run = %v; want nil at EOF", err)
		}
	})
	t.Run("read_error", func(t *testing.T) {
		r := start(t, Options{})
		bad := errors.New("usb unplugged")
		r.in.CloseWithError(bad)
		if err := r.wait(t); !errors.Is(err, bad) {
			t.Fatalf("Run = %v; want %v", err, bad)
		}
	})
}

func TestKeysKeptAndDropped(t *testing.T) {
	r := start(t, Options{})
	io.WriteString(r.in, strings.Repeat("1", KeyBuffer)+"2222")
	r.in.Close()
	r.wait(t)
	if n := r.p.Dropped(); n != 4 {
		t.Errorf("Dropped() = %d; want 4", n)
	}
	for i := range KeyBuffer {
		if k, err := r.p.Next(context.Background()); k != '1' || err != nil {
			t.Fatalf("key %d: Next = %q, %v", i, k, err)
		}
	}
}

func TestBeep(t *testing.T) {
	out := new(haltest.Buffer)
	p := New(strings.NewReader(""), out, Options{})
	if err := p.Beep(); err != nil || out.String() != "\a" {
		t.Fatalf("Beep wrote %q, %v", out.String(), err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken") }

func TestShowWriteError(t *testing.T) {
	p := New(strings.NewReader(""), failWriter{}, Options{})
	if err := p.Show([]string{"x"}); err == nil || !strings.HasPrefix(err.Error(), "term: write: ") {
		t.Fatalf("Show = %v", err)
	}
}

func TestRawNotATerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "notatty")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if restore, err := Raw(f); err == nil {
		restore()
		t.Fatal("Raw on a file did not fail")
	}
}
