package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/pki"
)

// renewEvery is how often the broker's certificate is checked for renewal
// (pki.RenewBefore ahead of its expiry) or, for the ASL's own, read again.
const renewEvery = 12 * time.Hour

// brokerTLS returns the embedded broker's TLS configuration, nil without
// tls_listen, and the loop that keeps its certificate current. With the
// hub's private CA it also writes the CA certificate into the fleet's
// credentials directory, before any credentials there, so that a client
// finding its credentials finds its ca_file too, and returns it (DER) for
// the enrollment of a totem that has only its code (hub.SetEnrollCA).
func brokerTLS(cfg *config.Totemhub, log *slog.Logger) (*tls.Config, func(context.Context), []byte, error) {
	if cfg.Broker.TLSListen == "" {
		return nil, func(context.Context) {}, nil, nil
	}
	var caDER []byte
	now := time.Now()
	var src pki.Source
	if cfg.Broker.TLSCertFile != "" {
		src = pki.FileSource(cfg.Broker.TLSCertFile, cfg.Broker.TLSKeyFile)
	} else {
		ca, err := pki.LoadOrCreateCA(cfg.StateDir, "Totem hub CA", now)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("totemhub: %w", err)
		}
		caFile := filepath.Join(cfg.Fleet.CredentialsDir, pki.CACertFile)
		if err := pki.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
			return nil, nil, nil, fmt.Errorf("totemhub: %w", err)
		}
		log.Info("broker CA", "ca_file", caFile, "expires", ca.Cert.NotAfter.Format(time.DateOnly))
		src = pki.CASource(cfg.StateDir, ca, cfg.Broker.TLSNames)
		caDER = ca.Cert.Raw
	}
	srv, err := pki.NewServer(src, now)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("totemhub: broker certificate: %w", err)
	}
	log.Info("broker certificate", "names", certNames(srv.Current()), "expires", srv.Current().Leaf.NotAfter.Format(time.DateOnly))
	return srv.Config(), func(ctx context.Context) { srv.Run(ctx, renewEvery, log) }, caDER, nil
}

func certNames(c *tls.Certificate) []string {
	n := append([]string(nil), c.Leaf.DNSNames...)
	for _, ip := range c.Leaf.IPAddresses {
		n = append(n, ip.String())
	}
	return n
}
