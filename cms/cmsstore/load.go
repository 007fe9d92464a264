package cmsstore

import "github.com/aslcns/totem/cms"

// Loader takes another store's content whole, in one transaction of an
// empty store (totemhub migrate --from-bbolt: a bbolt hub moved to
// PostgreSQL). The records go through Tx; the frame's own rows, which
// no rule writes, through the methods below, as the source kept them:
// an operation keeps its protocol number and stored outcome (so that a
// copy the totem sends again is answered as the same duplicate), the
// ledger its last sequence numbers (so that the totems go on from
// there), the counters their values (so that numbers go on, without
// reuse), the audit its order.
type Loader interface {
	Tx
	// PutOp records totem's applied operation id.
	PutOp(id string, rec OpRecord) error
	PutAudit(rec AuditRecord) error
	SetLedger(totem string, last uint64) error
	// SetCounter sets a numbering series ("protocol", "queries",
	// "tickets") to the last number it gave.
	SetCounter(name string, last uint64) error
	// PutSendLog records a send log entry of the transmissions not
	// applied (duplicates, refusals, gaps) with its repeats.
	PutSendLog(t cms.Transmission, class byte, repeats uint64) error
}
