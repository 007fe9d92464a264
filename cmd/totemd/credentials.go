package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/uplink"
)

// credentialsCmd is `totemd credentials test` (Test credenziali, seed
// 003): connect with credentials_file over the configured path (TLS),
// authenticate, check the ACL of the totem's own topics and the expiry,
// and print a verdict; the exit status is non-zero unless it is OK. A
// running totemd's link is taken over for the moment of the test (the
// client id is the totem's) and connects again by itself.
func credentialsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.Flags("totemd credentials", stderr)
	cfgPath := fs.String("config", "", "configuration file (default: embedded defaults)")
	out := fs.String("o", "text", "output: text or json")
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: totemd credentials test [--config FILE] [-o text|json]") }
	if len(args) == 0 || args[0] != "test" {
		fs.Usage()
		return errors.New("totemd credentials: test")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *out != "text" && *out != "json" {
		return fmt.Errorf("totemd credentials: -o %s: want text or json", *out)
	}
	cfg, err := config.LoadTotemd(*cfgPath)
	if err != nil {
		return err
	}
	f, err := creds.Load(cfg.Broker.CredentialsFile)
	if err != nil {
		return fmt.Errorf("totemd credentials: KO: %w", err)
	}
	tlsCfg, caFile, err := cli.BrokerTLS(cfg.Broker.URL, cfg.Broker.TLSClient)
	if err != nil {
		return fmt.Errorf("totemd credentials: KO: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r := uplink.TestCredentials(ctx, uplink.TestOptions{URL: cfg.Broker.URL, TLS: tlsCfg, CAFile: caFile, Creds: f})
	if *out == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(r)
	} else {
		for _, c := range r.Own {
			fmt.Fprintf(stdout, "  %-40s %s\n", c.Topic, granted(c.Granted))
		}
		if r.Foreign != nil {
			fmt.Fprintf(stdout, "  %-40s %s (must be refused)\n", r.Foreign.Topic, granted(r.Foreign.Granted))
		}
		fmt.Fprintln(stdout, r.Verdict)
	}
	if !r.OK {
		return errors.New("totemd credentials: " + r.Verdict)
	}
	return nil
}

func granted(ok bool) string {
	if ok {
		return "granted"
	}
	return "refused"
}
