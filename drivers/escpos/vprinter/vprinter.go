package vprinter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/term"
)

// Condition is what the virtual printer reports to DLE EOT.
type Condition int

// Conditions.
const (
	OK Condition = iota
	PaperNearEnd
	PaperOut
	CoverOpen
	Offline
	CutterError
	Silent // never answers
)

var condNames = map[Condition]string{
	OK: "ok", PaperNearEnd: "near-end", PaperOut: "paper-out", CoverOpen: "cover-open",
	Offline: "offline", CutterError: "cutter-error", Silent: "silent",
}

func (c Condition) String() string {
	if s, ok := condNames[c]; ok {
		return s
	}
	return "unknown"
}

// ParseCondition returns the condition named s ("ok", "paper-out"…).
func ParseCondition(s string) (Condition, error) {
	for c, n := range condNames {
		if n == s {
			return c, nil
		}
	}
	return 0, fmt.Errorf("vprinter: unknown condition %q", s)
}

// Answer returns the byte a printer in condition c sends to DLE EOT n, and
// false when it sends nothing.
func (c Condition) Answer(n byte) (byte, bool) {
	if c == Silent || n < 1 || n > 4 {
		return 0, false
	}
	ans := [5]byte{0, 0x12, 0x12, 0x12, 0x12}
	switch c {
	case PaperNearEnd:
		ans[4] = 0x1e
	case PaperOut:
		ans[1], ans[2], ans[4] = 0x1a, 0x32, 0x72
	case CoverOpen:
		ans[1], ans[2] = 0x1a, 0x16
	case Offline:
		ans[1] = 0x1a
	case CutterError:
		ans[1], ans[2], ans[3] = 0x1a, 0x52, 0x1a
	}
	return ans[n], true
}

// asb returns the automatic status back frame for c.
func (c Condition) asb() [4]byte {
	f := [4]byte{0x10, 0, 0, 0}
	switch c {
	case PaperNearEnd:
		f[2] = 0x03
	case PaperOut:
		f[0] |= 0x08
		f[2] = 0x0c
	case CoverOpen:
		f[0] |= 0x28
	case Offline:
		f[0] |= 0x08
	case CutterError:
		f[0] |= 0x08
		f[1] = 0x08
	}
	return f
}

// Options configure the virtual printer's paper.
type Options struct {
	Cols int // columns of the text rendering (default 48)
	Dots int // printable dots (default 576)
	// IdleFlush ends a receipt that was not cut after the line has been
	// quiet this long (default 1 s).
	IdleFlush time.Duration
}

// VPrinter is a virtual printer on a pty. The driver opens TTY.
type VPrinter struct {
	dir  string
	opt  Options
	ptmx *os.File
	tty  *os.File

	mu       sync.Mutex
	dec      *Decoder
	cond     Condition
	after    int // bytes until next takes effect; -1 when none pending
	next     Condition
	asb      bool
	received int
	rt       []byte // last bytes, scanned for real-time commands
	n        int    // receipts numbered so far
	written  int    // receipts whose files are written
	queue    []*Receipt
	files    []string
	fileErr  error
	changed  chan struct{}

	done  chan struct{} // closed when the reader returns
	wake  chan struct{} // a receipt is queued
	quit  chan struct{} // closed by Close after the reader returned
	wdone chan struct{} // closed when the writer returns
}

// Start opens a pty and starts printing what arrives on it into dir
// (NNN.txt and NNN.png per receipt; "" keeps receipts in memory only).
func Start(dir string) (*VPrinter, error) { return StartWith(dir, Options{}) }

