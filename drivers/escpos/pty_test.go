package escpos_test

import (
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/drivers/escpos"
	"github.com/aslcns/totem/drivers/escpos/vprinter"
	"github.com/aslcns/totem/hal"
)

// rig is the driver on a real serial stack (tarm/serial on a pty) talking
// to the virtual printer.
type rig struct {
	v    *vprinter.VPrinter
	port io.ReadWriteCloser
	pr   *escpos.Printer
	dir  string
}

func newRig(t *testing.T, p escpos.Profile, opt escpos.Options) *rig {
	t.Helper()
	dir := t.TempDir()
	if keep := os.Getenv("VPRINTER_KEEP"); keep != "" {
		dir = keep + "/" + p.Name
	}
	v, err := vprinter.StartWith(dir, vprinter.Options{Cols: p.Cols, Dots: p.Dots, IdleFlush: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	port, err := escpos.OpenSerial(v.TTY(), p.Baud)
	if err != nil {
		v.Close()
		t.Fatal(err)
	}
	if opt.StatusTimeout == 0 {
		opt.StatusTimeout = time.Second // generous: CI machines are busy
	}
	if opt.ChunkPause == 0 {
		opt.ChunkPause = time.Millisecond // a pty has no baud: keep tests fast
	}
	r := &rig{v: v, port: port, pr: escpos.New(port, p, opt), dir: dir}
	t.Cleanup(func() {
		r.pr.Close()
		r.port.Close()
		r.v.Close()
		checkNoGoroutines(t)
	})
	return r
}

// checkNoGoroutines fails if a reader or printer goroutine outlived Close.
func checkNoGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		leak := ""
		for _, fn := range []string{"escpos.(*Printer).readLoop", "vprinter.(*VPrinter).loop", "vprinter.(*VPrinter).writer"} {
			if strings.Contains(stacks, fn) {
				leak = fn
			}
		}
		if leak == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutine %s still running after Close", leak)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// expectText is what the virtual printer should decode for doc: the
// layout of hal/sim.Render, with the raster QR of printers without native
// QR left out.
func expectText(doc *hal.Doc, p escpos.Profile) []string {
	var out []string
	pad := func(s string, a hal.Align, width int) string {
		n := len([]rune(s))
		switch {
		case n >= width:
		case a == hal.Center:
			s = strings.Repeat(" ", (width-n)/2) + s
		case a == hal.Right:
			s = strings.Repeat(" ", width-n) + s
		}
		return s
	}
	for _, bl := range doc.Blocks {
		switch bl.Kind {
		case hal.Rule:
			out = append(out, strings.Repeat("-", p.Cols))
		case hal.Feed:
			out = append(out, "")
		case hal.QR:
			if p.NativeQR {
				out = append(out, pad("[QR "+bl.Text+"]", hal.Center, p.Cols))
			}
		case hal.Barcode:
			out = append(out, pad("[|||| "+bl.Text+" ||||]", hal.Center, p.Cols))
		default:
			w := p.Cols
			if bl.Large {
				w /= 2
			}
			for _, l := range hal.Wrap(bl.Text, w) {
				out = append(out, pad(l, bl.Align, w))
			}
		}
	}
	if !p.Cutter {
		out = append(out, "", "", "", "") // ESC d 4
	}
	return out
}

func receiptLines(r *vprinter.Receipt, p escpos.Profile) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(r.Text(p.Cols), "\n"), "\n") {
		if !p.NativeQR && strings.Contains(l, "[IMAGE ") {
			continue
		}
		out = append(out, l)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	for _, p := range escpos.Profiles() {
		t.Run(p.Name, func(t *testing.T) {
			r := newRig(t, p, escpos.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			docs := []*hal.Doc{escpos.TestDoc(p), receiptDoc()}
			for _, doc := range docs {
				if err := r.pr.Print(ctx, doc); err != nil {
					t.Fatal(err)
				}
			}
			rs, err := r.v.WaitReceipts(ctx, len(docs))
			if err != nil {
				t.Fatal(err)
			}
			for i, doc := range docs {
				got, want := receiptLines(rs[i], p), expectText(doc, p)
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("receipt %d:\ngot:\n%s\nwant:\n%s", i, strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
				if rs[i].Cut != p.Cutter || rs[i].Interrupted {
					t.Errorf("receipt %d: cut %v interrupted %v", i, rs[i].Cut, rs[i].Interrupted)
				}
			}
			text := rs[0].Text(p.Cols)
			for _, s := range []string{"à è é ì ò ù", "À È É Ì Ò Ù", "Importo: 12,50 €", "[|||| TEST-0001 ||||]"} {
				if !strings.Contains(text, s) {
					t.Errorf("test receipt lacks %q:\n%s", s, text)
				}
			}
			if p.NativeQR && !strings.Contains(text, "[QR https://www.asl.example.it/p/TEST-0001]") {
				t.Errorf("no QR in\n%s", text)
			}
			files, err := r.v.Files()
			if err != nil || len(files) != 2*len(docs) {
				t.Errorf("files %v, %v", files, err)
			}
		})
	}
}

func receiptDoc() *hal.Doc {
	return &hal.Doc{Title: "riepilogo", Blocks: []hal.Block{
		{Kind: hal.Text, Text: "ASL Roma 1", Align: hal.Center, Bold: true, Large: true},
		{Kind: hal.Rule},
		{Kind: hal.Text, Text: "Protocollo: 2026/000123", Bold: true},
		{Kind: hal.Text, Text: "Ticket: 36,15 € - è possibile pagare allo sportello. Però ricordi: È obbligatorio il documento."},
		{Kind: hal.QR, Text: "https://asl.example.it/r/2026000123"},
		{Kind: hal.Barcode, Text: "2026000123"},
		{Kind: hal.Text, Text: "Grazie", Align: hal.Right},
	}}
}

func TestRefusesToStart(t *testing.T) {
	p, _ := escpos.ProfileByName("tm-t20")
	for _, tt := range []struct {
		cond  vprinter.Condition
		want  error
		polls int
	}{
		{vprinter.PaperOut, hal.ErrPaperOut, 3},
		{vprinter.CoverOpen, hal.ErrCoverOpen, 3},
		{vprinter.Offline, hal.ErrNotResponding, 3},
		{vprinter.CutterError, hal.ErrPrinterFault, 4}, // error bit: DLE EOT 3 asks why
	} {
		t.Run(tt.cond.String(), func(t *testing.T) {
			r := newRig(t, p, escpos.Options{})
			r.v.SetCondition(tt.cond)
			err := r.pr.Print(context.Background(), escpos.TestDoc(p))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Print = %v, want %v", err, tt.want)
			}
			if n := r.v.Received(); n != 3*tt.polls { // DLE EOT 1, 2, 4 and nothing else
				t.Errorf("printer received %d bytes, want %d", n, 3*tt.polls)
			}
			st, err := r.pr.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.Err() == nil {
				t.Errorf("Status %+v reports no fault", st)
			}
		})
	}
}

func TestPaperOutMidJobThenRetry(t *testing.T) {
	p, _ := escpos.ProfileByName("tm-t20")
	r := newRig(t, p, escpos.Options{ChunkSize: 64})
	doc := receiptDoc()
	r.v.SetConditionAfter(200, vprinter.PaperOut)
	err := r.pr.Print(context.Background(), doc)
	if !errors.Is(err, hal.ErrPaperOut) {
		t.Fatalf("Print = %v, want paper out", err)
	}
	job, _ := escpos.Encode(doc, p)
	if n := r.v.Received(); n >= len(job) {
		t.Errorf("the whole job (%d bytes) was sent: %d", len(job), n)
	}
	// Paper loaded: the firmware prints the job again.
	r.v.SetCondition(vprinter.OK)
	if err := r.pr.Print(context.Background(), doc); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rs, err := r.v.WaitReceipts(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !rs[0].Interrupted || rs[0].Cut {
		t.Errorf("first receipt: interrupted %v cut %v", rs[0].Interrupted, rs[0].Cut)
	}
	last := rs[len(rs)-1]
	if last.Interrupted || !last.Cut {
		t.Errorf("reprint: interrupted %v cut %v", last.Interrupted, last.Cut)
	}
	if got, want := strings.Join(receiptLines(last, p), "\n"), strings.Join(expectText(doc, p), "\n"); got != want {
		t.Errorf("reprint:\n%s\nwant:\n%s", got, want)
	}
}

func TestSilentPrinter(t *testing.T) {
	p, _ := escpos.ProfileByName("clone80")
	r := newRig(t, p, escpos.Options{StatusTimeout: 300 * time.Millisecond})
	r.v.SetCondition(vprinter.Silent)
	start := time.Now()
	err := r.pr.Print(context.Background(), escpos.TestDoc(p))
	if !errors.Is(err, hal.ErrNotResponding) {
		t.Fatalf("Print = %v, want not responding", err)
	}
	if _, err := r.pr.Status(context.Background()); !errors.Is(err, hal.ErrNotResponding) {
		t.Fatalf("Status = %v, want not responding", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestSilentMidJob(t *testing.T) {
	p, _ := escpos.ProfileByName("tm-t88")
	r := newRig(t, p, escpos.Options{ChunkSize: 64})
	r.v.SetConditionAfter(100, vprinter.Silent)
	if err := r.pr.Print(context.Background(), receiptDoc()); !errors.Is(err, hal.ErrNotResponding) {
		t.Fatalf("Print = %v, want not responding", err)
	}
}

func TestXOFF(t *testing.T) {
	p, _ := escpos.ProfileByName("tm-t20")
	r := newRig(t, p, escpos.Options{ChunkSize: 64})
	if err := r.v.SendXOFF(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond) // the reader sees XOFF
	done := make(chan error, 1)
	go func() { done <- r.pr.Print(context.Background(), receiptDoc()) }()
	time.Sleep(300 * time.Millisecond)
	if n := r.v.Received(); n != 9 {
		t.Errorf("printer received %d bytes during XOFF, want only the 9 of the status polls", n)
	}
	if err := r.v.SendXON(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no progress after XON")
	}
}

func TestCancel(t *testing.T) {
	p, _ := escpos.ProfileByName("tm-t20")
	r := newRig(t, p, escpos.Options{StatusTimeout: time.Minute})
	r.v.SetCondition(vprinter.Silent)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := r.pr.Print(ctx, escpos.TestDoc(p)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Print = %v, want deadline exceeded", err)
	}
}

// With automatic status back on, a cover opened while nobody prints
// reaches OnStatus at once, and so does its closing, with no polling.
func TestASBReportsIdleChanges(t *testing.T) {
	p, _ := escpos.ProfileByName("tm-t20")
	if !p.ASB {
		t.Fatal("tm-t20 supports automatic status back")
	}
	got := make(chan hal.PrinterStatus, 8)
	r := newRig(t, p, escpos.Options{OnStatus: func(s hal.PrinterStatus) { got <- s }})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.pr.EnableASB(ctx); err != nil {
		t.Fatal(err)
	}
	next := func() hal.PrinterStatus {
		t.Helper()
		select {
		case s := <-got:
			return s
		case <-ctx.Done():
			t.Fatal("no automatic status")
		}
		return hal.PrinterStatus{}
	}
	first := next() // the printer reports at once when ASB is switched on
	if !first.Online || first.CoverOpen {
		t.Fatalf("first status %+v", first)
	}
	r.v.SetCondition(vprinter.CoverOpen)
	if s := next(); !s.CoverOpen {
		t.Fatalf("after the cover opened: %+v", s)
	}
	r.v.SetCondition(vprinter.OK)
	if s := next(); s.CoverOpen || s.Err() != nil {
		t.Fatalf("after the cover closed: %+v", s)
	}
}
