package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/cmdsig"
)

// keygen makes a console signing key: the private key to a file readable
// by its owner only, and on stdout the [[console_keys]] entry the totems
// and the hub need to trust it.
func keygen(_ context.Context, cfg *config.Totemctl, args []string, stdout, stderr io.Writer) error {
	fs := cli.Flags("keygen", stderr)
	id := fs.String("id", "", "key id, e.g. the technician's name (1-32 of A-Z a-z 0-9 _ -)")
	role := fs.String("role", "", "technician or ops")
	out := fs.String("out", cfg.KeyFile, "private key file to write (never overwritten)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *id == "" || *role == "" || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("totemctl: keygen --id ID --role technician|ops [--out FILE]")
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("totemctl: %s exists: choose another --out", *out)
	}
	k, err := cmdsig.Generate(*id, *role)
	if err != nil {
		return err
	}
	if err := cmdsig.SavePrivate(*out, k); err != nil {
		return err
	}
	e := k.Public().Entry()
	fmt.Fprintf(stdout, "# private key written to %s (keep it on this console only)\n"+
		"# add to the configuration of the totems and the hub that must obey it:\n"+
		"[[console_keys]]\nid = %q\nrole = %q\npublic_key = %q\n", *out, e.ID, e.Role, e.PublicKey)
	return nil
}
