package outbox

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/protocol"
	bolt "go.etcd.io/bbolt"
)

// An id must not be predictable from another: a totem that knows its
// neighbour's next ids could send them first. Before ids were keyed, an id
// was the database's salt and the seq, so the next id was the last one
// plus one. Ids assigned that way by an older version still work.
func TestIDsUnpredictableOldOnesStillRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	o, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	// What an older version did: no id key, ids in clear.
	if err := o.db.Update(func(tx *bolt.Tx) error {
		seq := tx.Bucket(bucketSeq)
		if err := seq.Delete(keyIDKey); err != nil {
			return err
		}
		return seq.Delete(keyIDFrom)
	}); err != nil {
		t.Fatal(err)
	}
	o.idc = nil
	var old []Entry
	for range 2 {
		e, err := o.Enqueue("consent", []byte(`{"n":1}`), t0, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		old = append(old, e)
	}
	if raw, _ := hex.DecodeString(old[1].ID); !bytes.Equal(raw[:8], o.salt[:]) || binary.BigEndian.Uint64(raw[8:]) != 2 {
		t.Fatalf("the old scheme's id %s", old[1].ID)
	}
	o.Close()

	if o, err = Open(path, nil); err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	var ids []string
	for range 3 {
		e, err := o.Enqueue("consent", []byte(`{"n":2}`), t0, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
		raw, _ := hex.DecodeString(e.ID)
		if len(e.ID) != 32 || bytes.Contains(raw, o.salt[:]) || bytes.Contains(raw, binary.BigEndian.AppendUint64(nil, e.Seq)) {
			t.Fatalf("id %s of seq %d shows the salt or the seq", e.ID, e.Seq)
		}
		if g, err := o.Get(e.ID); err != nil || g.Seq != e.Seq {
			t.Fatalf("get %s: %+v, %v", e.ID, g, err)
		}
	}
	// Consecutive ids share no prefix (the old ones shared 8 bytes).
	for i := 1; i < len(ids); i++ {
		if ids[i][:16] == ids[i-1][:16] {
			t.Fatalf("ids %s and %s share a prefix", ids[i-1], ids[i])
		}
	}
	// The old ones: listed, found and settled under their ids.
	p, err := o.Pending(0, 10)
	if err != nil || len(p) != 5 || p[0].ID != old[0].ID || p[1].ID != old[1].ID || p[2].ID != ids[0] {
		t.Fatalf("pending %+v, %v", p, err)
	}
	for _, e := range old {
		res := &protocol.Result{V: protocol.Version, OpID: e.ID, Seq: e.Seq,
			Transport:  protocol.Transport{Status: protocol.TransportReceived, Protocol: "P", At: t0},
			Processing: protocol.Processing{Status: protocol.ProcessingAccepted}}
		if g, err := o.Record(res); err != nil || !g.Done {
			t.Fatalf("record %s: %+v, %v", e.ID, g, err)
		}
	}
	// An id in clear with a keyed seq names nothing.
	var forged [16]byte
	copy(forged[:], o.salt[:])
	binary.BigEndian.PutUint64(forged[8:], 3)
	if _, err := o.Get(hex.EncodeToString(forged[:])); err == nil {
		t.Fatal("an id in clear for a keyed seq was found")
	}
}
