package outbox

import (
	"encoding/binary"
	"testing"
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
	o := &Outbox{}
	f.Fuzz(func(t *testing.T, val []byte) {
		key := binary.BigEndian.AppendUint64(nil, 7)
		seq, r, err := decodeRecord(key, val)
		if seq != 7 {
			t.Fatalf("seq %d", seq)
		}
		if err != nil {
			return
		}
		if _, err := o.entry(seq, &r, bucketPending); err != nil && r.Sealed == nil {
			t.Fatalf("plain entry failed: %v", err)
		}
	})
}