// StartWith is Start with options.
func StartWith(dir string, opt Options) (*VPrinter, error) {
	if opt.Cols <= 0 {
		opt.Cols = 48
	}
	if opt.Dots <= 0 {
		opt.Dots = 576
	}
	if opt.IdleFlush <= 0 {
		opt.IdleFlush = time.Second
	}
	last := 0
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("vprinter: %w", err)
		}
		var err error
		if last, err = lastNumber(dir); err != nil {
			return nil, fmt.Errorf("vprinter: %w", err)
		}
	}
	ptmx, tty, err := openPTY()
	if err != nil {
		return nil, fmt.Errorf("vprinter: pty: %w", err)
	}
	// Raw line discipline: no echo, no CR/LF mapping, no XON/XOFF
	// interpretation. The tty stays open so the pty outlives the driver.
	if _, err := term.MakeRaw(int(tty.Fd())); err != nil {
		ptmx.Close()
		tty.Close()
		return nil, fmt.Errorf("vprinter: raw mode: %w", err)
	}
	v := &VPrinter{
		dir: dir, opt: opt, ptmx: ptmx, tty: tty, n: last,
		after: -1, changed: make(chan struct{}), done: make(chan struct{}),
		wake: make(chan struct{}, 1), quit: make(chan struct{}), wdone: make(chan struct{}),
	}
	v.dec = NewDecoder()
	v.dec.OnCommand = v.command
	v.dec.OnReceipt = v.receipt
	go v.loop()
	go v.writer()
	return v, nil
}

// lastNumber is the highest receipt number NNN of the NNN.txt and NNN.png
// files in dir (0 when there are none): a printer started again on the same
// paper directory goes on numbering instead of writing over the receipts
// of earlier runs.
func lastNumber(dir string) (int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	last := 0
	for _, e := range ents {
		base, ext, _ := strings.Cut(e.Name(), ".")
		if ext != "txt" && ext != "png" || base == "" || strings.Trim(base, "0123456789") != "" || len(base) > 9 {
			continue
		}
		if n, err := strconv.Atoi(base); err == nil && n > last {
			last = n
		}
	}
	return last, nil
}

// TTY is the path the driver opens.
func (v *VPrinter) TTY() string { return v.tty.Name() }

// Close stops the printer and waits for its goroutines; the receipts
// already cut are written first.
func (v *VPrinter) Close() error {
	err := v.ptmx.Close()
	<-v.done
	close(v.quit)
	<-v.wdone
	v.tty.Close()
	return err
}

func (v *VPrinter) loop() {
	defer close(v.done)
	buf := make([]byte, 4096)
	for {
		// A printer without a cutter never says a receipt is over: end
		// it when the line has been idle for IdleFlush.
		_ = v.ptmx.SetReadDeadline(time.Now().Add(v.opt.IdleFlush))
		n, err := v.ptmx.Read(buf)
		if n > 0 {
			v.feed(buf[:n])
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			v.mu.Lock()
			v.dec.Flush()
			v.mu.Unlock()
		default:
			return // closed
		}
	}
}

// feed takes the bytes as the printer's receive buffer would: real-time
// commands (DLE EOT) are answered as they arrive, even inside a raster
// image, and the condition switch lands exactly after the requested count.
func (v *VPrinter) feed(p []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, c := range p {
		v.rt = append(v.rt, c)
		if len(v.rt) > 3 {
			v.rt = v.rt[1:]
		}
		if len(v.rt) == 3 && v.rt[0] == 0x10 && v.rt[1] == 0x04 {
			if b, ok := v.cond.Answer(v.rt[2]); ok {
				v.ptmx.Write([]byte{b})
			}
			v.rt = v.rt[:0]
		}
		v.dec.Write([]byte{c})
		v.received++
		if v.after > 0 {
			v.after--
			if v.after == 0 {
				v.setLocked(v.next)
				v.after = -1
			}
		}
	}
}

// command notes GS a (DLE EOT is answered in feed); called with v.mu
// held.
func (v *VPrinter) command(c Command) {
	if c.SetASB {
		was := v.asb
		v.asb = c.ASB != 0
		// As Epson's printers do, switching ASB on sends the first status.
		if v.asb && !was && v.cond != Silent {
			f := v.cond.asb()
			v.ptmx.Write(f[:])
		}
	}
}

