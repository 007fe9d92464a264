package protocol

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDecodeAuditEntry(t *testing.T) {
	ok := `{"actor":"operator:6090012345678000","action":"operator_login","at":"2026-12-06T05:00:00Z"}`
	if e, err := DecodeAuditEntry([]byte(ok)); err != nil || e.Action != "operator_login" {
		t.Fatalf("DecodeAuditEntry(ok) = %+v, %v", e, err)
	}
	for _, bad := range []string{
		`{"actor":"","action":"x"}`, `{"actor":"a","action":"Bad Action"}`, `{"actor":"a"}`, `[]`, `{`,
		`{"actor":"a","action":"x","detail":"` + strings.Repeat("d", MaxAuditDetail+1) + `"}`,
		`{"actor":"` + strings.Repeat("a", MaxAuditActor+1) + `","action":"x"}`,
	} {
		if _, err := DecodeAuditEntry([]byte(bad)); err == nil {
			t.Errorf("DecodeAuditEntry(%.60s) accepted", bad)
		}
	}
}

func FuzzDecodeAuditEntry(f *testing.F) {
	f.Add([]byte(`{"actor":"operator:6090012345678000","action":"operator_login","at":"2026-12-06T05:00:00Z"}`))
	f.Add([]byte(`{"actor":"console:ops-1","action":"command","detail":"name=ping id=0123456789abcdef role=ops ok","at":"2026-12-06T05:00:00Z"}`))
	f.Add([]byte(`{"actor":"x","action":"y","detail":"\u00e8\ud800"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeAuditEntry(b)
		if err != nil {
			return
		}
		if err := e.Check(); err != nil {
			t.Fatalf("decoded an entry Check refuses: %v", err)
		}
		again, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		e2, err := DecodeAuditEntry(again)
		if err != nil || *e2 != *e {
			t.Fatalf("round trip: %+v, %v; want %+v", e2, err, e)
		}
	})
}
