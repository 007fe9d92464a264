package protocol

import (
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// AuditEntry is the payload of an operation of kind "audit" (cms/opkind):
// one action of a person at a totem (an operator's session, a console
// command, a technician's maintenance) on its way to the hub's audit
// through the outbox, so it survives offline periods and arrives once.
type AuditEntry struct {
	Actor  string    `json:"actor"`            // who: "operator:SERIAL", "console:KEY", "technician:ID"
	Action string    `json:"action"`           // what, lower_snake: "operator_login", "command"
	Detail string    `json:"detail,omitempty"` // the rest, never a PIN, PUK, CIP or CF in clear
	At     time.Time `json:"at"`               // the totem's clock: data only
}

// Limits of an AuditEntry's fields, in bytes.
const (
	MaxAuditActor  = 128
	MaxAuditAction = 32
	MaxAuditDetail = 1024
)

// Check reports whether e is well formed.
func (e *AuditEntry) Check() error {
	switch {
	case e.Actor == "" || len(e.Actor) > MaxAuditActor || !utf8.ValidString(e.Actor):
		return fmt.Errorf("audit: actor must be 1 to %d bytes of UTF-8", MaxAuditActor)
	case !validName(e.Action) || len(e.Action) > MaxAuditAction:
		return fmt.Errorf("audit: action must be a lower_snake name of at most %d bytes", MaxAuditAction)
	case len(e.Detail) > MaxAuditDetail || !utf8.ValidString(e.Detail):
		return fmt.Errorf("audit: detail must be at most %d bytes of UTF-8", MaxAuditDetail)
	}
	return nil
}

// DecodeAuditEntry decodes and checks an audit operation's payload.
func DecodeAuditEntry(b []byte) (*AuditEntry, error) {
	var e AuditEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if err := e.Check(); err != nil {
		return nil, err
	}
	return &e, nil
}

// AuditRecord is one record of the hub's audit, as the audit command
// answers it. Hash is SHA-256 over the record's canonical encoding
// (sync/audit), Prev the Hash of the record before it: changing or
// removing a record breaks the chain at the next one.
type AuditRecord struct {
	Seq    uint64    `json:"seq"`
	At     time.Time `json:"at"`     // the hub's clock when it was recorded
	Source string    `json:"source"` // "hub" or the totem's id
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Detail string    `json:"detail,omitempty"`
	// OpID is the totem's operation that carried the entry; TotemAt the
	// totem's clock when it was made (data only).
	OpID    string    `json:"op_id,omitempty"`
	TotemAt time.Time `json:"totem_at,omitzero"`
	// PurgedSeq and PurgedHash: in an anchor record (action
	// "audit_purge"), the last record purged and its hash; PurgedCount
	// the records purged so far in all.
	PurgedSeq   uint64 `json:"purged_seq,omitempty"`
	PurgedHash  string `json:"purged_hash,omitempty"`
	PurgedCount uint64 `json:"purged_count,omitempty"`
	Prev        string `json:"prev"`
	Hash        string `json:"hash"`
}

// AuditVerify is the Data of audit_verify.
type AuditVerify struct {
	OK      bool   `json:"ok"`
	Records int    `json:"records"`          // records checked
	First   uint64 `json:"first,omitempty"`  // the first record kept
	Last    uint64 `json:"last,omitempty"`   // the last record
	Purged  uint64 `json:"purged,omitempty"` // records purged before First
	Broken  uint64 `json:"broken,omitempty"` // the first broken record's seq
	Problem string `json:"problem,omitempty"`
}
