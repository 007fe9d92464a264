package faults

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/aslcns/totem/sync/uplink"
	bolt "go.etcd.io/bbolt"
)

// kindTelemetry is a kind the outbox sheds first; the reference CMS does
// not know it and rejects it (UNKNOWN_KIND), which is a final answer.
const kindTelemetry = "telemetry"

// checkSeq asserts that the hub's audit holds every sequence number from 1
// to last exactly once and in order, that each citizen operation in
// citizens (in enqueue order) was applied once and accepted, that voids
// are recorded as OP_VOID, and returns the counts per kind.
func (c *central) checkSeq(last uint64, citizens []string) map[string]int {
	c.t.Helper()
	audit, err := c.store.Audit()
	if err != nil {
		c.t.Fatal(err)
	}
	kinds := map[string]int{}
	pos := map[string]int{}
	for i, a := range audit {
		if a.Seq != uint64(i+1) {
			c.t.Fatalf("audit[%d] has seq %d: a hole or a repeat", i, a.Seq)
		}
		kinds[a.Kind]++
		switch a.Kind {
		case cms.KindConsent:
			if !a.Accepted {
				c.t.Fatalf("citizen op seq %d rejected: %v", a.Seq, a.Codes)
			}
		case cms.KindVoid:
			if a.Accepted || len(a.Codes) != 1 || a.Codes[0] != cms.CodeVoid {
				c.t.Fatalf("void seq %d recorded as %+v", a.Seq, a)
			}
		}
		if _, dup := pos[a.OpID]; dup {
			c.t.Fatalf("op %s applied twice", a.OpID)
		}
		pos[a.OpID] = i
	}
	if uint64(len(audit)) != last {
		c.t.Fatalf("audit has %d records, the totem assigned %d sequence numbers", len(audit), last)
	}
	prev := -1
	for _, id := range citizens {
		p, ok := pos[id]
		if !ok {
			c.t.Fatalf("acknowledged op %s lost", id)
		}
		if audit[p].Kind != cms.KindConsent {
			c.t.Fatalf("acknowledged op %s recorded as %s", id, audit[p].Kind)
		}
		if p <= prev {
			c.t.Fatalf("acknowledged op %s applied out of order", id)
		}
		prev = p
	}
	if last, err := c.store.LastSeq(totemID); err != nil || last != uint64(len(audit)) {
		c.t.Fatalf("ledger at %d, %v", last, err)
	}
	return kinds
}

// startUplink runs an uplink for box against url until the returned stop.
func startUplink(t *testing.T, c *central, url string, box *outbox.Outbox) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	logs := &tailBuffer{}
	up := uplink.New(uplink.Options{Totem: totemID, URL: url, TLS: c.tls(), Username: totemID,
		Password: c.totem.Password, Outbox: box, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		ResendAfter: time.Second, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("uplink log ends:\n%s", logs.String())
		}
	})
	done := make(chan error, 1)
	go func() { done <- up.Run(ctx) }()
	return func() { cancel(); <-done }
}

// awaitDrained waits, bounded, until box has nothing left to send.
func awaitDrained(t *testing.T, box *outbox.Outbox) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	synctest.AwaitDrained(t, ctx, box, "")
}

