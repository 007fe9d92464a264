package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/enroll"
)

// enrollCmd is `totemd enroll --config FILE CODE`: it exchanges the
// 12-character code ops got from `totemctl enroll TOTEM` for this totem's
// own credentials, over the broker's TLS path, and writes them
// atomically (0600) to credentials_file. A refused code writes nothing.
// A totemd waiting for its credentials picks the file up by itself; one
// already running with older credentials must be restarted.
func enrollCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.Flags("totemd enroll", stderr)
	cfgPath := fs.String("config", "", "configuration file (default: embedded defaults)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the hub")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: totemd enroll [--config FILE] [--timeout D] CODE   (CODE as XXXX-XXXX-XXXX)")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("totemd enroll: one code")
	}
	code, err := enroll.ParseCode(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("totemd enroll: %w", err)
	}
	cfg, err := config.LoadTotemd(*cfgPath)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	f, exp, err := exchange(ctx, cfg, code)
	if err != nil {
		return fmt.Errorf("totemd enroll: %w", err)
	}
	if err := creds.Save(cfg.Broker.CredentialsFile, f); err != nil {
		return fmt.Errorf("totemd enroll: the hub issued the credentials but they could not be written (ask ops for a new code): %w", err)
	}
	fmt.Fprintf(stdout, "totem %s enrolled: credentials in %s", f.Username, cfg.Broker.CredentialsFile)
	if !exp.IsZero() {
		fmt.Fprintf(stdout, ", valid until %s", exp.Local().Format("2006-01-02 15:04"))
	}
	fmt.Fprintln(stdout, "\n(a totemd already running with older credentials must be restarted)")
	return nil
}

// exchange trades an enrollment code for this totem's credentials and
// their expiry, over the broker's TLS path: totemd enroll and the
// panel's enrollment both.
func exchange(ctx context.Context, cfg *config.Totemd, code string) (creds.File, time.Time, error) {
	tlsCfg, caFile, err := cli.BrokerTLS(cfg.Broker.URL, cfg.Broker.TLSClient)
	if errors.Is(err, os.ErrNotExist) && caFile != "" {
		// A new totem: the code is only sent to a broker the CA vouches
		// for, and nothing on the totem says which one yet.
		return creds.File{}, time.Time{}, fmt.Errorf("no CA certificate at %s: copy the hub's ca.pem there (totemhub writes it in its state_dir and its credentials_dir), "+
			"or set [broker] ca_file = \"system\" if the broker's certificate comes from a public certificate authority", caFile)
	}
	if err != nil {
		return creds.File{}, time.Time{}, err
	}
	return enroll.Client{URL: cfg.Broker.URL, TLS: tlsCfg, CAFile: caFile, Totem: cfg.Totem.ID}.Exchange(ctx, code)
}
