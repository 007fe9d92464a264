package audit

import (
	"encoding/binary"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// clock is a settable time for the store.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func open(t *testing.T, c *clock) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := Open(path, Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return s, path
}

func fill(t *testing.T, s *Store, c *clock, n int) {
	t.Helper()
	for range n {
		c.t = c.t.Add(24 * time.Hour)
		if _, err := s.Append(Entry{Source: "t1", Actor: "console:ops-1", Action: "command", Detail: "name=status ok"}); err != nil {
			t.Fatal(err)
		}
	}
}

// tamper changes the stored records as an intruder with the file would:
// f returns the new value, nil to remove the record.
func tamper(t *testing.T, s *Store, path string, f func(seq uint64, rec []byte) []byte) *Store {
	t.Helper()
	s.Close()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		var keys [][]byte
		b.ForEach(func(k, _ []byte) error { keys = append(keys, append([]byte(nil), k...)); return nil })
		for _, k := range keys {
			nv := f(binary.BigEndian.Uint64(k), b.Get(k))
			if nv == nil {
				if err := b.Delete(k); err != nil {
					return err
				}
			} else if err := b.Put(k, nv); err != nil {
				return err
			}
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, Options{Now: s.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	return s2
}

func verify(t *testing.T, s *Store) (ok bool, broken uint64, problem string) {
	t.Helper()
	v, err := s.Verify()
	if err != nil {
		t.Fatal(err)
	}
	return v.OK, v.Broken, v.Problem
}

func TestChainVerifies(t *testing.T) {
	c := &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, _ := open(t, c)
	defer s.Close()
	fill(t, s, c, 5)
	if ok, _, p := verify(t, s); !ok {
		t.Fatalf("an untouched chain: %s", p)
	}
	recs, err := s.List(Filter{})
	if err != nil || len(recs) != 5 {
		t.Fatalf("List = %d records, %v", len(recs), err)
	}
	if recs[0].Prev != zeroHash || recs[1].Prev != recs[0].Hash || recs[0].Seq != 1 || recs[4].Seq != 5 {
		t.Fatalf("chain: %+v", recs)
	}
}

// Each way of tampering with the stored records is caught, naming the
// first broken record.
func TestVerifyCatchesTampering(t *testing.T) {
	cases := []struct {
		name   string
		f      func(seq uint64, rec []byte) []byte
		broken uint64
		want   string
	}{
		{"altered detail", func(seq uint64, rec []byte) []byte {
			if seq == 3 {
				var r Record
				json.Unmarshal(rec, &r)
				r.Detail = "name=void ok"
				rec, _ = json.Marshal(r)
			}
			return rec
		}, 3, "altered"},
		{"altered and rehashed", func(seq uint64, rec []byte) []byte {
			if seq == 3 {
				var r Record
				json.Unmarshal(rec, &r)
				r.Actor = "console:someone-else"
				r.Hash = HashOf(&r)
				rec, _ = json.Marshal(r)
			}
			return rec
		}, 4, "prev hash"},
		{"deleted in the middle", func(seq uint64, rec []byte) []byte {
			if seq == 2 {
				return nil
			}
			return rec
		}, 3, "missing"},
		{"deleted at the end", func(seq uint64, rec []byte) []byte {
			if seq == 5 {
				return nil
			}
			return rec
		}, 5, "missing"},
		{"deleted at the start", func(seq uint64, rec []byte) []byte {
			if seq == 1 {
				return nil
			}
			return rec
		}, 2, "missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			s, path := open(t, c)
			fill(t, s, c, 5)
			s = tamper(t, s, path, tc.f)
			ok, broken, problem := verify(t, s)
			if ok || broken != tc.broken || !strings.Contains(problem, tc.want) {
				t.Fatalf("verify = ok %v, broken %d, %q; want record %d, %q", ok, broken, problem, tc.broken, tc.want)
			}
		})
	}
}

// Purging what is older than the retention leaves a chain that verifies,
// starting from the anchor; a retention below six months is refused.
func TestPurgeKeepsChainVerifiable(t *testing.T) {
	c := &clock{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, path := open(t, c)
	fill(t, s, c, 300) // one a day
	if _, err := s.Purge(5); err == nil {
		t.Fatal("a retention of 5 months was accepted")
	}
	n, err := s.Purge(6)
	if err != nil {
		t.Fatal(err)
	}
	if n < 100 || n > 150 {
		t.Fatalf("purged %d of 300 daily records with 6 months", n)
	}
	v, err := s.Verify()
	if err != nil || !v.OK {
		t.Fatalf("verify after purge: %+v, %v", v, err)
	}
	if v.Purged != uint64(n) || v.First != uint64(n)+1 || v.Last != 301 {
		t.Fatalf("verify after purge: %+v", v)
	}
	recs, _ := s.List(Filter{Action: ActionPurge})
	if len(recs) != 1 || recs[0].PurgedSeq != uint64(n) || recs[0].PurgedCount != uint64(n) {
		t.Fatalf("anchor: %+v", recs)
	}
	// A second purge later: the anchor moves and counts both.
	c.t = c.t.Add(30 * 24 * time.Hour)
	m, err := s.Purge(6)
	if err != nil || m == 0 {
		t.Fatalf("second purge: %d, %v", m, err)
	}
	if v, _ := s.Verify(); !v.OK || v.Purged != uint64(n+m) {
		t.Fatalf("verify after a second purge: %+v", v)
	}
	// Removing the first record kept is still caught.
	first := uint64(n+m) + 1
	s = tamper(t, s, path, func(seq uint64, rec []byte) []byte {
		if seq == first {
			return nil
		}
		return rec
	})
	if ok, broken, _ := verify(t, s); ok || broken != first+1 {
		t.Fatalf("first kept record removed: ok %v broken %d, want %d", ok, broken, first+1)
	}
}

// An operation's entry is recorded once however often it arrives.
func TestAppendOncePerOperation(t *testing.T) {
	c := &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, _ := open(t, c)
	defer s.Close()
	e := Entry{Source: "t1", Actor: "operator:6090012345678000", Action: "operator_login", OpID: "op-1"}
	a, err := s.Append(e)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Append(e)
	if err != nil || a.Seq != b.Seq || a.Hash != b.Hash {
		t.Fatalf("second append: %+v, %v; first %+v", b, err, a)
	}
	e.Source = "t2" // another totem's op id space
	if c, _ := s.Append(e); c.Seq == a.Seq {
		t.Fatal("another totem's operation with the same id was taken for the first")
	}
	if recs, _ := s.List(Filter{}); len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
}

func TestListFilters(t *testing.T) {
	c := &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, _ := open(t, c)
	defer s.Close()
	fill(t, s, c, 3)
	c.t = c.t.Add(time.Hour)
	s.Append(Entry{Source: SourceHub, Actor: "console:ops-2", Action: "command", Detail: "name=unlock"})
	mid := c.t
	c.t = c.t.Add(time.Hour)
	s.Append(Entry{Source: "t2", Actor: "operator:6090000000000001", Action: "operator_logout"})
	for _, tc := range []struct {
		f    Filter
		want int
	}{
		{Filter{}, 5}, {Filter{Source: "t1"}, 3}, {Filter{Actor: "ops-2"}, 1}, {Filter{Action: "operator_logout"}, 1},
		{Filter{Since: mid}, 2}, {Filter{Until: mid}, 3}, {Filter{Max: 2}, 2},
	} {
		recs, err := s.List(tc.f)
		if err != nil || len(recs) != tc.want {
			t.Errorf("List(%+v) = %d, %v; want %d", tc.f, len(recs), err, tc.want)
		}
	}
	recs, _ := s.List(Filter{Max: 2})
	if recs[1].Seq != 5 || recs[0].Seq != 4 {
		t.Errorf("Max 2 gave %d, %d; want the newest, oldest first", recs[0].Seq, recs[1].Seq)
	}
}

// No PIN, PUK, CIP or CF reaches a record in clear, whatever the caller
// put in the actor or the detail; serials and TEAM codes stay.
func TestScrub(t *testing.T) {
	const (
		cf     = "RSSMRA80A01H501U"
		pin    = "97315824"
		puk    = "55667781"
		cip    = "4455667788"
		serial = "6090012345678000"
		team   = "80380000500012345678"
	)
	c := &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, _ := open(t, c)
	defer s.Close()
	for _, d := range []string{
		"citizen " + cf + " pin " + pin, "pin=" + pin, "PUK: " + puk, "cip=" + cip, "cf=" + strings.ToLower(cf),
		"revoca cip " + cip + " team " + team, "card " + serial,
	} {
		if _, err := s.Append(Entry{Source: "t1", Actor: "operator:" + serial + " " + cf, Action: "assisted_op", Detail: d}); err != nil {
			t.Fatal(err)
		}
	}
	recs, _ := s.List(Filter{})
	all, _ := json.Marshal(recs)
	for _, secret := range []string{cf, strings.ToLower(cf), pin, puk, cip} {
		if strings.Contains(string(all), secret) {
			t.Errorf("a record carries %q in clear", secret)
		}
	}
	for _, kept := range []string{serial, team} {
		if !strings.Contains(string(all), kept) {
			t.Errorf("%q was masked: it identifies, it is no secret", kept)
		}
	}
	if v, _ := s.Verify(); !v.OK {
		t.Fatalf("scrubbed records do not verify: %+v", v)
	}
}
