package firmware_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/haltest"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/paho"
)

const demoTEAM = "80380000900123456782" // card.md's example: the demo card's

// Revoca at the totem, locally: online only (offline it is refused before
// anything is typed, from the idle screen and from the menu), the TEAM
// code's check digit is checked before anything is sent, Back and Cancel
// leave nothing behind, a card inserted meanwhile starts a session.
func TestRevokeLocal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		online func() bool
		card   bool // start from the menu with the card in
		do     func(ctx context.Context, l *local)
	}{
		{"offline without a card", offline, false, func(ctx context.Context, l *local) {
			l.wait(ctx, "Servizio non")
			l.wait(ctx, "Inserire la tessera") // the screen lingers, then idle
		}},
		{"offline with the card", offline, true, func(ctx context.Context, l *local) {
			l.wait(ctx, "disponibile ora")
		}},
		{"wrong check digit, then cancel", nil, false, func(ctx context.Context, l *local) {
			l.run(ctx, []step{{"Revoca: codice TEAM", demoTEAM[:19] + "3"}, {demoTEAM[:19] + "3", "#"},
				{"Codice TEAM errato", "#"}, // try again
				{"Revoca: codice TEAM", demoTEAM + "#"}, {"Motivo: 1 Furto", "1"}, {"Revoca: TEAM ...6782", "#"},
				{"CIP: ", "1234"}, {"CIP: ****", "D"}})
			l.wait(ctx, "Operazione annullata")
			if s := l.panel.Text(); strings.Contains(s, "tessera") {
				t.Errorf("a citizen without a card is asked for it: %q", s)
			}
			l.wait(ctx, "Inserire la tessera")
		}},
		{"back to the menu without a card", nil, false, func(ctx context.Context, l *local) {
			l.run(ctx, []step{{"Revoca: codice TEAM", "*"}, {"7 Revoca tessera", "*"}})
			l.wait(ctx, "Senza tessera #=Menu")
		}},
		{"reason, confirm, then back", nil, true, func(ctx context.Context, l *local) {
			l.run(ctx, []step{{"3 Malfunzionamento", "3"},
				{"Revoca: TEAM ..." + demoTEAM[16:], "#"}, // from the chip: nothing typed
				{"CIP: 8 cifre", "1234567#"},              // 7 digits: the length is said
				{"Servono 8 cifre", "*"},                  // back to the digits typed
				{"CIP: *******", "********"},              // the digits, then back to the summary
				{"Revoca: TEAM ...", "*"}, {"3 Malfunzionamento", "*"}})
			l.wait(ctx, "1 Consensi FSE")
		}},
		// * on the empty CIP field goes back step by step, and the TEAM
		// code typed is still there to correct (issue 17: it was lost).
		{"back from the CIP keeps the TEAM code", nil, false, func(ctx context.Context, l *local) {
			l.run(ctx, []step{{"Revoca: codice TEAM", demoTEAM + "#"}, {"Motivo: 1 Furto", "1"}, {"Revoca: TEAM ...6782", "#"},
				{"CIP: 8 cifre", "*"}, {"Revoca: TEAM ...6782", "*"}, {"Motivo: 1 Furto", "*"},
				{"Revoca: codice TEAM", ""}, {demoTEAM, "D"}})
			l.wait(ctx, "Operazione annullata")
		}},
		{"a card in ends it", nil, false, func(ctx context.Context, l *local) {
			l.run(ctx, []step{{"Revoca: codice TEAM", "8038"}, {"8038", ""}})
			l.insert(ctx, testCard())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			l := startLocalOpts(t, localOpts{online: tc.online, idle: 4 * time.Second})
			l.wait(ctx, "Senza tessera #=Menu")
			if tc.card {
				l.insert(ctx, testCard())
			}
			l.panel.Press('7')
			tc.do(ctx, l)
			if q, _ := l.box.Stats(); q.LastSeq != 0 {
				t.Fatalf("queued %+v", q)
			}
			if n := len(l.printer.Receipts()); n != 0 {
				t.Fatalf("%d receipts", n)
			}
		})
	}
}

