package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/skip2/go-qrcode"
)

// technician is `totemctl technician add|list|remove|unlock-code`: the
// field technicians who open maintenance mode at the totems' panels.
func technician(ctx context.Context, cfg *config.Totemctl, args []string, stdout, stderr io.Writer) error {
	usage := errors.New("totemctl: technician add NAME [--light] | list [-o table|json] | remove NAME|NUMBER | unlock-code TOTEM NAME|NUMBER")
	if len(args) == 0 {
		return usage
	}
	switch args[0] {
	case "add":
		light := false
		var name []string
		for _, a := range args[1:] {
			if a == "--light" {
				light = true
				continue
			}
			name = append(name, a)
		}
		if len(name) == 0 {
			return usage
		}
		return technicianAdd(ctx, cfg, strings.Join(name, " "), light, stdout)
	case "list":
		return hubList(ctx, cfg, "technician_list", args[1:], stdout, stderr, nil, renderTechnicians)
	case "remove":
		if len(args) < 2 {
			return usage
		}
		t, err := hubReply[hub.Technician](ctx, cfg, "technician_remove", map[string]string{"name": strings.Join(args[1:], " ")}, "technician remove")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "technician %s (%s) removed: the totems get the new set when they are online\n", t.ID, t.Name)
		return nil
	case "unlock-code":
		if len(args) < 3 || !protocol.ValidTotemID(args[1]) {
			return usage
		}
		c, err := hubReply[hub.UnlockCode](ctx, cfg, "technician_unlock_code", map[string]string{"totem": args[1], "name": strings.Join(args[2:], " ")}, "technician unlock-code")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "totem %s, technician %s: unlock code %s %s\nvalid once, until %s (hub clock); "+
			"type it at the panel when it says the clock is not synchronised\n", c.Totem, c.ID, c.Code[:5], c.Code[5:], stamp(c.Expires))
		return nil
	}
	return usage
}

func technicianAdd(ctx context.Context, cfg *config.Totemctl, name string, light bool, stdout io.Writer) error {
	t, err := hubReply[hub.TechnicianAdded](ctx, cfg, "technician_add", map[string]string{"name": name}, "technician add")
	if err != nil {
		return err
	}
	qr, err := qrText(t.URI, light)
	if err != nil {
		return fmt.Errorf("totemctl: technician add: %w", err)
	}
	fmt.Fprintf(stdout, "technician %s (%s) enrolled: number %s at the panel\n"+
		"scan the code with Google Authenticator (or any TOTP app); it is shown only now:\n\n%s\n%s\n\n"+
		"at a totem: * 0 * 0 * 0 on the idle screen, then the number and the app's code\n", t.ID, t.Name, t.ID, qr, t.URI)
	return nil
}

func renderTechnicians(w io.Writer, ts []hub.Technician) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NUMBER\tNAME\tADDED")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", t.ID, t.Name, stamp(t.Added))
	}
	return tw.Flush()
}

// qrText draws the QR code of s with half blocks, two modules a line,
// with its quiet zone. A terminal's text is light on dark: the light
// modules are drawn, so the code reads right there; light is for a dark
// text on a light background.
func qrText(s string, light bool) (string, error) {
	q, err := qrcode.New(s, qrcode.Medium)
	if err != nil {
		return "", err
	}
	bm := q.Bitmap() // true = dark module, quiet zone included
	draw := func(y, x int) bool {
		if y >= len(bm) {
			return !light // below the last row: the quiet zone's colour
		}
		return bm[y][x] == light
	}
	var b strings.Builder
	for y := 0; y < len(bm); y += 2 {
		for x := range bm[y] {
			top, bottom := draw(y, x), draw(y+1, x)
			switch {
			case top && bottom:
				b.WriteString("█")
			case top:
				b.WriteString("▀")
			case bottom:
				b.WriteString("▄")
			default:
				b.WriteByte(' ')
			}
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}
