// Command demo opens a terminal panel on its own terminal and shows the last
// key pressed. The tmux test of package term drives it; people can run it
// with go run ./drivers/term/internal/demo.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/aslcns/totem/drivers/term"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, in *os.File, out io.Writer) error {
	restore, err := term.Raw(in)
	if err != nil {
		return err
	}
	defer restore()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var p *term.Panel
	p = term.New(in, out, term.Options{
		Title: "Totem demo",
		Help:  "0-9 A-D * #  Invio=#  Backspace=*  Esc=D  i=inserisci r=rimuovi q=esci",
		OnCard: func(inserted bool) {
			if inserted {
				p.Status("Carta inserita")
			} else {
				p.Status("Carta rimossa")
			}
		},
		OnQuit: cancel,
	})
	runErr := make(chan error, 1)
	go func() { runErr <- p.Run(ctx) }()

	if err := p.Show([]string{"Premi un tasto"}); err != nil {
		cancel()
		return err
	}
	for n := 1; ; n++ {
		k, err := p.Next(ctx)
		if err != nil {
			break
		}
		p.Show([]string{"Premi un tasto", fmt.Sprintf("Ultimo tasto: %c", k), fmt.Sprintf("Tasti: %d", n)})
	}
	p.Show([]string{"fuori servizio"})
	// Run returns at once: stdin has no read deadline, and the process
	// ends right after, taking the blocked read with it.
	return <-runErr
}
