package escpos

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/hal"
)

// step is one recorded exchange: the bytes the driver must write next and
// what the printer answered once it had them.
type step struct {
	expect []byte
	reply  []byte
}

// playback is a port that replays recorded printer traffic and fails the
// test on any unexpected byte. Its Read times out like tarm/serial's:
// (0, io.EOF) after a quiet spell.
type playback struct {
	t     *testing.T
	in    chan byte
	mu    sync.Mutex
	steps []step
	pos   int
	extra []byte
}

func newPlayback(t *testing.T, steps ...step) *playback {
	return &playback{t: t, in: make(chan byte, 1<<16), steps: steps}
}

func (p *playback) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range b {
		if len(p.steps) == 0 {
			p.extra = append(p.extra, c)
			continue
		}
		s := &p.steps[0]
		if want := s.expect[p.pos]; c != want {
			p.t.Errorf("playback: wrote %#02x, recorded %#02x at byte %d of % x", c, want, p.pos, s.expect)
		}
		p.pos++
		if p.pos == len(s.expect) {
			for _, r := range s.reply {
				p.in <- r
			}
			p.steps, p.pos = p.steps[1:], 0
		}
	}
	return len(b), nil
}

func (p *playback) Read(b []byte) (int, error) {
	t := time.NewTimer(20 * time.Millisecond)
	defer t.Stop()
	select {
	case c := <-p.in:
		b[0] = c
		n := 1
		for n < len(b) {
			select {
			case c := <-p.in:
				b[n] = c
				n++
			default:
				return n, nil
			}
		}
		return n, nil
	case <-t.C:
		return 0, io.EOF
	}
}

// check fails the test if the recording was not played to the end or the
// driver wrote more.
func (p *playback) check() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.steps) > 0 {
		p.t.Errorf("playback: %d exchanges not played, next % x", len(p.steps), p.steps[0].expect)
	}
	if len(p.extra) > 0 {
		p.t.Errorf("playback: unexpected bytes % x", p.extra)
	}
}

func eot(n, answer byte) step { return step{expect: []byte{0x10, 0x04, n}, reply: []byte{answer}} }

func newTestPrinter(t *testing.T, port io.ReadWriter, opt Options) *Printer {
	t.Helper()
	p, _ := ProfileByName("tm-t20")
	if opt.ChunkPause == 0 {
		opt.ChunkPause = -1
	}
	if opt.StatusTimeout == 0 {
		opt.StatusTimeout = 300 * time.Millisecond
	}
	pr := New(port, p, opt)
	t.Cleanup(func() {
		pr.Close()
		select {
		case <-pr.dead:
		default:
			t.Error("reader goroutine still running after Close")
		}
	})
	return pr
}

func TestPlaybackPrint(t *testing.T) {
	doc := &hal.Doc{Blocks: []hal.Block{{Kind: hal.Text, Text: "Città di Castello, 5 €"}}}
	p, _ := ProfileByName("tm-t20")
	job, err := Encode(doc, p)
	if err != nil {
		t.Fatal(err)
	}
	port := newPlayback(t,
		eot(1, 0x12), eot(2, 0x12), eot(4, 0x12), // before the job
		step{expect: job},
		eot(2, 0x12), eot(4, 0x1e), // between chunks: paper near end is no fault
		eot(1, 0x12), eot(2, 0x12), eot(4, 0x1e), // after the job
	)
	pr := newTestPrinter(t, port, Options{ChunkSize: 1 << 12})
	if err := pr.Print(context.Background(), doc); err != nil {
		t.Fatal(err)
	}
	port.check()
}

func TestPlaybackChunks(t *testing.T) {
	doc := &hal.Doc{Blocks: []hal.Block{{Kind: hal.Text, Text: "abc"}}}
	p, _ := ProfileByName("tm-t20")
	job, marks, _ := encode(doc, p)
	steps := []step{eot(1, 0x12), eot(2, 0x12), eot(4, 0x12)}
	n := 0
	for off, end := range chunks(marks, 8) {
		steps = append(steps, step{expect: job[off:end]}, eot(2, 0x12), eot(4, 0x12))
		n++
	}
	if n < 2 {
		t.Fatalf("%d chunks", n)
	}
	steps = append(steps, eot(1, 0x12), eot(2, 0x12), eot(4, 0x12))
	port := newPlayback(t, steps...)
	pr := newTestPrinter(t, port, Options{ChunkSize: 8})
	if err := pr.Print(context.Background(), doc); err != nil {
		t.Fatal(err)
	}
	port.check()
}

func TestPlaybackRefuses(t *testing.T) {
	doc := &hal.Doc{Blocks: []hal.Block{{Kind: hal.Text, Text: "x"}}}
	for _, tt := range []struct {
		name  string
		steps []step
		want  error
	}{
		{"cover open", []step{eot(1, 0x1a), eot(2, 0x16), eot(4, 0x12)}, hal.ErrCoverOpen},
		{"paper out", []step{eot(1, 0x1a), eot(2, 0x32), eot(4, 0x72)}, hal.ErrPaperOut},
		{"silent", []step{{expect: []byte{0x10, 0x04, 1}}}, hal.ErrNotResponding},
		{"garbage", []step{{expect: []byte{0x10, 0x04, 1}, reply: []byte{0x00, 0xff}}}, hal.ErrNotResponding},
	} {
		t.Run(tt.name, func(t *testing.T) {
			port := newPlayback(t, tt.steps...)
			pr := newTestPrinter(t, port, Options{})
			start := time.Now()
			err := pr.Print(context.Background(), doc)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Print = %v, want %v", err, tt.want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v", d)
			}
			port.check()
		})
	}
}

func TestPlaybackStatus(t *testing.T) {
	port := newPlayback(t, eot(1, 0x12), eot(2, 0x12), eot(3, 0x12), eot(4, 0x1e))
	pr := newTestPrinter(t, port, Options{})
	st, err := pr.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := (hal.PrinterStatus{Online: true, PaperNearEnd: true}); st != want {
		t.Errorf("Status = %+v, want %+v", st, want)
	}
	port.check()
}

func TestStatusHonoursContext(t *testing.T) {
	port := newPlayback(t, step{expect: []byte{0x10, 0x04, 1}}) // never answers
	pr := newTestPrinter(t, port, Options{StatusTimeout: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := pr.Status(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Status = %v, want deadline exceeded", err)
	}
}

func TestClosed(t *testing.T) {
	port := newPlayback(t)
	pr := newTestPrinter(t, port, Options{})
	pr.Close()
	if _, err := pr.Status(context.Background()); !errors.Is(err, hal.ErrClosed) {
		t.Fatalf("Status after Close = %v", err)
	}
	port.check()
}

func TestASBAndFlowControl(t *testing.T) {
	port := newPlayback(t)
	pr := newTestPrinter(t, port, Options{})
	for _, b := range []byte{0x13, 0x10, 0x00, 0x03, 0x00} {
		port.in <- b
	}
	deadline := time.Now().Add(time.Second)
	for {
		pr.mu.Lock()
		xoff := pr.xoff
		pr.mu.Unlock()
		st, ok := pr.LastASB()
		if xoff && ok && st.PaperNearEnd {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("xoff=%v asb=%+v %v", xoff, st, ok)
		}
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- pr.waitWritable(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("wrote during XOFF: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	port.in <- 0x11
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		t.Fatal("XON did not resume")
	}
	if !bytes.Equal(nil, port.extra) {
		t.Errorf("wrote % x", port.extra)
	}
}
