package cli

import (
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/cmdsig"
)

// TrustedKeys returns the console keys listed in a configuration and those
// of its keys file together; one id with two different keys is an error.
func TrustedKeys(conf []config.ConsoleKey, file string) ([]cmdsig.PublicKey, error) {
	listed := make([]cmdsig.PublicKey, 0, len(conf))
	for _, e := range conf {
		k, err := cmdsig.Entry{ID: e.ID, Role: e.Role, PublicKey: e.PublicKey}.Parse()
		if err != nil {
			return nil, err
		}
		listed = append(listed, k)
	}
	fromFile, err := cmdsig.LoadTrusted(file)
	if err != nil {
		return nil, err
	}
	return cmdsig.Merge(listed, fromFile)
}
