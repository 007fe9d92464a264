package sim

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/haltest"
)

func TestPanelConformance(t *testing.T) {
	p := NewPanel(20, 4)
	haltest.DisplayConformance(t, p, p.Lines)
	haltest.KeypadConformance(t, p, func(k hal.Key) { p.Press(k) })
}

func TestPanelWaitFor(t *testing.T) {
	p := NewPanel(20, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	go func() {
		time.Sleep(10 * time.Millisecond)
		p.Show([]string{"Benvenuto/a"})
	}()
	if _, err := p.WaitFor(ctx, "Benvenuto"); err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel2()
	if _, err := p.WaitFor(short, "never"); err == nil || !strings.Contains(err.Error(), "Benvenuto") {
		t.Fatalf("WaitFor timeout error %v does not show the screen", err)
	}
}

func TestReaderEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r := NewReader("sim")
	r.Insert(DemoCard())
	// A card present before the first Next is reported as inserted.
	if ev, err := r.Next(ctx); err != nil || ev.Kind != hal.CardInserted {
		t.Fatalf("first Next = %+v, %v", ev, err)
	}
	c, err := r.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil || info.CF != "RSSMRA80A01H501U" {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	done := make(chan hal.CardEvent)
	go func() {
		ev, _ := r.Next(ctx)
		done <- ev
	}()
	time.Sleep(10 * time.Millisecond)
	r.Remove()
	if ev := <-done; ev.Kind != hal.CardRemoved {
		t.Fatalf("after Remove: %+v", ev)
	}
	// The old session is dead, and a new one finds no card.
	if _, err := c.Info(ctx); !errors.Is(err, hal.ErrCardRemoved) {
		t.Fatalf("Info after removal: %v", err)
	}
	if err := c.VerifyPIN(ctx, []byte("12345")); !errors.Is(err, hal.ErrCardRemoved) {
		t.Fatalf("VerifyPIN after removal: %v", err)
	}
	if _, err := r.Connect(ctx); !errors.Is(err, hal.ErrNoCard) {
		t.Fatalf("Connect on empty slot: %v", err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if _, err := r.Next(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next on cancelled ctx: %v", err)
	}
}

func TestPINTries(t *testing.T) {
	ctx := context.Background()
	r := NewReader("sim")
	r.Insert(DemoCard())
	c, _ := r.Connect(ctx)
	var pe *hal.PINError
	if err := c.VerifyPIN(ctx, []byte("00000")); !errors.As(err, &pe) || pe.TriesLeft != 2 || !errors.Is(err, hal.ErrWrongPIN) {
		t.Fatalf("first wrong PIN: %v", err)
	}
	if err := c.VerifyPIN(ctx, []byte("12345")); err != nil {
		t.Fatalf("right PIN: %v", err)
	}
	for i := 0; i < 2; i++ {
		c.VerifyPIN(ctx, []byte("00000"))
	}
	if err := c.VerifyPIN(ctx, []byte("00000")); !errors.Is(err, hal.ErrPINBlocked) {
		t.Fatalf("third wrong PIN: %v", err)
	}
	if err := c.VerifyPIN(ctx, []byte("12345")); !errors.Is(err, hal.ErrPINBlocked) {
		t.Fatalf("blocked card accepted the PIN: %v", err)
	}
	unknown := DemoCard()
	unknown.Info.Class = hal.ClassUnknown
	r.Insert(unknown)
	c, _ = r.Connect(ctx)
	if _, err := c.Info(ctx); !errors.Is(err, hal.ErrCardUnknown) {
		t.Fatalf("unknown card: %v", err)
	}
}

func TestPrinter(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := NewPrinter(dir)
	doc := &hal.Doc{Title: "Consensi FSE", Blocks: []hal.Block{
		{Kind: hal.Text, Text: "ASL Demo", Align: hal.Center},
		{Kind: hal.Rule},
		{Kind: hal.Text, Text: "Consenso alla consultazione del Fascicolo: SÌ"},
		{Kind: hal.QR, Text: "TOTEM|x|P:1"},
	}}
	for _, fault := range []struct {
		st  hal.PrinterStatus
		err error
	}{
		{hal.PrinterStatus{Online: true, PaperOut: true}, hal.ErrPaperOut},
		{hal.PrinterStatus{Online: true, CoverOpen: true}, hal.ErrCoverOpen},
		{hal.PrinterStatus{}, hal.ErrNotResponding},
	} {
		p.SetStatus(fault.st)
		if err := p.Print(ctx, doc); !errors.Is(err, fault.err) {
			t.Fatalf("status %+v: Print = %v, want %v", fault.st, err, fault.err)
		}
	}
	if len(p.Receipts()) != 0 {
		t.Fatal("a faulty printer printed")
	}
	p.SetStatus(hal.PrinterStatus{Online: true})
	if err := p.Print(ctx, doc); err != nil {
		t.Fatal(err)
	}
	files := p.Files()
	if len(files) != 1 || !strings.HasSuffix(files[0], "-consensi-fse.txt") {
		t.Fatalf("files %v", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil || string(b) != p.Receipts()[0] {
		t.Fatalf("file differs from receipt: %v", err)
	}
	want := "                 ASL Demo\n" + strings.Repeat("-", 42) + "\n" +
		"Consenso alla consultazione del Fascicolo:\nSÌ\n" + "             [QR TOTEM|x|P:1]\n"
	if string(b) != want {
		t.Fatalf("rendered:\n%q\nwant:\n%q", b, want)
	}
}

func TestPanelWaitChange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p := NewPanel(20, 4)
	p.Show([]string{"uno"})
	from := p.Text()
	go p.Show([]string{"due"})
	got, err := p.WaitChange(ctx, from)
	if err != nil || !strings.Contains(got, "due") {
		t.Fatalf("%q, %v", got, err)
	}
	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	if _, err := p.WaitChange(short, p.Text()); err == nil {
		t.Fatal("no change, no error")
	}
	p.Press('1', '2')
	if p.Pending() != 2 {
		t.Fatalf("%d keys pending", p.Pending())
	}
}

func TestPrinterWaitReceipts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p := NewPrinter("")
	go func() {
		for _, s := range []string{"uno", "due"} {
			p.Print(ctx, &hal.Doc{Blocks: []hal.Block{{Kind: hal.Text, Text: s}}})
		}
	}()
	got, err := p.WaitReceipts(ctx, 2)
	if err != nil || len(got) != 2 || !strings.Contains(got[1], "due") {
		t.Fatalf("%q, %v", got, err)
	}
	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	if got, err := p.WaitReceipts(short, 3); err == nil || len(got) != 2 {
		t.Fatalf("%q, %v", got, err)
	}
}
