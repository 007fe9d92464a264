package hub_test

import (
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
)

// consoleKeys is an ops and a technician key the hub under test trusts.
type consoleKeys struct {
	ops, tech cmdsig.PrivateKey
	verifier  *cmdsig.Verifier
}

func newConsoleKeys(t *testing.T) *consoleKeys {
	t.Helper()
	ops, err := cmdsig.Generate("ops-1", cmdsig.Ops)
	if err != nil {
		t.Fatal(err)
	}
	tech, v := synctest.Technician(t, "tech-1", cmdsig.HubTarget, ops.Public())
	return &consoleKeys{ops: ops, tech: tech, verifier: v}
}

// command returns a hub command signed with k, with a fresh nonce.
func (ck *consoleKeys) command(t *testing.T, k cmdsig.PrivateKey, name string, args map[string]string) []byte {
	t.Helper()
	n := make([]byte, 8)
	rand.Read(n)
	c := protocol.Command{V: 1, ID: hex.EncodeToString(n), Name: name, Args: args}
	if err := cmdsig.Sign(k, &c, cmdsig.HubTarget, "", time.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	b, err := protocol.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