// TestDiskQuota fills a totem's outbox, bounded by a small MaxSize, while
// its link is down: the alarm is raised first, telemetry is shed (each
// shed entry leaves a void) before any citizen operation is refused, a
// refused one stores nothing; then the link comes back and everything
// acknowledged is applied exactly once, in order, and enqueue works again.
func TestDiskQuota(t *testing.T) {
	c := newCentral(t, mochi)
	c.startHub()
	px := newProxy(t, c.brokerAddr)
	px.cut()
	alarms := make(chan outbox.Usage, 16)
	box, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), &outbox.Options{MaxSize: 512 << 10,
		Classes: map[string]outbox.Class{kindTelemetry: outbox.ClassTelemetry},
		OnAlarm: func(u outbox.Usage) { alarms <- u }})
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	stop := startUplink(t, c, c.scheme()+px.l.Addr().String(), box)
	defer stop()

	p := synctest.ConsentPayload()
	var citizens []string
	telemetry, refused, telRefused := 0, 0, 0
	var atRefusal outbox.Usage
	citizensAtRefusal := 0
	for i := 0; i < 20000 && refused < 10; i++ {
		if _, err := box.Enqueue(kindTelemetry, fmt.Appendf(nil, `{"uptime_s":%d}`, i), time.Now(), time.Time{}); err == nil {
			telemetry++
		} else if errors.Is(err, outbox.ErrFull) {
			telRefused++
		} else {
			t.Fatal(err)
		}
		before, _ := box.Stats()
		e, err := box.Enqueue(cms.KindConsent, p, time.Now(), time.Time{})
		switch {
		case err == nil:
			citizens = append(citizens, e.ID)
		case errors.Is(err, outbox.ErrFull):
			if refused == 0 {
				atRefusal, _ = box.Usage()
				citizensAtRefusal = len(citizens)
			}
			refused++
			if after, _ := box.Stats(); after.LastSeq != before.LastSeq {
				t.Fatalf("a refused operation used seq %d", after.LastSeq)
			}
		default:
			t.Fatal(err)
		}
	}
	if refused == 0 {
		t.Fatal("the quota was never reached")
	}
	// Telemetry went first: when the first citizen operation was refused,
	// every pending entry was a citizen's.
	// (Later ones may still fit: each new telemetry entry sheds an older
	// one, and the voids are smaller than what they replace.)
	if atRefusal.Pending != citizensAtRefusal || atRefusal.Shed == 0 {
		t.Fatalf("at the first refusal: %+v, %d citizen ops acknowledged", atRefusal, citizensAtRefusal)
	}
	// The alarm came before the limit (it is delivered from the outbox's
	// own goroutine: wait for it, bounded).
	select {
	case u := <-alarms:
		if !u.Alarm || u.Fraction >= 1 || u.Shed > atRefusal.Shed {
			t.Fatalf("alarm %+v", u)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no alarm")
	}
	px.restore()
	awaitDrained(t, box)
	for range 5 { // room again
		e, err := box.Enqueue(cms.KindConsent, p, time.Now(), time.Time{})
		if err != nil {
			t.Fatalf("enqueue after the drain: %v", err)
		}
		citizens = append(citizens, e.ID)
	}
	awaitDrained(t, box)
	q, _ := box.Stats()
	kinds := c.checkSeq(q.LastSeq, citizens)
	if kinds[cms.KindConsent] != len(citizens) {
		t.Fatalf("%d citizen ops applied, %d acknowledged", kinds[cms.KindConsent], len(citizens))
	}
	t.Logf("disk quota (MaxSize 512 KiB, link down): %d citizen ops acknowledged, %d refused (ErrFull), %d telemetry enqueued "+
		"(%d shed as voids, %d refused); at the hub: %d applied once in order, %d telemetry, %d voids; 0 lost, 0 applied twice",
		len(citizens), refused, telemetry, atRefusal.Shed, telRefused, kinds[cms.KindConsent], kinds[kindTelemetry], kinds[cms.KindVoid])
}