// Revoca self-service through the real hub, without the card (lost): a
// wrong CIP is refused by the CMS with its reason and counted; the right
// one revokes the card with a reissue request, audited, and the receipt
// names the card by its masked TEAM code. With the (now revoked) card in
// the reader the CMS refuses again.
func TestRevokeEndToEnd(t *testing.T) {
	ctx, c, tt, lb := startE2E(t, 60*time.Second)
	const serial = "6090012345678000"
	cip := c.CMS.CIP(serial)
	wrong := cip[:7] + string('0'+(cip[7]-'0'+1)%10)

	// Without the card: TEAM code, reason, summary, then the CIP, sent as
	// soon as it is typed (issue 17).
	tt.run(ctx, []step{{"Senza tessera #=Menu", "#"}, {"7 Revoca tessera", "7"}, {"Revoca: codice TEAM", demoTEAM},
		{demoTEAM, "#"}, {"Motivo: 1 Furto", "2"}, {"Revoca: TEAM ...6782", "#"}, {"CIP: ", wrong}, {"CIP: ********", "#"}})
	// A wrong CIP: said with the tries left, # asks for it again at once.
	tt.wait(ctx, "CIP errato: restano")
	tt.wait(ctx, "2 tentativi.")
	tt.wait(ctx, "#=Riprova")
	if n, err := c.CMS.CIPFailures(serial); err != nil || n != 1 {
		t.Fatalf("CIP failures %d, %v", n, err)
	}
	if card, _ := c.CMS.Card(serial); card.State != cms.CardActive {
		t.Fatalf("card %s after a wrong CIP", card.State)
	}
	tt.panel.Press(hal.KeyOK)
	tt.run(ctx, []step{{"CIP: 8 cifre", cip}, {"CIP: ********", "#"}})
	tt.wait(ctx, "Tessera revocata.")
	entries, _ := tt.box.Recent(1)
	if len(entries) != 1 || entries[0].Kind != cms.KindRevocation || !entries[0].Done ||
		entries[0].Expires.Sub(entries[0].Created) > 2*time.Minute {
		t.Fatalf("revocation entry %+v", entries)
	}
	proto := entries[0].Result.Transport.Protocol
	if s := tt.panel.Text(); !strings.Contains(s, proto) {
		t.Fatalf("protocol %s not on screen: %q", proto, s)
	}
	card, err := c.CMS.Card(serial)
	if err != nil || card.State != cms.CardRevoked || card.RevokeReason != cms.ReasonLoss {
		t.Fatalf("card %+v, %v", card, err)
	}
	re, err := c.CMS.Reissue(serial)
	if err != nil || re.Source != cms.KindRevocation || re.ID != proto || re.OpID != entries[0].ID {
		t.Fatalf("reissue %+v, %v", re, err)
	}
	if n, _ := c.CMS.CIPFailures(serial); n != 0 {
		t.Fatalf("CIP failures %d after the right one", n)
	}
	audit, _ := c.CMS.Audit()
	var revocations []bool
	for _, r := range audit {
		if r.Kind == cms.KindRevocation {
			revocations = append(revocations, r.Accepted)
			if !r.Accepted && !slices.Contains(r.Codes, cms.CodeCIPWrong) {
				t.Errorf("refused revocation audited with %v", r.Codes)
			}
			if r.Serial != serial || r.Channel != cms.SelfService {
				t.Errorf("audit %+v", r)
			}
		}
	}
	if !slices.Equal(revocations, []bool{false, true}) {
		t.Fatalf("revocations audited %v, want refused then accepted", revocations)
	}
	hist, _ := c.CMS.History(serial)
	if len(hist) == 0 || hist[len(hist)-1].Kind != cms.KindRevocation || hist[len(hist)-1].Protocol != proto {
		t.Fatalf("history %+v", hist)
	}
	tt.receipts(ctx, 1)
	r := flat(tt.printer.Receipts()[0])
	mustContain(t, "receipt", r, "Revoca TS-CNS", "Tessera: codice TEAM ****************6782", "Motivo: smarrimento",
		"Richiesta di nuova tessera: "+proto, "Protocollo: "+proto, "Esito: ACCOLTA")
	mustNotContain(t, "receipt", r, cip, "Codice fiscale", serial)
	tt.panel.Press(hal.KeyOK) // leaves the last screen
	tt.wait(ctx, "Senza tessera #=Menu")

	// The card itself, from the menu: the TEAM code comes from the chip.
	tt.insert(ctx, testCard())
	tt.panel.Press('7')
	tt.run(ctx, []step{{"Motivo: 1 Furto", "3"}, {"Revoca: TEAM ...6782", "#"}, {"CIP: 8 cifre", cip + "#"}})
	tt.wait(ctx, "rifiutata")
	if text := readPages(ctx, t, tt); !strings.Contains(text, "La tessera è revocata.") {
		t.Fatalf("reason not shown: %s", text)
	}
	// Refused for the card's state only: the chip's data and TEAM code match.
	audit, _ = c.CMS.Audit()
	if last := audit[len(audit)-1]; last.Kind != cms.KindRevocation || last.Accepted || last.Serial != serial ||
		!slices.Equal(last.Codes, []string{cms.CodeCardRevoked}) {
		t.Fatalf("revocation from the menu audited %+v", last)
	}
	if n := len(tt.printer.Receipts()); n != 1 {
		t.Fatalf("%d receipts", n)
	}
	if strings.Contains(lb.String(), cip) || strings.Contains(lb.String(), wrong) {
		t.Error("a CIP in the logs")
	}
	finishE2E(t, c, tt, lb)
}

