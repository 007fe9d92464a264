package uplink

import (
	"crypto/x509"
	"errors"
	"fmt"
	"testing"

	"github.com/eclipse/paho.golang/autopaho"
)

// A failure to connect is named by a code the panel words: a lock, bad
// credentials, another refusal, a certificate, the network.
func TestLinkErrorCode(t *testing.T) {
	connack := func(code byte) error {
		return fmt.Errorf("connect: %w", &autopaho.ConnackError{ReasonCode: code, Reason: "x", Err: errors.New("refused")})
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{connack(codeLocked), LinkErrLocked},
		{connack(0x86), LinkErrAuth},
		{connack(0x87), LinkErrAuth},
		{connack(0x89), LinkErrRefused},
		{fmt.Errorf("tls: %w", x509.UnknownAuthorityError{}), LinkErrTLS},
		{errors.New("dial tcp 10.0.0.1:8883: connect: connection refused"), LinkErrNetwork},
	} {
		if got := linkErrorCode(c.err, "hub.example:8883", "ca.pem"); got != c.want {
			t.Errorf("%v: %q, want %q", c.err, got, c.want)
		}
	}
}
