package firmware

import (
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/firmware/flows"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// The self-service catalogue's layouts (revocation without the card, the
// blank forms) as golden files, like the receipts of receipt_test.go.
func TestSelfServiceGolden(t *testing.T) { checkGolden(t, selfServiceDocs()) }

// selfServiceDocs are the self-service catalogue's layouts with fixed data.
func selfServiceDocs() map[string]*hal.Doc {
	a := &App{o: Options{Totem: "demo-01", ASL: "ASL Toscana nord ovest", Location: "Atrio principale", Town: "Lucca"},
		now: func() time.Time { return time.Date(2026, 11, 23, 17, 5, 0, 0, time.Local) }}
	acc := outbox.Entry{ID: "0123456789abcdef0123456789abcdef", Seq: 7, Done: true,
		Result: &protocol.Result{Transport: protocol.Transport{Status: protocol.TransportReceived, Protocol: "261123000000077"},
			Processing: protocol.Processing{Status: protocol.ProcessingAccepted}}}
	docs := map[string]*hal.Doc{
		// Without the card: no CF line, the card named by its masked TEAM code.
		"revocation-self": a.Frame().Receipt(acc, kindTitle(cms.KindRevocation), hal.CardInfo{},
			a.Frame().SelfRevocation("80380000900123456782", cms.RevocationResult{
				RevokedAt: time.Date(2026, 11, 23, 17, 5, 0, 0, time.Local), Reason: cms.ReasonTheft, Reissue: "261123000000077"})),
	}
	for k, name := range map[hal.Key]string{'1': "reader", '2': "delegation", '3': "declaration", '4': "revocation"} {
		docs["form-"+name] = flows.FormDoc(a.Frame(), k)
	}
	return docs
}
