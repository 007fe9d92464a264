package pki

import (
	"context"
	"crypto/tls"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/aslcns/totem/internal/clock"
)

// Source gives the broker's current certificate; renewed says it is a new
// one (the hub's CA issued it, or the files changed).
type Source func(now time.Time) (cert *tls.Certificate, renewed bool, err error)

// Server holds the broker's certificate and swaps it in place when
// renewed: connections already open keep theirs, new ones get the new one.
type Server struct {
	src Source
	cur atomic.Pointer[tls.Certificate]
}

// NewServer loads the first certificate from src.
func NewServer(src Source, now time.Time) (*Server, error) {
	s := &Server{src: src}
	c, _, err := src(now)
	if err != nil {
		return nil, err
	}
	s.cur.Store(c)
	return s, nil
}

// Config returns the broker's TLS configuration.
func (s *Server) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cur.Load(), nil
		},
	}
}

// Current returns the certificate served now.
func (s *Server) Current() *tls.Certificate { return s.cur.Load() }

// Renew asks the source again and serves what it gives.
func (s *Server) Renew(now time.Time) (renewed bool, err error) {
	c, renewed, err := s.src(now)
	if err != nil {
		return false, err
	}
	s.cur.Store(c)
	return renewed, nil
}

// Run renews every period until ctx is done: a hub that runs for months
// never serves an expired certificate. A failure is logged and the
// current certificate kept.
func (s *Server) Run(ctx context.Context, every time.Duration, log *slog.Logger) {
	clock.Every(ctx, every, func() bool {
		renewed, err := s.Renew(time.Now())
		switch {
		case err != nil:
			log.Error("broker certificate not renewed", "err", err, "expires", s.Current().Leaf.NotAfter)
		case renewed:
			log.Info("broker certificate renewed", "expires", s.Current().Leaf.NotAfter)
		}
		return false
	})
}

// FileSource serves a certificate kept by someone else (the ASL's own, in
// PEM files), read again at every renewal.
func FileSource(certFile, keyFile string) Source {
	var last []byte
	return func(time.Time) (*tls.Certificate, bool, error) {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, false, err
		}
		renewed := last != nil && string(last) != string(pair.Certificate[0])
		last = pair.Certificate[0]
		return &pair, renewed, nil
	}
}

// CASource serves the certificate the hub's CA issues for names, kept in
// dir and renewed by ServerCert.
func CASource(dir string, ca *CA, names []string) Source {
	return func(now time.Time) (*tls.Certificate, bool, error) {
		return ServerCert(dir, ca, names, now)
	}
}
