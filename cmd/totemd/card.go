package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/drivers/cns"
	"github.com/aslcns/totem/drivers/cns/vcard"
	"github.com/aslcns/totem/drivers/pcsc"
	"github.com/aslcns/totem/hal"
)

const pcscHint = "totemd was built without PC/SC: rebuild with cgo and the pcsc tag (go build -tags pcsc ./cmd/totemd; needs libpcsclite-dev)"

// cardCmd runs "totemd card info|watch|sim".
func cardCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := "usage: totemd card info [--reader NAME] | watch [--reader NAME] | sim [--profile NAME] [--port N] [--list]"
	if len(args) == 0 {
		return errors.New(usage)
	}
	fs := cli.Flags("card "+args[0], stderr)
	reader := fs.String("reader", "", "PC/SC reader name or prefix (default: the first reader)")
	profile := fs.String("profile", "cns", "virtual card profile (sim)")
	port := fs.Int("port", 35963, "vpcd port (sim)")
	list := fs.Bool("list", false, "list the virtual card profiles (sim)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "info":
		return cardInfo(ctx, *reader, stdout)
	case "watch":
		return cardWatch(ctx, *reader, stdout)
	case "sim":
		return cardSim(ctx, *profile, *port, *list, stdout)
	}
	return errors.New(usage)
}

func openReader(ctx context.Context, name string) (*pcsc.Reader, error) {
	if !pcsc.Available {
		return nil, errors.New(pcscHint)
	}
	return pcsc.Open(ctx, pcsc.Options{Reader: name})
}

type cardJSON struct {
	Class     hal.CardClass `json:"class"`
	Serial    string        `json:"serial,omitempty"`
	TEAM      string        `json:"team,omitempty"`
	Issuer    string        `json:"issuer,omitempty"`
	CF        string        `json:"cf,omitempty"`
	Surname   string        `json:"surname,omitempty"`
	Name      string        `json:"name,omitempty"`
	BirthDate string        `json:"birth_date,omitempty"`
	IssueDate string        `json:"issue_date,omitempty"`
	Expiry    string        `json:"expiry,omitempty"`
	Expired   bool          `json:"expired"`
	Error     string        `json:"error,omitempty"`
}

func day(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.DateOnly)
}

// cardInfo reads the card in the reader (no PIN) and prints it as JSON.
func cardInfo(ctx context.Context, name string, stdout io.Writer) error {
	r, err := openReader(ctx, name)
	if err != nil {
		return err
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	card, err := r.Connect(ctx)
	if err != nil {
		return fmt.Errorf("card info: %w", err)
	}
	defer card.Close()
	info, err := card.Info(ctx)
	out := cardJSON{
		Class: info.Class, Serial: info.Serial, TEAM: cns.TEAM(info.Serial), Issuer: info.Issuer, CF: info.CF,
		Surname: info.Surname, Name: info.Name, BirthDate: day(info.BirthDate), IssueDate: day(info.IssueDate),
		Expiry: day(info.Expiry), Expired: errors.Is(err, hal.ErrCardExpired),
	}
	if err != nil && !out.Expired {
		out.Error = err.Error()
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if e := enc.Encode(out); e != nil {
		return e
	}
	if err != nil && !out.Expired {
		return fmt.Errorf("card info: %w", err)
	}
	return nil
}

// cardWatch prints one JSON line per insertion or removal until ctx ends.
func cardWatch(ctx context.Context, name string, stdout io.Writer) error {
	r, err := openReader(ctx, name)
	if err != nil {
		return err
	}
	defer r.Close()
	enc := json.NewEncoder(stdout)
	for {
		ev, err := r.Next(ctx)
		if ctx.Err() != nil {
			return nil
		}
		line := map[string]any{"time": time.Now().UTC().Format(time.RFC3339Nano)}
		if err != nil {
			line["event"], line["error"] = "error", err.Error()
		} else {
			line["event"], line["reader"], line["counter"] = ev.Kind.String(), ev.Reader, ev.Counter
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
		if err != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
		}
	}
}

// cardSim inserts a virtual card into vpcd until ctx ends, reinserting it
// when pcscd restarts.
func cardSim(ctx context.Context, profile string, port int, list bool, stdout io.Writer) error {
	if list {
		for _, p := range vcard.Profiles() {
			fmt.Fprintf(stdout, "%-10s %s\n", p.Name, p.Desc)
		}
		return nil
	}
	p, ok := vcard.Lookup(profile)
	if !ok {
		return fmt.Errorf("card sim: unknown profile %q (see --list)", profile)
	}
	c := vcard.New(p)
	c.SetAddr(fmt.Sprintf("127.0.0.1:%d", port))
	defer c.Remove()
	announced := false
	for {
		if err := c.Insert(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !announced {
				fmt.Fprintf(stdout, "waiting for vpcd on port %d (is pcscd with vsmartcard-vpcd running?)\n", port)
				announced = true
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		announced = false
		fmt.Fprintf(stdout, "card %q inserted into vpcd port %d; Ctrl-C removes it\n", p.Name, port)
		select {
		case <-ctx.Done():
			fmt.Fprintln(stdout, "card removed")
			return nil
		case <-c.Inserted():
			fmt.Fprintln(stdout, "vpcd closed the connection; inserting again")
		}
	}
}