// A modified totem that skips the local checks is refused by the hub: a
// self-service revocation with a TEAM code whose check digit is wrong (no
// card has it), one without a CIP, a reissue asked self-service, and an unblock audit event
// carrying the PUK.
func TestModifiedTotemRefused(t *testing.T) {
	ctx, c := startCentral(t, 30*time.Second)
	cm, results := resultsClient(t, ctx, c)
	ref := cms.CardRef{Serial: "6090012345678000", CF: "RSSMRA80A01H501U", Expiry: "2030-12-31"}
	marshal := func(v any) json.RawMessage { b, _ := json.Marshal(v); return b }
	ops := []struct {
		kind    string
		payload json.RawMessage
		code    string
	}{
		{cms.KindRevocation, marshal(cms.RevocationRequest{TEAM: demoTEAM[:19] + "3", CIP: c.CMS.CIP(ref.Serial),
			Attendance: cms.Attendance{Channel: cms.SelfService}, Reason: cms.ReasonTheft}), cms.CodeCardUnknown}, // no card has that code
		{cms.KindRevocation, marshal(cms.RevocationRequest{TEAM: demoTEAM, Attendance: cms.Attendance{Channel: cms.SelfService}, Reason: cms.ReasonLoss}), cms.CodeCIPWrong},
		{cms.KindReissue, marshal(cms.ReissueRequest{Card: ref, Attendance: cms.Attendance{Channel: cms.SelfService}, Reason: cms.ReasonLoss}), cms.CodeReissueCounter},
		{cms.KindPINUnblock, json.RawMessage(`{"card":{"serial":"6090012345678000","cf":"RSSMRA80A01H501U","expiry":"2030-12-31"},"channel":"self","result":"ok","puk":"73924061"}`), cms.CodePINData},
	}
	want := map[string]string{}
	for i, o := range ops {
		id := fmt.Sprintf("%032d", i+1)
		want[id] = o.code
		b, err := protocol.Marshal(protocol.Op{V: 1, ID: id, Totem: totemID, Seq: uint64(i + 1), Kind: o.kind,
			Payload: o.payload, Created: time.Now(), Expires: time.Now().Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cm.Publish(ctx, &paho.Publish{Topic: protocol.Topic(totemID, protocol.LeafOp), QoS: 1, Payload: b}); err != nil {
			t.Fatal(err)
		}
	}
	for len(want) > 0 {
		r := haltest.Recv(t, ctx, results, fmt.Sprintf("the results for %v", want))
		code, ok := want[r.OpID]
		if !ok || !r.Final() {
			continue
		}
		delete(want, r.OpID)
		var codes []string
		for _, e := range r.Processing.Errors {
			codes = append(codes, e.Code)
		}
		if r.Processing.Status != protocol.ProcessingRejected || !slices.Contains(codes, code) {
			t.Errorf("op %s: %s %v, want rejected with %s", r.OpID, r.Processing.Status, codes, code)
		}
	}
	if card, _ := c.CMS.Card(ref.Serial); card.State != cms.CardActive {
		t.Fatalf("card %s after refused operations", card.State)
	}
}
