package outbox

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/aslcns/totem/internal/asciiset"
	"github.com/aslcns/totem/sync/protocol"
	fastjson "github.com/segmentio/encoding/json"
	bolt "go.etcd.io/bbolt"
)

// Stored forms of an entry, told apart by their first byte:
//
//	'c'  the compact record every version since this one writes: then
//	     fields, each a tag byte, a uvarint length and that many bytes,
//	     and last the CRC-32C (Castagnoli) of all that precedes it,
//	     big-endian. Unknown tags are skipped; a record without id or
//	     kind, with a truncated field or a wrong checksum is corrupt.
//	'{'  a JSON object, written by older versions; still read.
//	'v'  a void: the 16-byte raw id, then the reason (ASCII).
//
// The compact record is about 40% smaller than the JSON one for a 512-byte
// payload (no base64, binary times) and several times cheaper to encode
// and decode; the checksum catches a damaged record JSON would often have
// read as another valid one.

// codec is how this database's records are stored and found: the ids it
// assigns (a salt and the seq, encrypted with its id key from idFrom on),
// payloads sealed with the keyring, records encoded without the id they
// can recompute. The zero codec has no id key and no keyring.
type codec struct {
	salt   [8]byte
	idc    cipher.Block // ids of seq ≥ idFrom; nil: all in clear
	idFrom uint64
	keys   *Keyring
	marks  *marks // attempt marks not yet written (marks.go); nil: none
}

// load reads the ids' salt, key and start from the database.
func (c *codec) load(tx *bolt.Tx) error {
	seq := tx.Bucket(bucketSeq)
	copy(c.salt[:], seq.Get(keySalt))
	c.idFrom = binary.BigEndian.Uint64(seq.Get(keyIDFrom))
	var err error
	c.idc, err = aes.NewCipher(seq.Get(keyIDKey))
	return err
}

// record is the stored form of an Entry; Seq is the key, Done and
// quarantine the bucket. A sealed payload is in Key, Nonce and Sealed;
// Raw holds the bytes of a record that could not be decoded.
type record struct {
	ID            string           `json:"id"`
	Kind          string           `json:"kind"`
	Payload       []byte           `json:"payload,omitempty"`
	Key           uint32           `json:"key,omitempty"`
	Nonce         []byte           `json:"nonce,omitempty"`
	Sealed        []byte           `json:"sealed,omitempty"`
	Created       time.Time        `json:"created"`
	Expires       time.Time        `json:"expires,omitzero"`
	Attempts      int              `json:"attempts,omitempty"`
	LastSent      time.Time        `json:"last_sent,omitzero"`
	Result        *protocol.Result `json:"result,omitempty"`
	Completed     time.Time        `json:"completed,omitzero"`
	Quarantine    string           `json:"quarantine,omitempty"`
	QuarantinedAt time.Time        `json:"quarantined_at,omitzero"`
	Raw           []byte           `json:"raw,omitempty"`
	// Voided is set on a quarantined entry a void replaced in the queue:
	// its sequence number is spent, it can never be requeued.
	Voided bool            `json:"voided,omitempty"`
	Stamp  *protocol.Stamp `json:"stamp,omitempty"`

	void string // a void's reason, from the compact encoding; never JSON
}

// compactTag is the first byte of a compact record.
const compactTag = 'c'

// Field tags of the compact record.
const (
	fID            = 1  // 16 raw bytes: an id of 32 lowercase hex digits
	fIDText        = 2  // any other id, as it is
	fKind          = 3  // string
	fPayload       = 4  // bytes
	fKey           = 5  // uvarint
	fNonce         = 6  // bytes
	fSealed        = 7  // bytes
	fCreated       = 8  // time
	fExpires       = 9  // time
	fAttempts      = 10 // uvarint
	fLastSent      = 11 // time
	fResult        = 12 // protocol.Result as JSON
	fCompleted     = 13 // time
	fQuarantine    = 14 // string
	fQuarantinedAt = 15 // time
	fRaw           = 16 // bytes
	fVoided        = 17 // empty: present means true
	fStamp         = 18 // stamp
	fOwnID         = 19 // empty: the id is the database's salt and the seq
)

// A time is its Unix seconds (varint) and nanoseconds (uvarint), read back
// in UTC (readers show times with Local); the zero time is left out. A stamp is its boot id (uvarint length, bytes), its
// monotonic offset (varint), a flags byte (1: synchronised, 2: wall time
// present) and, when present, the wall time.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// errCorrupt is wrapped by every error of the compact decoder.
var errCorrupt = errors.New("corrupt record")

