package refcms

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/opkind"
)

// Every kind declared in cms/opkind has its validation and apply here: a
// kind declared and forgotten would be answered UNKNOWN_KIND at the hub.
func TestEveryKindApplies(t *testing.T) {
	for _, k := range opkind.All() {
		if appliers[k.Name] == nil {
			t.Errorf("kind %q is declared in cms/opkind but the reference CMS has no applier for it", k.Name)
		}
	}
	for name := range appliers {
		if _, ok := opkind.Lookup(name); !ok {
			t.Errorf("the reference CMS applies %q, which cms/opkind does not declare", name)
		}
	}
}

// fixtureKind is a kind that exists only in this test: its declaration
// and its applier are all a new kind needs on the CMS's side.
const fixtureKind = "test_fixture_cms"

func init() {
	opkind.Register(opkind.Kind{Name: fixtureKind, Flow: true})
	appliers[fixtureKind] = func(_ *Store, c *opCtx) (applied, error) {
		var req struct {
			Card cms.CardRef `json:"card"`
		}
		if json.Unmarshal(c.op.Payload, &req) != nil || req.Card.Serial == "" {
			return applied{rejects: badPayload()}, nil
		}
		return applied{}, event(c, req.Card.Serial, fixtureKind, cms.SelfService, "")
	}
}

// A kind registered by a test goes through the store like any other: the
// well-formed operation is accepted with a protocol number, the malformed
// one rejected with its validation's code.
func TestFixtureKindApplies(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "cms.db"))
	defer s.Close()
	outs, err := s.ApplyBatch(context.Background(), []cms.Op{
		{ID: id(1), Totem: "t1", Seq: 1, Kind: fixtureKind, Payload: []byte(`{"card":{"serial":"6090012345678000"}}`), Received: now},
		{ID: id(2), Totem: "t1", Seq: 2, Kind: fixtureKind, Payload: []byte(`{}`), Received: now},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !outs[0].Accepted || outs[0].Protocol == "" {
		t.Fatalf("fixture op: %+v", outs[0])
	}
	if outs[1].Accepted || len(outs[1].Rejects) != 1 || outs[1].Rejects[0].Code != cms.CodeBadPayload {
		t.Fatalf("malformed fixture op: %+v", outs[1])
	}
}

// An audit entry settles its sequence number, changes nothing and stays
// out of the Reportistica unless asked for by kind; a malformed one is
// rejected.
func TestAuditKind(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "cms.db"))
	defer s.Close()
	outs, err := s.ApplyBatch(context.Background(), []cms.Op{
		{ID: id(1), Totem: "t1", Seq: 1, Kind: cms.KindAudit, Payload: []byte(`{"actor":"operator:8090000000042006","action":"operator_login"}`), Received: now},
		{ID: id(2), Totem: "t1", Seq: 2, Kind: cms.KindAudit, Payload: []byte(`{"action":"x"}`), Received: now},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !outs[0].Accepted || outs[0].Protocol == "" || outs[1].Accepted || outs[1].Rejects[0].Code != cms.CodeBadPayload {
		t.Fatalf("outcomes %+v", outs)
	}
	if rows, err := s.Report(cms.ReportFilter{}); err != nil || len(rows) != 0 {
		t.Fatalf("Report() = %+v, %v: audit entries are not operations on cards", rows, err)
	}
	if rows, err := s.Report(cms.ReportFilter{Kind: cms.KindAudit}); err != nil || len(rows) != 1 || rows[0].Accepted != 1 {
		t.Fatalf("Report(kind audit) = %+v, %v", rows, err)
	}
}
