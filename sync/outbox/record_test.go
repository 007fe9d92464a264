package outbox

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/protocol"
)

// testBox has the salt of the ids in these tests.
var testBox = func() *Outbox {
	o := &Outbox{}
	copy(o.salt[:], "\x00\x11\x22\x33\x44\x55\x66\x77")
	return o
}()

// full is a record with every field set.
func full() record {
	at := time.Date(2025, 3, 1, 9, 0, 1, 5, time.UTC)
	return record{
		ID: "00112233445566770000000000000007", Kind: "consent", Payload: []byte(`{"n":1}`),
		Key: 3, Nonce: []byte("123456789012"), Sealed: []byte("sealed"),
		Created: at, Expires: at.Add(time.Hour), Attempts: 4, LastSent: at.Add(time.Minute),
		Result: &protocol.Result{V: protocol.Version, OpID: "00112233445566770000000000000007", Seq: 7,
			Transport: protocol.Transport{Status: protocol.TransportReceived, Protocol: "P-1", At: at}, Processing: protocol.Processing{Status: protocol.ProcessingAccepted}, Data: json.RawMessage(`{"a":1}`)},
		Completed: at.Add(2 * time.Minute), Quarantine: ReasonPoison, QuarantinedAt: at.Add(3 * time.Minute),
		Raw: []byte{0, 1, 2}, Voided: true,
		Stamp: &protocol.Stamp{Boot: "boot", Mono: -5, Wall: time.Date(1969, 12, 31, 23, 0, 0, 999, time.UTC), Synced: true},
	}
}

func TestCompactRoundTrip(t *testing.T) {
	key := binary.BigEndian.AppendUint64(nil, 7)
	for name, r := range map[string]record{
		"full":         full(),
		"minimal":      {ID: "not-hex", Kind: "k"},
		"another salt": {ID: "ff112233445566770000000000000007", Kind: "k"},
		"empty payload, stamp without wall": {ID: "00112233445566770000000000000001", Kind: "consent",
			Payload: []byte{}, Created: time.Unix(0, 0).UTC(), Stamp: &protocol.Stamp{Boot: "b"}},
	} {
		v, err := testBox.encodeRecord(7, &r)
		if err != nil {
			t.Fatal(err)
		}
		_, got, err := testBox.decodeRecord(key, v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("%s:\n got %+v\nwant %+v", name, got, r)
		}
	}
}

// TestCompactSmaller: the point of the compact record is fewer bytes per
// operation on the SD card.
func TestCompactSmaller(t *testing.T) {
	r := full()
	r.Payload = bytes.Repeat([]byte("p"), 512)
	r.Result, r.Raw, r.Sealed, r.Nonce = nil, nil, nil, nil
	c, _ := testBox.encodeRecord(7, &r)
	j, _ := json.Marshal(&r)
	if len(c) > 512+120 || len(c)*10 > len(j)*7 {
		t.Fatalf("compact %d bytes, JSON %d", len(c), len(j))
	}
}

func TestCompactDamage(t *testing.T) {
	r := full()
	v, _ := testBox.encodeRecord(7, &r)
	key := binary.BigEndian.AppendUint64(nil, 7)
	for i := range v {
		d := bytes.Clone(v)
		d[i] ^= 0x20
		if _, _, err := testBox.decodeRecord(key, d); err == nil {
			t.Fatalf("byte %d flipped: decoded", i)
		}
	}
	for n := range len(v) {
		if _, _, err := testBox.decodeRecord(key, v[:n]); err == nil {
			t.Fatalf("truncated to %d: decoded", n)
		}
	}
	// Without an id or a kind, checksum right, it is still corrupt.
	noKind := []byte{compactTag, fID, 16}
	noKind = append(noKind, make([]byte, 16)...)
	noKind = binary.BigEndian.AppendUint32(noKind, crc(noKind))
	if _, _, err := testBox.decodeRecord(key, noKind); !errors.Is(err, errCorrupt) {
		t.Fatalf("no kind: %v", err)
	}
	// An unknown field (a later version's) is skipped.
	later := append([]byte{compactTag}, []byte{fKind, 1, 'k', fIDText, 1, 'x', 99, 2, 0, 0}...)
	later = binary.BigEndian.AppendUint32(later, crc(later))
	if _, got, err := testBox.decodeRecord(key, later); err != nil || got.Kind != "k" || got.ID != "x" {
		t.Fatalf("unknown field: %+v, %v", got, err)
	}
}

// TestLegacyJSONRecord: records older versions wrote stay readable.
func TestLegacyJSONRecord(t *testing.T) {
	v := []byte(`{"id":"00112233445566770000000000000001","kind":"consent","payload":"eyJuIjoxfQ==","created":"2025-03-01T09:00:01Z","attempts":2}`)
	_, r, err := testBox.decodeRecord(binary.BigEndian.AppendUint64(nil, 1), v)
	if err != nil || r.Kind != "consent" || string(r.Payload) != `{"n":1}` || r.Attempts != 2 {
		t.Fatalf("%+v, %v", r, err)
	}
}