// encode returns the compact form of r. own says that r.ID is the id the
// outbox gives its seq (its salt and the seq): then the id is left out
// and the decoder puts it back.
func (r *record) encode(own bool) ([]byte, error) {
	var res []byte
	if r.Result != nil {
		var err error
		if res, err = fastjson.Marshal(r.Result); err != nil {
			return nil, err
		}
	}
	n := 1 + 4 + 64 + len(r.ID) + len(r.Kind) + len(r.Payload) + len(r.Nonce) + len(r.Sealed) +
		len(res) + len(r.Quarantine) + len(r.Raw)
	if r.Stamp != nil {
		n += 32 + len(r.Stamp.Boot)
	}
	b := make([]byte, 1, n)
	b[0] = compactTag
	if own {
		b = appendField(b, fOwnID, nil)
	} else if raw, ok := rawID(r.ID); ok {
		b = appendField(b, fID, raw[:])
	} else {
		b = appendField(b, fIDText, []byte(r.ID))
	}
	b = appendField(b, fKind, []byte(r.Kind))
	if r.Payload != nil {
		b = appendField(b, fPayload, r.Payload)
	}
	if r.Key != 0 {
		b = appendField(b, fKey, binary.AppendUvarint(nil, uint64(r.Key)))
	}
	if r.Nonce != nil {
		b = appendField(b, fNonce, r.Nonce)
	}
	if r.Sealed != nil {
		b = appendField(b, fSealed, r.Sealed)
	}
	b = appendTime(b, fCreated, r.Created)
	b = appendTime(b, fExpires, r.Expires)
	if r.Attempts > 0 {
		b = appendField(b, fAttempts, binary.AppendUvarint(nil, uint64(r.Attempts)))
	}
	b = appendTime(b, fLastSent, r.LastSent)
	if res != nil {
		b = appendField(b, fResult, res)
	}
	b = appendTime(b, fCompleted, r.Completed)
	if r.Quarantine != "" {
		b = appendField(b, fQuarantine, []byte(r.Quarantine))
	}
	b = appendTime(b, fQuarantinedAt, r.QuarantinedAt)
	if r.Raw != nil {
		b = appendField(b, fRaw, r.Raw)
	}
	if r.Voided {
		b = appendField(b, fVoided, nil)
	}
	if s := r.Stamp; s != nil {
		v := binary.AppendUvarint(nil, uint64(len(s.Boot)))
		v = append(v, s.Boot...)
		v = binary.AppendVarint(v, s.Mono)
		var flags byte
		if s.Synced {
			flags |= 1
		}
		if !s.Wall.IsZero() {
			flags |= 2
		}
		v = append(v, flags)
		if !s.Wall.IsZero() {
			v = appendTimeValue(v, s.Wall)
		}
		b = appendField(b, fStamp, v)
	}
	return binary.BigEndian.AppendUint32(b, crc(b)), nil
}

// encodeRecord is r.encode, leaving out an id the outbox gave seq.
func (c *codec) encodeRecord(seq uint64, r *record) ([]byte, error) {
	return r.encode(r.ID == c.idFor(seq))
}

// rawID returns the 16 bytes of an id of 32 lowercase hex digits.
func rawID(id string) (raw [16]byte, ok bool) {
	if !asciiset.LowerHex.Valid(id, 32, 32) {
		return raw, false
	}
	hex.Decode(raw[:], []byte(id))
	return raw, true
}

