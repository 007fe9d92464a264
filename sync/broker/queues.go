package broker

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/aslcns/totem/sync/creds"
)

// Write queues. mochi gives every client, when it creates it, an outbound
// channel of Capabilities.MaximumClientWritesPending packets, one setting
// for all: its default of 8 192 pointers is 64 KiB a client, 64 MB of a
// hub's memory for a thousand totems that receive a reply per operation
// (16 at most in flight) and the odd command. The hub's own client is the
// other way round: it receives every totem's state and telemetry, and
// every operation of the fleet when it does not take them in-process
// (local.go), with no receive maximum (see hub.Options.ReceiveMaximum),
// and mochi drops a QoS 1 message, acknowledged to its sender, when that
// channel is full.
//
// So each client gets the size of its role: the listener has read the
// CONNECT before mochi creates the client (listener.handshake), and the
// username it names decides. mochi reads the setting once, in newClient,
// which EstablishConnection calls first, on our goroutine, and which asks
// the connection its RemoteAddr right after: the sizing lock is held from
// setting the value until then (or the first Read, should a later mochi
// not ask), so that no other connection's creation reads it meanwhile.
// TestWriteQueueSizes checks the sizes on the real clients.
const (
	// clientWritesPending is a totem's, a console's or an updater's: its
	// replies (16 operations in flight), retained policy and commands,
	// with room for a slow link. 2 KiB a client.
	clientWritesPending = 256
	// hubWritesPending is a hub's: the fleet's operations in flight at
	// once (1 000 totems × a window of 16) and their state and telemetry.
	hubWritesPending = 64 << 10
)

// sizing serialises the creation of mochi clients across listeners.
type sizing struct {
	mu   sync.Mutex
	caps *mqtt.Capabilities
	auth Authenticator
}

// pending returns the write queue for the client whose CONNECT is
// connect: the hub's for a username the Authenticator knows as a hub.
// The password is checked later, by mochi's hooks: a stranger naming the
// hub holds its queue only until its CONNACK, within the CONNECT deadline
// it already passed.
func (s *sizing) pending(connect []byte) int32 {
	if u, ok := connectUsername(connect); ok {
		if role, ok := s.auth.Lookup(u); ok && role == creds.RoleHub {
			return hubWritesPending
		}
	}
	return clientWritesPending
}

// lock sets the size for the next client mochi creates; the returned
// release, idempotent, lets the next connection's creation go on.
func (s *sizing) lock(n int32) (release func()) {
	s.mu.Lock()
	s.caps.MaximumClientWritesPending = n
	var once sync.Once
	return func() { once.Do(s.mu.Unlock) }
}

// connectUsername decodes the username of a whole CONNECT packet, fixed
// header included (readConnect's result).
func connectUsername(p []byte) (string, bool) {
	if len(p) < 2 {
		return "", false
	}
	n, remaining := 1, 0
	for shift := 0; ; shift += 7 {
		if n >= len(p) || n > 4 {
			return "", false
		}
		remaining |= int(p[n]&0x7f) << shift
		n++
		if p[n-1]&0x80 == 0 {
			break
		}
	}
	if n+remaining != len(p) {
		return "", false
	}
	pk := packets.Packet{}
	if err := pk.FixedHeader.Decode(p[0]); err != nil {
		return "", false
	}
	pk.FixedHeader.Remaining = remaining
	if err := pk.ConnectDecode(p[n:]); err != nil || !pk.Connect.UsernameFlag {
		return "", false
	}
	return string(pk.Connect.Username), true
}
