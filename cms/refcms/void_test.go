package refcms

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/aslcns/totem/cms"
)

// TestVoidSettlesASequence: a void is recorded as a rejected operation
// (OP_VOID) with a protocol number and an audit record, the ledger moves
// past it, and the next operation applies; a void for an id already
// applied gets the stored outcome.
func TestVoidSettlesASequence(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "cms.db"))
	defer s.Close()
	ctx := context.Background()
	void := func(n int, seq uint64) cms.Op {
		return cms.Op{ID: id(n), Totem: "t1", Seq: seq, Kind: cms.KindVoid, Payload: []byte(`{"reason":"corrupt"}`), Received: now}
	}
	outs, err := s.ApplyBatch(ctx, []cms.Op{
		consentOp(t, id(1), 1, goodRequest()),
		void(2, 2),
		consentOp(t, id(3), 3, goodRequest()),
		void(1, 1), // the totem voided an entry the hub had applied
	})
	if err != nil {
		t.Fatal(err)
	}
	if !outs[0].Accepted || outs[1].Accepted || outs[1].Protocol == "" || len(outs[1].Rejects) != 1 ||
		outs[1].Rejects[0].Code != cms.CodeVoid || !outs[2].Accepted || outs[2].OutOfOrder {
		t.Fatalf("outcomes %+v", outs)
	}
	if !outs[3].Duplicate || !outs[3].Accepted || outs[3].Protocol != outs[0].Protocol {
		t.Fatalf("void of an applied op: %+v", outs[3])
	}
	if last, _ := s.LastSeq("t1"); last != 3 {
		t.Fatalf("ledger at %d", last)
	}
	audit, _ := s.Audit()
	if len(audit) != 3 || audit[1].Kind != cms.KindVoid || audit[1].Accepted || audit[1].Codes[0] != cms.CodeVoid {
		t.Fatalf("audit %+v", audit)
	}
}