// receipt queues a finished receipt for the file writer, so that
// rendering never delays a status answer; called with v.mu held.
func (v *VPrinter) receipt(r *Receipt) {
	v.queue = append(v.queue, r)
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// writer renders queued receipts to NNN.txt and NNN.png.
func (v *VPrinter) writer() {
	defer close(v.wdone)
	for {
		select {
		case <-v.wake:
		case <-v.quit:
			v.mu.Lock()
			left := len(v.queue)
			v.mu.Unlock()
			if left == 0 {
				return
			}
		}
		v.mu.Lock()
		q := v.queue
		v.queue = nil
		v.mu.Unlock()
		for _, r := range q {
			v.write(r)
		}
	}
}

func (v *VPrinter) write(r *Receipt) {
	v.mu.Lock()
	v.n++
	n := v.n
	v.mu.Unlock()
	var files []string
	var ferr error
	if v.dir != "" {
		base := filepath.Join(v.dir, fmt.Sprintf("%03d", n))
		ferr = writeFile(base+".txt", []byte(r.Text(v.opt.Cols)))
		if ferr == nil {
			var img []byte
			if img, ferr = r.PNG(v.opt.Cols, v.opt.Dots); ferr == nil {
				ferr = writeFile(base+".png", img)
			}
		}
		if ferr == nil {
			files = []string{base + ".txt", base + ".png"}
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.files = append(v.files, files...)
	if ferr != nil && v.fileErr == nil {
		v.fileErr = ferr
	}
	v.written++
	close(v.changed)
	v.changed = make(chan struct{})
}

// SetCondition changes what the printer reports, at once.
func (v *VPrinter) SetCondition(c Condition) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.after = -1
	v.setLocked(c)
}

// SetConditionAfter switches to c once n more bytes have arrived.
func (v *VPrinter) SetConditionAfter(n int, c Condition) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if n <= 0 {
		v.after = -1
		v.setLocked(c)
		return
	}
	v.after, v.next = n, c
}

func (v *VPrinter) setLocked(c Condition) {
	if c == v.cond {
		return
	}
	v.cond = c
	v.dec.Interrupted = c == PaperOut || c == CoverOpen || c == Offline || c == CutterError
	if v.asb && c != Silent {
		f := c.asb()
		v.ptmx.Write(f[:])
	}
}

// Condition returns the current condition.
func (v *VPrinter) Condition() Condition {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.cond
}

// SendXOFF tells the driver to stop sending.
func (v *VPrinter) SendXOFF() error { _, err := v.ptmx.Write([]byte{0x13}); return err }

// SendXON tells the driver to go on.
func (v *VPrinter) SendXON() error { _, err := v.ptmx.Write([]byte{0x11}); return err }

// Received returns the number of bytes received so far.
func (v *VPrinter) Received() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.received
}

// Receipts returns the receipts cut so far.
func (v *VPrinter) Receipts() []*Receipt {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]*Receipt(nil), v.dec.Receipts()...)
}

// Files returns the files written so far and the first write error.
func (v *VPrinter) Files() ([]string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.files...), v.fileErr
}

// WaitReceipts waits until n receipts have been cut and written, or ctx is
// done.
func (v *VPrinter) WaitReceipts(ctx context.Context, n int) ([]*Receipt, error) {
	for {
		v.mu.Lock()
		rs := append([]*Receipt(nil), v.dec.Receipts()...)
		written := v.written
		ch := v.changed
		v.mu.Unlock()
		if len(rs) >= n && written >= n {
			return rs, nil
		}
		select {
		case <-ctx.Done():
			return rs, fmt.Errorf("vprinter: %d of %d receipts: %w", len(rs), n, ctx.Err())
		case <-ch:
		}
	}
}

func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// openPTY opens a pty pair with a master that Close and deadlines can
// interrupt: creack/pty leaves it in blocking mode (it calls Fd), so the
// descriptor is duplicated in non-blocking mode for the runtime poller.
func openPTY() (ptmx, tty *os.File, err error) {
	m, tty, err := pty.Open()
	if err != nil {
		return nil, nil, err
	}
	defer m.Close()
	fd, err := syscall.Dup(int(m.Fd()))
	if err != nil {
		tty.Close()
		return nil, nil, err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		tty.Close()
		return nil, nil, err
	}
	return os.NewFile(uintptr(fd), m.Name()), tty, nil
}
