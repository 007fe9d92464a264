package outbox

import (
	"encoding/binary"
	"encoding/json"
	"testing"

	"github.com/aslcns/totem/sync/protocol"
)

// FuzzDecodeRecord checks that no stored bytes make the decoder panic and
// that what it accepts survives a round trip through the outbox's
// conversion (sealed payloads fail cleanly without a keyring).
func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte(`{"id":"00112233445566770000000000000001","kind":"consent","payload":"eyJuIjoxfQ==","created":"2025-03-01T09:00:01Z"}`))
	f.Add([]byte(`{"id":"x","kind":"k","key":1,"nonce":"AAAAAAAAAAAAAAAA","sealed":"AAAA","created":"2025-03-01T09:00:01Z","quarantine":"poison"}`))
	f.Add([]byte(`{"raw":"AAAA","quarantine":"corrupt"}`))
	f.Add([]byte(`{`))
	f.Add([]byte{0xff, 0x00})
	f.Add(append([]byte("v\x00\x11\x22\x33\x44\x55\x66\x77\x00\x00\x00\x00\x00\x00\x00\x07"), "shed"...))
	f.Add([]byte("v0123456789abcdef\""))
	f.Add([]byte(`{"id":"00112233445566770000000000000007","kind":"../x","payload":"WzFd","created":"2025-03-01T09:00:01Z"}`))
	o := &Outbox{}
	copy(o.salt[:], "\x00\x11\x22\x33\x44\x55\x66\x77")
	f.Fuzz(func(t *testing.T, val []byte) {
		key := binary.BigEndian.AppendUint64(nil, 7)
		seq, r, err := decodeRecord(key, val)
		if seq != 7 {
			t.Fatalf("seq %d", seq)
		}
		if err != nil {
			return
		}
		e, err := o.entry(seq, &r, bucketPending)
		if err != nil && r.Sealed == nil {
			t.Fatalf("plain entry failed: %v", err)
		}
		// A void's kind and payload are always something the hub takes
		// (Pending rewrites one whose id is not its own).
		if r.void != "" && (!protocol.ValidKind(e.Kind) || len(e.Payload) == 0 || e.Payload[0] != '{' || !json.Valid(e.Payload)) {
			t.Fatalf("void %+v not sendable", e)
		}
	})
}
