package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/drivers/escpos"
	"github.com/aslcns/totem/drivers/escpos/vprinter"
	"github.com/aslcns/totem/hal"
)

const printerUsage = `usage:
  totemd printer test   --port PATH [--baud N] [--profile P]   print the test receipt
  totemd printer status --port PATH [--baud N] [--profile P]   print the decoded status
  totemd printer sim    [--dir D] [--profile P] [--cond C]     run the virtual printer
profiles: %v
conditions: ok, near-end, paper-out, cover-open, offline, cutter-error, silent
`

// printerCmd implements "totemd printer …": the technician's test receipt
// and status on a serial ESC/POS printer, and the virtual printer for demos.
func printerCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintf(stderr, printerUsage, escpos.ProfileNames())
		return errors.New("totemd printer: missing subcommand (test, status, sim)")
	}
	sub := args[0]
	fs := cli.Flags("totemd printer "+sub, stderr)
	port := fs.String("port", "", "serial port of the printer (e.g. /dev/ttyUSB0)")
	baud := fs.Int("baud", 0, "line speed (default: the profile's)")
	profName := fs.String("profile", escpos.DefaultProfile, fmt.Sprintf("printer profile %v", escpos.ProfileNames()))
	dir := fs.String("dir", "receipts", "sim: directory for NNN.txt and NNN.png")
	cond := fs.String("cond", "ok", "sim: condition reported to status requests")
	timeout := fs.Duration("timeout", 2*time.Second, "wait for one status answer")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	prof, err := escpos.ProfileByName(*profName)
	if err != nil {
		return err
	}
	if *baud == 0 {
		*baud = prof.Baud
	}
	switch sub {
	case "sim":
		return printerSim(ctx, *dir, prof, *cond, stdout)
	case "test", "status":
	default:
		fmt.Fprintf(stderr, printerUsage, escpos.ProfileNames())
		return fmt.Errorf("totemd printer: unknown subcommand %q", sub)
	}
	if *port == "" {
		return fmt.Errorf("totemd printer %s: --port is required", sub)
	}
	rw, err := escpos.OpenSerial(*port, *baud)
	if err != nil {
		return fmt.Errorf("totemd printer: %s\n%w", faultMessage(err), err)
	}
	defer rw.Close()
	pr := escpos.New(rw, prof, escpos.Options{StatusTimeout: *timeout})
	defer pr.Close()

	if sub == "status" {
		st, err := pr.Query(ctx)
		if err != nil {
			return fmt.Errorf("totemd printer: %s\n%w", faultMessage(err), err)
		}
		h := st.HAL()
		fmt.Fprintf(stdout, "port %s, %d baud, profile %s\n", *port, *baud, prof.Name)
		fmt.Fprintf(stdout, "online:          %v\n", h.Online)
		fmt.Fprintf(stdout, "cover open:      %v\n", h.CoverOpen)
		fmt.Fprintf(stdout, "paper near end:  %v\n", h.PaperNearEnd)
		fmt.Fprintf(stdout, "paper out:       %v\n", h.PaperOut)
		fmt.Fprintf(stdout, "cutter error:    %v\n", h.CutterError)
		fmt.Fprintf(stdout, "unrecoverable:   %v\n", h.Unrecoverable)
		fmt.Fprintf(stdout, "auto-recoverable:%v\n", st.AutoRecoverable)
		fmt.Fprintf(stdout, "status: %s\n", st)
		if err := st.Err(); err != nil {
			return fmt.Errorf("totemd printer: %s\n%w", faultMessage(err), err)
		}
		return nil
	}
	doc := escpos.TestDoc(prof)
	data, err := escpos.Encode(doc, prof)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := pr.Print(ctx, doc); err != nil {
		return fmt.Errorf("totemd printer: %s\n%w", faultMessage(err), err)
	}
	fmt.Fprintf(stdout, "test receipt printed: %d bytes in %v (%s, %d baud) / ricevuta di prova stampata\n",
		len(data), time.Since(start).Round(time.Millisecond), prof.Name, *baud)
	return nil
}

// faultMessage says what is wrong in Italian and English, for the
// technician at the totem.
func faultMessage(err error) string {
	if m, ok := faultMessages[hal.PrinterFault(err)]; ok {
		return m
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "Operazione interrotta. / Operation interrupted."
	}
	return "Errore della stampante. / Printer error."
}

// faultMessages word the printer's faults (hal.PrinterFault's codes) for
// the technician: what to do about each.
var faultMessages = map[string]string{
	"paper_out":      "Carta esaurita: inserire un nuovo rotolo. / Paper out: load a new roll.",
	"cover_open":     "Coperchio aperto: chiudere il coperchio della stampante. / Cover open: close the printer cover.",
	"printer_fault":  "Guasto della stampante (taglierina o errore interno): spegnere e riaccendere. / Printer fault (cutter or internal error): power-cycle the printer.",
	"not_responding": "La stampante non risponde: controllare alimentazione, cavo, porta e velocità. / Printer not responding: check power, cable, port and baud rate.",
}

// printerSim runs the virtual printer until ctx is done.
func printerSim(ctx context.Context, dir string, prof escpos.Profile, cond string, stdout io.Writer) error {
	c, err := vprinter.ParseCondition(cond)
	if err != nil {
		return err
	}
	v, err := vprinter.StartWith(dir, vprinter.Options{Cols: prof.Cols, Dots: prof.Dots})
	if err != nil {
		return err
	}
	defer v.Close()
	v.SetCondition(c)
	fmt.Fprintf(stdout, "virtual printer (%s, %s) on %s\nreceipts in %s; Ctrl-C to stop\n", prof.Name, c, v.TTY(), dir)
	fmt.Fprintf(stdout, "try: totemd printer test --port %s --profile %s\n", v.TTY(), prof.Name)
	<-ctx.Done()
	return nil
}