// TestCorruptRecord stops a totem with a backlog, corrupts queued records
// on disk — through bbolt and as raw bytes of the file, values that no
// longer decode and envelopes that decode but the hub would refuse — and
// restarts it: the corrupt records are quarantined where a technician
// sees them, voids settle their sequence numbers at the hub, and every
// other operation is applied exactly once, in order.
func TestCorruptRecord(t *testing.T) {
	c := newCentral(t, mochi)
	c.startHub()
	path := filepath.Join(t.TempDir(), "outbox.db")
	box, err := outbox.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := synctest.ConsentPayload()
	var all []outbox.Entry
	for range 40 {
		e, err := box.Enqueue(cms.KindConsent, p, time.Now(), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, e)
	}
	box.Close()

	// Through bbolt: values of three records.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A compact record is a tag byte, fields (tag, uvarint length,
	// bytes) and a CRC-32C: edit a field's bytes and put the checksum
	// right, so that the record decodes and only the hub would refuse it.
	hostile := func(e outbox.Entry, from, to []byte) []byte {
		var v []byte
		db.View(func(tx *bolt.Tx) error {
			v = bytes.Clone(tx.Bucket([]byte("pending")).Get(key(e.Seq)))
			return nil
		})
		if len(v) < 5 || v[0] != 'c' || !bytes.Contains(v, from) {
			t.Fatalf("record %d has no %q", e.Seq, from)
		}
		v = bytes.Replace(v[:len(v)-4], from, to, 1)
		return binary.BigEndian.AppendUint32(v, crc32.Checksum(v, crc32.MakeTable(crc32.Castagnoli)))
	}
	field := func(tag byte, start []byte) []byte { // a payload field's first bytes
		return append(binary.AppendUvarint([]byte{tag}, uint64(len(p))), start...)
	}
	ownID := []byte{19, 0} // the id the outbox derives from the seq
	rawID := func(e outbox.Entry) []byte {
		b, _ := hex.DecodeString(e.ID)
		return append([]byte{1, 16}, b...)
	}
	bad := map[uint64][]byte{
		all[4].Seq:  []byte("\x00\x13garbage"),                                                    // does not decode
		all[19].Seq: hostile(all[19], []byte("\x03\x07consent"), []byte("\x03\x0dconsent; drop")), // kind the hub refuses
		all[26].Seq: hostile(all[26], field(4, p[:1]), field(4, []byte("["))),                     // payload no longer an object
		all[33].Seq: hostile(all[33], ownID, rawID(all[0])),                                       // another entry's id
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for seq, v := range bad {
			if err := tx.Bucket([]byte("pending")).Put(key(seq), v); err != nil {
				return err
			}
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	// As raw bytes of the file: the record's first byte, in every page
	// that holds a copy of it.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// (a leaf holds a key and its value one after the other)
	mark := append(key(all[11].Seq), 'c', 19, 0)
	n := bytes.Count(raw, mark)
	if n == 0 {
		t.Fatal("record 12 not found in the file")
	}
	raw = bytes.ReplaceAll(raw, mark, append(key(all[11].Seq), 0xff, 19, 0))
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	voided := map[uint64]bool{all[4].Seq: true, all[11].Seq: true, all[19].Seq: true, all[26].Seq: true, all[33].Seq: true}

	box, err = outbox.Open(path, nil)
	if err != nil {
		t.Fatalf("reopen after corruption: %v", err)
	}
	defer box.Close()
	stop := startUplink(t, c, c.url(), box)
	defer stop()
	awaitDrained(t, box)
	var citizens []string
	for _, e := range all {
		if !voided[e.Seq] {
			citizens = append(citizens, e.ID)
		}
	}
	for range 5 { // the queue moves on
		e, err := box.Enqueue(cms.KindConsent, p, time.Now(), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		citizens = append(citizens, e.ID)
	}
	awaitDrained(t, box)

	// The technician sees them: quarantine, and the send log.
	qs, err := box.Quarantined(100)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	for _, q := range qs {
		if !voided[q.Seq] {
			t.Fatalf("seq %d quarantined", q.Seq)
		}
		reasons[q.Quarantine]++
	}
	if len(qs) != len(voided) || reasons[outbox.ReasonCorrupt] != 2 || reasons[outbox.ReasonInvalid] != 3 {
		t.Fatalf("quarantined %+v", qs)
	}
	log, _ := box.Recent(100)
	inLog := 0
	for _, e := range log {
		if e.Quarantine != "" {
			inLog++
		}
	}
	if inLog != len(voided) {
		t.Fatalf("send log shows %d quarantined entries", inLog)
	}
	q, _ := box.Stats()
	kinds := c.checkSeq(q.LastSeq, citizens)
	if kinds[cms.KindVoid] != len(voided) {
		t.Fatalf("%d voids at the hub", kinds[cms.KindVoid])
	}
	t.Logf("corrupt records: %d injected (%d via bbolt, 1 as raw bytes in %d pages); quarantined %v; at the hub: %d applied once in order, "+
		"%d voids (OP_VOID), ledger at %d; 0 lost, 0 applied twice", len(voided), len(bad), n, reasons, kinds[cms.KindConsent], kinds[cms.KindVoid], q.LastSeq)
}

func key(seq uint64) []byte {
	return []byte{byte(seq >> 56), byte(seq >> 48), byte(seq >> 40), byte(seq >> 32), byte(seq >> 24), byte(seq >> 16), byte(seq >> 8), byte(seq)}
}
