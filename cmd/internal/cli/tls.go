package cli

import (
	"crypto/tls"

	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/pki"
)

// BrokerTLS returns the TLS configuration of a program's connection to
// the broker at url (nil for a plain URL) and the CA file it trusts ("" =
// the system's roots), the one place totemd, totemctl and totemhub build
// it: the server name is always checked.
func BrokerTLS(url string, t config.TLSClient) (*tls.Config, string, error) {
	ca := t.CAFile
	if ca == "system" {
		ca = ""
	}
	cfg, err := pki.Client{CAFile: ca, CertFile: t.CertFile, KeyFile: t.KeyFile}.Config(url)
	return cfg, ca, err
}
