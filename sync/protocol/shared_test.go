package protocol

import (
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
)

// The types declared once in cms keep the wire's shape: the policy the
// hub publishes and a totem's clock stamp.
func TestSharedTypesWireShape(t *testing.T) {
	b, err := Marshal(Policy{V: Version, Policy: cms.Policy{ID: "fse-2020", Consents: []ConsentDef{{Code: "a", Label: "A"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"v":1,"id":"fse-2020","consents":[{"code":"a","label":"A"}]}`; string(b) != want {
		t.Errorf("policy %s, want %s", b, want)
	}
	p, err := DecodePolicy(b)
	if err != nil || p.ID != "fse-2020" || len(p.Consents) != 1 || p.Consents[0].Label != "A" {
		t.Fatalf("decoded %+v %v", p, err)
	}
	b, err = Marshal(Stamp{Boot: "b", Mono: 5, Wall: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Synced: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"boot":"b","mono_ms":5,"wall":"2026-01-02T03:04:05Z","synced":true}`; string(b) != want {
		t.Errorf("stamp %s, want %s", b, want)
	}
	if KindVoid != "void" {
		t.Errorf("KindVoid %q", KindVoid)
	}
}
