package escpos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/aslcns/totem/hal"
)

// Options tune a Printer; the zero value picks the defaults.
type Options struct {
	// StatusTimeout bounds the wait for one DLE EOT answer (default 1 s);
	// a printer that does not answer in time is hal.ErrNotResponding.
	StatusTimeout time.Duration
	// ChunkSize is the bytes written between status polls (default
	// Profile.ChunkSize).
	ChunkSize int
	// ChunkPause is the pause after each chunk (default: the chunk's wire
	// time at the profile's baud; negative: no pause).
	ChunkPause time.Duration
	// FlowTimeout bounds a wait for XON while the printer reports no fault
	// (default 30 s).
	FlowTimeout time.Duration
	// RecoverTimeout bounds the wait for the printer to come back online
	// after a job (default 10 s).
	RecoverTimeout time.Duration
	// Logger receives status changes (default: discarded).
	Logger *slog.Logger
	// OnStatus is told every change the printer reports by itself
	// (automatic status back, see EnableASB), from the reader goroutine:
	// it must not block.
	OnStatus func(hal.PrinterStatus)
}

// Printer is an ESC/POS printer on a serial line. It owns one reader
// goroutine, started by New and stopped by Close. The caller keeps
// ownership of the port and closes it after Close.
type Printer struct {
	rw   io.ReadWriter
	prof Profile
	opt  Options
	log  *slog.Logger

	sem     chan struct{} // one job or status query at a time on the wire
	answers chan byte     // DLE EOT answers from the reader

	mu      sync.Mutex
	xoff    bool
	xonCh   chan struct{} // closed on XON
	asb     Status
	asbSeen bool
	readErr error

	done      chan struct{} // closed by Close
	dead      chan struct{} // closed when the reader returns
	closeOnce sync.Once
}

var _ hal.Printer = (*Printer)(nil)

