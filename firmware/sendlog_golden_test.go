package firmware

import (
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// The elenco invii as printed: every state an entry can be in, and an
// empty log.
func TestSendLogGolden(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2026, 11, 23, h, m, 0, 0, time.Local) }
	a := &App{o: Options{Totem: "demo-01", ASL: "ASL Toscana nord ovest", Location: "Atrio principale"},
		now: func() time.Time { return at(17, 30) }}
	received := func(prot, status string, errs ...protocol.Error) *protocol.Result {
		return &protocol.Result{Transport: protocol.Transport{Status: protocol.TransportReceived, Protocol: prot},
			Processing: protocol.Processing{Status: status, Errors: errs}}
	}
	entries := []outbox.Entry{
		{ID: "00000000000000000000000000000005", Seq: 5, Kind: cms.KindReader, Created: at(17, 20)},
		{ID: "00000000000000000000000000000004", Seq: 4, Kind: cms.KindConsent, Created: at(17, 10), Attempts: 7,
			LastSent: at(17, 15), Quarantine: outbox.ReasonPoison},
		{ID: "00000000000000000000000000000003", Seq: 3, Kind: cms.KindReprint, Created: at(17, 5), Attempts: 1, LastSent: at(17, 5),
			Done: true, Result: received("261123000000031", protocol.ProcessingRejected,
				protocol.Error{Code: cms.CodeCardNotActive, Message: "La tessera non è ancora attiva"},
				protocol.Error{Code: cms.CodeContact, Message: "Nessun recapito"})},
		{ID: "00000000000000000000000000000002", Seq: 2, Kind: cms.KindConsent, Created: at(9, 1), Attempts: 2, LastSent: at(9, 3),
			Done: true, Result: func() *protocol.Result {
				r := received("261123000000017", protocol.ProcessingAccepted)
				r.Duplicate = true
				return r
			}(),
			Stamp: &protocol.Stamp{Boot: "b1", Wall: at(9, 1), Synced: false}},
		{ID: "00000000000000000000000000000001", Seq: 1, Kind: cms.KindHistory, Created: at(8, 55), Attempts: 1, LastSent: at(8, 55),
			Done: true, Result: received("261123000000002", protocol.ProcessingAccepted)},
	}
	checkGolden(t, map[string]*hal.Doc{
		"sendlog":       a.Frame().SendLog(entries),
		"sendlog-empty": a.Frame().SendLog(nil),
	})
}
