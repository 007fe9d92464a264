package synctest

import (
	"net"
	"testing"
)

// FreeAddr returns a loopback address (host:port) nobody listens on, for
// a daemon the test starts: a broker, an ops listener, or a hub that is
// never there.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