func appendField(b []byte, tag byte, v []byte) []byte {
	b = append(b, tag)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendTime(b []byte, tag byte, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	var v [2 * binary.MaxVarintLen64]byte
	return appendField(b, tag, appendTimeValue(v[:0], t))
}

func appendTimeValue(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// decodeCompact decodes a compact record; own reports an id left out (the
// database's salt and the seq). It copies what it keeps: val may be a
// bbolt value, valid only during its transaction.
func decodeCompact(val []byte) (r record, own bool, err error) {
	if len(val) < 1+4 || val[0] != compactTag {
		return r, false, errCorrupt
	}
	body, sum := val[:len(val)-4], binary.BigEndian.Uint32(val[len(val)-4:])
	if crc(body) != sum {
		return r, false, fmt.Errorf("%w: checksum", errCorrupt)
	}
	var haveID, haveKind bool
	for p := body[1:]; len(p) > 0; {
		tag := p[0]
		n, k := binary.Uvarint(p[1:])
		if k <= 0 || n > uint64(len(p)-1-k) {
			return r, false, fmt.Errorf("%w: field %d truncated", errCorrupt, tag)
		}
		v := p[1+k : 1+k+int(n)]
		p = p[1+k+int(n):]
		var err error
		switch tag {
		case fID:
			if len(v) != 16 {
				return r, false, fmt.Errorf("%w: id", errCorrupt)
			}
			r.ID, haveID = hex.EncodeToString(v), true
		case fIDText:
			r.ID, haveID = string(v), true
		case fOwnID:
			own, haveID = true, true
		case fKind:
			r.Kind, haveKind = string(v), true
		case fPayload:
			r.Payload = clone(v)
		case fKey:
			var key uint64
			key, err = uvarintValue(v, 1<<32-1)
			r.Key = uint32(key)
		case fNonce:
			r.Nonce = clone(v)
		case fSealed:
			r.Sealed = clone(v)
		case fCreated:
			r.Created, err = timeValue(v)
		case fExpires:
			r.Expires, err = timeValue(v)
		case fAttempts:
			var a uint64
			a, err = uvarintValue(v, 1<<31-1)
			r.Attempts = int(a)
		case fLastSent:
			r.LastSent, err = timeValue(v)
		case fResult:
			r.Result = new(protocol.Result)
			err = fastjson.Unmarshal(v, r.Result)
		case fCompleted:
			r.Completed, err = timeValue(v)
		case fQuarantine:
			r.Quarantine = string(v)
		case fQuarantinedAt:
			r.QuarantinedAt, err = timeValue(v)
		case fRaw:
			r.Raw = clone(v)
		case fVoided:
			r.Voided = true
		case fStamp:
			r.Stamp, err = stampValue(v)
		}
		if err != nil {
			return record{}, false, fmt.Errorf("%w: field %d: %v", errCorrupt, tag, err)
		}
	}
	if !haveID || !haveKind {
		return record{}, false, fmt.Errorf("%w: no id or kind", errCorrupt)
	}
	return r, own, nil
}

// clone copies v; an empty field stays a non-nil empty slice, as JSON
// decoded it.
func clone(v []byte) []byte { return append(make([]byte, 0, len(v)), v...) }

// uvarintValue reads a field that is one uvarint no greater than max.
func uvarintValue(v []byte, max uint64) (uint64, error) {
	x, k := binary.Uvarint(v)
	if k <= 0 || k != len(v) || x > max {
		return 0, errCorrupt
	}
	return x, nil
}

func timeValue(v []byte) (time.Time, error) {
	t, k := readTime(v)
	if k != len(v) {
		return time.Time{}, errCorrupt
	}
	return t, nil
}

// readTime reads a time from the start of v; it returns how many bytes it
// used, or 0.
func readTime(v []byte) (time.Time, int) {
	s, k := binary.Varint(v)
	if k <= 0 {
		return time.Time{}, 0
	}
	ns, m := binary.Uvarint(v[k:])
	if m <= 0 || ns >= 1e9 {
		return time.Time{}, 0
	}
	return time.Unix(s, int64(ns)).UTC(), k + m
}

func stampValue(v []byte) (*protocol.Stamp, error) {
	n, k := binary.Uvarint(v)
	if k <= 0 || n > uint64(len(v)-k) {
		return nil, errCorrupt
	}
	s := &protocol.Stamp{Boot: string(v[k : k+int(n)])}
	v = v[k+int(n):]
	mono, k := binary.Varint(v)
	if k <= 0 || len(v) < k+1 {
		return nil, errCorrupt
	}
	s.Mono = mono
	flags := v[k]
	v = v[k+1:]
	s.Synced = flags&1 != 0
	if flags&2 != 0 {
		t, k := readTime(v)
		if k == 0 {
			return nil, errCorrupt
		}
		s.Wall, v = t, v[k:]
	}
	if len(v) != 0 || flags&^3 != 0 {
		return nil, errCorrupt
	}
	return s, nil
}

// voidTag is the first byte of a stored void.
const voidTag = 'v'

// voidValue is the stored form of a void for the entry id (32 hex digits).
func voidValue(id, reason string) []byte {
	raw, _ := hex.DecodeString(id)
	v := make([]byte, 0, 1+16+len(reason))
	return append(append(append(v, voidTag), raw...), reason...)
}

// voidPayload is what a void carries to the hub.
func voidPayload(reason string) []byte {
	b, _ := json.Marshal(struct {
		Reason string `json:"reason"`
	}{reason})
	return b
}

// validReason reports whether a void's stored reason is a short lower-case
// word, so that its payload is plain JSON.
func validReason(b []byte) bool {
	if len(b) == 0 || len(b) > 16 {
		return false
	}
	for _, c := range b {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// decodeRecord decodes a stored entry. It never panics on bad bytes.
func (c *codec) decodeRecord(key, val []byte) (uint64, record, error) {
	if len(key) != 8 {
		return 0, record{}, fmt.Errorf("corrupt key %x", key)
	}
	seq := binary.BigEndian.Uint64(key)
	if len(val) > 17 && val[0] == voidTag && validReason(val[17:]) {
		reason := string(val[17:])
		return seq, record{ID: hex.EncodeToString(val[1:17]), Kind: protocol.KindVoid,
			Payload: voidPayload(reason), void: reason}, nil
	}
	if len(val) > 0 && val[0] == compactTag {
		r, own, err := decodeCompact(val)
		if err != nil {
			return seq, record{}, fmt.Errorf("entry %d: %w", seq, err)
		}
		if own {
			r.ID = c.idFor(seq)
		}
		return seq, r, nil
	}
	if len(val) == 0 || val[0] != '{' {
		return seq, record{}, fmt.Errorf("corrupt entry %d", seq)
	}
	var r record // written by an older version
	if err := json.Unmarshal(val, &r); err != nil {
		return seq, record{}, fmt.Errorf("entry %d: %w", seq, err)
	}
	return seq, r, nil
}
