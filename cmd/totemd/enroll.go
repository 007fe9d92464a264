package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/enroll"
	"github.com/aslcns/totem/sync/pki"
)

// enrollCmd is `totemd enroll --config FILE CODE`: it exchanges the
// 12-character code ops got from `totemctl enroll TOTEM` for this totem's
// own credentials, over the broker's TLS path, and writes them
// atomically (0600) to credentials_file. A totem without its ca_file
// first gets the hub's CA with the code's proof (enroll.FetchCA), so the
// code is all a technician brings. A refused code writes nothing.
// A totemd waiting for its credentials picks the file up by itself; one
// already running with older credentials must be restarted.
func enrollCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.Flags("totemd enroll", stderr)
	cfgPath := fs.String("config", "", "configuration file (default: embedded defaults)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the hub")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: totemd enroll [--config FILE] [--timeout D] CODE   (CODE as XXXX-XXXX-XXXX)")
		fmt.Fprintln(stderr, "Exchanges the enrollment code ops gave (totemctl enroll TOTEM) for this totem's credentials,")
		fmt.Fprintln(stderr, "written to [broker] credentials_file. Without the hub's CA at [broker] ca_file, the code alone")
		fmt.Fprintln(stderr, "is enough: the hub proves it knows the code before its CA is written there (the code itself")
		fmt.Fprintln(stderr, "is only sent to a broker that CA vouches for).")
		fs.PrintDefaults()
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
	f, exp, err := exchange(ctx, cfg, code, func(caFile string, caPEM []byte) {
		fmt.Fprintf(stdout, "the hub proved it knows the code: its CA (SHA-256 %s) written to %s\n", caFingerprint(caPEM), caFile)
	})
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
// panel's enrollment both. When the broker URL is TLS and ca_file names a
// file that does not exist (a new totem: "system" or an existing file
// keep the plain path), it first fetches the hub's CA with the code's
// proof (enroll.FetchCA: the code is not sent), writes it to ca_file
// (0644, atomically; caWritten is told) and then exchanges the code over
// a connection that verifies the broker against it. A code that does not
// match, or a broker that is not the hub, writes nothing.
func exchange(ctx context.Context, cfg *config.Totemd, code string, caWritten func(caFile string, caPEM []byte)) (creds.File, time.Time, error) {
	if caFile := cfg.Broker.CAFile; caFile != "" && caFile != "system" && pki.TLSScheme(cfg.Broker.URL) {
		if _, err := os.Stat(caFile); errors.Is(err, os.ErrNotExist) {
			if err := fetchCA(ctx, cfg, code, caFile); err != nil {
				return creds.File{}, time.Time{}, err
			}
			if caWritten != nil {
				b, _ := os.ReadFile(caFile)
				caWritten(caFile, b)
			}
		}
	}
	tlsCfg, caFile, err := cli.BrokerTLS(cfg.Broker.URL, cfg.Broker.TLSClient)
	if err != nil {
		return creds.File{}, time.Time{}, err
	}
	return enroll.Client{URL: cfg.Broker.URL, TLS: tlsCfg, CAFile: caFile, Totem: cfg.Totem.ID}.Exchange(ctx, code)
}

// fetchCA gets the hub's CA for a new totem (enroll.FetchCA) and writes
// it to caFile.
func fetchCA(ctx context.Context, cfg *config.Totemd, code, caFile string) error {
	// The client certificate, if any, and the server name; no roots: the
	// answer's proof decides.
	t := cfg.Broker.TLSClient
	t.CAFile = "system"
	base, _, err := cli.BrokerTLS(cfg.Broker.URL, t)
	if err != nil {
		return err
	}
	caPEM, err := enroll.Client{URL: cfg.Broker.URL, TLS: base, Totem: cfg.Totem.ID}.FetchCA(ctx, code)
	switch r := enroll.ReasonOf(err); {
	case err == nil:
	case r == enroll.ReasonOldCode || r == enroll.ReasonNoCA || r == enroll.ReasonMalformed:
		// malformed: a hub older than the CA request does not know it.
		return fmt.Errorf("no CA certificate at %s: copy the hub's ca.pem there (totemhub writes it in its state_dir and its credentials_dir), "+
			"or set [broker] ca_file = \"system\" if the broker's certificate comes from a public certificate authority; %w", caFile, err)
	default:
		return err
	}
	if err := pki.WriteFile(caFile, caPEM, 0o644); err != nil {
		return fmt.Errorf("the hub's CA could not be written: %w", err)
	}
	return nil
}

// caFingerprint is the SHA-256 of the first certificate in caPEM, as the
// technician may compare it with the hub's ca.pem.
func caFingerprint(caPEM []byte) string {
	b, _ := pem.Decode(caPEM)
	if b == nil {
		return "?"
	}
	d := sha256.Sum256(b.Bytes)
	return hex.EncodeToString(d[:])
}