// New starts driving the printer on rw with profile p. rw's Read must
// return from time to time (a serial read timeout, reported as (0, io.EOF)
// by tarm/serial) or rw must have SetReadDeadline, so that Close can stop
// the reader.
func New(rw io.ReadWriter, p Profile, opt Options) *Printer {
	if opt.StatusTimeout <= 0 {
		opt.StatusTimeout = time.Second
	}
	if opt.ChunkSize <= 0 {
		opt.ChunkSize = p.ChunkSize()
	}
	if opt.ChunkPause == 0 {
		opt.ChunkPause = p.WireTime(opt.ChunkSize)
	}
	if opt.FlowTimeout <= 0 {
		opt.FlowTimeout = 30 * time.Second
	}
	if opt.RecoverTimeout <= 0 {
		opt.RecoverTimeout = 10 * time.Second
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pr := &Printer{
		rw: rw, prof: p, opt: opt, log: log,
		sem:     make(chan struct{}, 1),
		answers: make(chan byte, 16),
		xonCh:   make(chan struct{}),
		done:    make(chan struct{}),
		dead:    make(chan struct{}),
	}
	go pr.readLoop()
	return pr
}

// Profile returns the printer's profile.
func (pr *Printer) Profile() Profile { return pr.prof }

// Close stops the reader goroutine and waits for it. It does not close the
// port.
func (pr *Printer) Close() error {
	pr.closeOnce.Do(func() {
		close(pr.done)
		if d, ok := pr.rw.(interface{ SetReadDeadline(time.Time) error }); ok {
			_ = d.SetReadDeadline(time.Now())
		}
	})
	<-pr.dead
	return nil
}

func (pr *Printer) readLoop() {
	defer close(pr.dead)
	buf := make([]byte, 64)
	var d Demux
	for {
		select {
		case <-pr.done:
			return
		default:
		}
		start := time.Now()
		n, err := pr.rw.Read(buf)
		for _, b := range buf[:n] {
			if ev, ok := d.Feed(b); ok {
				pr.handle(ev)
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, os.ErrDeadlineExceeded):
			// A read timeout: nothing arrived. Do not spin on a port that
			// reports it at once.
			if n == 0 && time.Since(start) < 5*time.Millisecond {
				select {
				case <-pr.done:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		default:
			select {
			case <-pr.done:
			default:
				pr.mu.Lock()
				pr.readErr = err
				pr.mu.Unlock()
				pr.log.Error("printer read failed", "err", err)
			}
			return
		}
	}
}

func (pr *Printer) handle(ev Event) {
	switch ev.Kind {
	case EvStatus:
		select {
		case pr.answers <- ev.Byte:
		default: // nobody asked: drop
		}
	case EvXOFF:
		pr.mu.Lock()
		pr.xoff = true
		pr.mu.Unlock()
	case EvXON:
		pr.mu.Lock()
		if pr.xoff {
			pr.xoff = false
			close(pr.xonCh)
			pr.xonCh = make(chan struct{})
		}
		pr.mu.Unlock()
	case EvASB:
		st, err := DecodeASB(ev.Frame)
		if err != nil {
			return
		}
		pr.mu.Lock()
		changed := !pr.asbSeen || st != pr.asb
		pr.asb, pr.asbSeen = st, true
		pr.mu.Unlock()
		if changed {
			pr.log.Info("printer status", "source", "asb", "status", st.String())
			if pr.opt.OnStatus != nil {
				pr.opt.OnStatus(st.HAL())
			}
		}
	}
}

// EnableASB asks the printer to report its status by itself on every
// change (GS a: online/offline, errors, paper sensors), so a cover opened
// or paper running out while nobody prints reaches OnStatus at once. Use
// it on profiles with ASB; the frames are told apart from DLE EOT answers
// and XON/XOFF by the reader goroutine.
func (pr *Printer) EnableASB(ctx context.Context) error {
	if err := pr.acquire(ctx); err != nil {
		return err
	}
	defer pr.release()
	return pr.write([]byte{0x1d, 0x61, 0x0f})
}

// LastASB returns the last automatic status back the printer sent, if any.
func (pr *Printer) LastASB() (Status, bool) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.asb, pr.asbSeen
}

func (pr *Printer) acquire(ctx context.Context) error {
	select {
	case <-pr.done:
		return hal.ErrClosed
	default:
	}
	select {
	case pr.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-pr.done:
		return hal.ErrClosed
	}
}

func (pr *Printer) release() { <-pr.sem }

// query sends DLE EOT n for each n and decodes the answers; when the
// printer reports an error (DLE EOT 2 bit 6) it asks DLE EOT 3 for the
// cause. The caller holds the semaphore.
func (pr *Printer) query(ctx context.Context, ns ...byte) (Status, error) {
	st, err := pr.ask(ctx, ns...)
	if err != nil || !st.Error || slices.Contains(ns, 3) {
		return st, err
	}
	cause, err := pr.ask(ctx, 3)
	st.CutterError, st.Unrecoverable, st.AutoRecoverable = cause.CutterError, cause.Unrecoverable, cause.AutoRecoverable
	return st, err
}

func (pr *Printer) ask(ctx context.Context, ns ...byte) (Status, error) {
	var st Status
	for _, n := range ns {
		pr.mu.Lock()
		rerr := pr.readErr
		pr.mu.Unlock()
		if rerr != nil {
			return st, fmt.Errorf("escpos: read: %w: %w", hal.ErrNotResponding, rerr)
		}
		for len(pr.answers) > 0 { // drop late answers to earlier queries
			<-pr.answers
		}
		if err := pr.write([]byte{dle, 0x04, n}); err != nil {
			return st, err
		}
		t := time.NewTimer(pr.opt.StatusTimeout)
		select {
		case b := <-pr.answers:
			t.Stop()
			if err := st.Apply(n, b); err != nil {
				return st, err
			}
		case <-t.C:
			return st, fmt.Errorf("escpos: status %d: no answer in %v: %w", n, pr.opt.StatusTimeout, hal.ErrNotResponding)
		case <-ctx.Done():
			t.Stop()
			return st, ctx.Err()
		case <-pr.done:
			t.Stop()
			return st, hal.ErrClosed
		case <-pr.dead:
			t.Stop()
			return st, fmt.Errorf("escpos: status %d: reader stopped: %w", n, hal.ErrNotResponding)
		}
	}
	return st, nil
}

func (pr *Printer) write(b []byte) error {
	for len(b) > 0 {
		n, err := pr.rw.Write(b)
		if err != nil {
			return fmt.Errorf("escpos: write: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("escpos: write: %w", io.ErrShortWrite)
		}
		b = b[n:]
	}
	return nil
}

// Query returns the full decoded status (DLE EOT 1–4).
func (pr *Printer) Query(ctx context.Context) (Status, error) {
	if err := pr.acquire(ctx); err != nil {
		return Status{}, err
	}
	defer pr.release()
	return pr.query(ctx, 1, 2, 3, 4)
}

// Status reports the printer's condition. A printer that does not answer
// gives hal.ErrNotResponding.
func (pr *Printer) Status(ctx context.Context) (hal.PrinterStatus, error) {
	st, err := pr.Query(ctx)
	if err != nil {
		return hal.PrinterStatus{}, err
	}
	return st.HAL(), nil
}

// Print encodes doc for the profile and sends it in paced chunks, checking
// the status before the job, between chunks and after it. It returns the
// hal sentinel (wrapped) that stopped the job: ErrPaperOut, ErrCoverOpen,
// ErrPrinterFault or ErrNotResponding; the job may then have been printed
// in part and should be printed again, whole, once the printer is ready.
func (pr *Printer) Print(ctx context.Context, doc *hal.Doc) error {
	data, marks, err := encode(doc, pr.prof)
	if err != nil {
		return err
	}
	if err := pr.acquire(ctx); err != nil {
		return err
	}
	defer pr.release()

	st, err := pr.query(ctx, 1, 2, 4)
	if err != nil {
		return fmt.Errorf("escpos: print: %w", err)
	}
	if err := st.Err(); err != nil {
		return fmt.Errorf("escpos: print: refused (%s): %w", st, err)
	}
	nearEnd := st.PaperNearEnd
	for off, end := range chunks(marks, pr.opt.ChunkSize) {
		if err := pr.waitWritable(ctx); err != nil {
			return fmt.Errorf("escpos: print: %w", err)
		}
		if err := pr.write(data[off:end]); err != nil {
			return err
		}
		if pr.opt.ChunkPause > 0 {
			if err := sleep(ctx, pr.opt.ChunkPause); err != nil {
				return fmt.Errorf("escpos: print: %w", err)
			}
		}
		st, err := pr.query(ctx, 2, 4)
		if err != nil {
			return fmt.Errorf("escpos: print: after %d of %d bytes: %w", end, len(data), err)
		}
		if err := st.Err(); err != nil {
			return fmt.Errorf("escpos: print: stopped after %d of %d bytes (%s): %w", end, len(data), st, err)
		}
		if st.PaperNearEnd && !nearEnd {
			nearEnd = true
			pr.log.Warn("printer paper near end")
		}
	}
	return pr.waitOnline(ctx)
}

// chunks yields the [off, end) ranges of the job to write between polls:
// at least size bytes each (unless the job ends), cut only at the ends of
// commands.
func chunks(marks []int, size int) iter.Seq2[int, int] {
	return func(yield func(int, int) bool) {
		off := 0
		for i, m := range marks {
			if m-off < size && i < len(marks)-1 {
				continue
			}
			if m > off && !yield(off, m) {
				return
			}
			off = m
		}
	}
}

// waitOnline polls until the printer is online again after a job (a
// printer goes offline while it feeds and cuts).
func (pr *Printer) waitOnline(ctx context.Context) error {
	deadline := time.Now().Add(pr.opt.RecoverTimeout)
	for {
		st, err := pr.query(ctx, 1, 2, 4)
		if err != nil {
			return fmt.Errorf("escpos: print: after the job: %w", err)
		}
		if err := st.Err(); err == nil {
			return nil
		} else if !errors.Is(err, hal.ErrNotResponding) || time.Now().After(deadline) {
			return fmt.Errorf("escpos: print: after the job (%s): %w", st, err)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("escpos: print: %w", err)
		}
	}
}

// waitWritable waits while the printer has sent XOFF, checking its status
// every half second.
func (pr *Printer) waitWritable(ctx context.Context) error {
	deadline := time.Now().Add(pr.opt.FlowTimeout)
	for {
		pr.mu.Lock()
		xoff, ch := pr.xoff, pr.xonCh
		pr.mu.Unlock()
		if !xoff {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("escpos: XOFF for %v: %w", pr.opt.FlowTimeout, hal.ErrNotResponding)
		}
		t := time.NewTimer(500 * time.Millisecond)
		select {
		case <-ch:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-pr.done:
			t.Stop()
			return hal.ErrClosed
		case <-t.C:
			st, err := pr.query(ctx, 2, 4)
			if err != nil {
				return err
			}
			if err := st.Err(); err != nil {
				return fmt.Errorf("XOFF (%s): %w", st, err)
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// String lists the conditions that are set, in English.
func (s Status) String() string {
	var out []byte
	add := func(set bool, name string) {
		if set {
			if len(out) > 0 {
				out = append(out, ',')
			}
			out = append(out, name...)
		}
	}
	add(s.Offline, "offline")
	add(s.CoverOpen, "cover_open")
	add(s.FeedButton, "feed_button")
	add(s.PaperStop, "paper_stop")
	add(s.Error, "error")
	add(s.CutterError, "cutter_error")
	add(s.Unrecoverable, "unrecoverable")
	add(s.AutoRecoverable, "auto_recoverable")
	add(s.PaperNearEnd, "paper_near_end")
	add(s.PaperOut, "paper_out")
	if len(out) == 0 {
		return "ok"
	}
	return string(out)
}
