package firmware_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aslcns/totem/cardid"
	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
)

// Assisted service with the citizen's card not in the slot (seed 001): the
// operator types the CF, the TEAM code and the expiry; the check character
// of the CF and the check digit of the TEAM code are verified at the panel,
// the rest against the CMS's record; then consents, reprint, history and
// reader request work as with the card in the slot.
func TestAssistedByData(t *testing.T) {
	const serial = "6090012345678000"
	team := cms.TEAM(serial)
	unknown := "609009999999999" + string(cardid.Luhn("609009999999999")) // a card the CMS does not know
	typed := func(cf, team, expiry string) []step {
		return []step{{"Inserire la TS del", "2"}, {"Codice fiscale TS", taps(cf, tapUpper)},
			{"Codice TEAM", team + "#"}, {"Scadenza tessera", expiry + "#"}}
	}
	good := typed("RSSMRA80A01H501U", team, "31122030")
	for _, tc := range []struct {
		name   string
		online bool
		script []step
		want   string
		kind   string // the operation sent after the lookup, "": none
	}{
		{name: "consents", online: true, script: cat(good, []step{{"3 Consensi FSE", "3"}, {"Informativa FSE", "#"}}, directSteps,
			[]step{{"Consenso 1 di 2", "1"}, {"Consenso 2 di 2", "1"}, {"Riepilogo:", "#"}}),
			want: "Accolta. Protocollo:", kind: cms.KindConsent},
		{name: "reprint", online: true, script: cat(good, []step{{"4 Ristampa", "4"}, {"1 Codici dimenticati", "1"}}, directSteps,
			[]step{{"1=Questo", "1"}, {"Codici dimenticati", "#"}}),
			want: "Accolta. Protocollo:", kind: cms.KindReprint},
		{name: "history", online: true, script: cat(good, []step{{"5 Storico", "5"}}, docSteps,
			[]step{{"1 Tutte le tessere", "1"}, {"Storico 1/", "1"}}),
			want: "Storico stampato:", kind: cms.KindHistory},
		{name: "reader request", online: true, script: cat(good, []step{{"6 Lettore", "6"}}, docSteps,
			[]step{{"n. ricevuta", "420042#"}, {"#=Conferma", "#"}}),
			want: "Accolta. Protocollo:", kind: cms.KindReader},
		{name: "the menu left with D", online: true, script: cat(good, []step{{"D=Fine (senza TS)", "D"}}),
			want: "Inserire la TS del"},

		{name: "CF check character wrong", online: true,
			script: []step{{"Inserire la TS del", "2"}, {"Codice fiscale TS", taps("RSSMRA80A01H501X", tapUpper)}, {"Codice fiscale", "D"}},
			want:   "Operazione annullata"},
		{name: "TEAM check digit wrong", online: true,
			script: []step{{"Inserire la TS del", "2"}, {"Codice fiscale TS", taps("RSSMRA80A01H501U", tapUpper)},
				{"Codice TEAM", team[:19] + string('0'+(team[19]-'0'+1)%10) + "#"}, {"Codice TEAM", "D"}},
			want: "Operazione annullata"},
		{name: "card expired", online: true,
			script: cat(typed("RSSMRA80A01H501U", team, "31122020")[:3], []step{{"Scadenza tessera", "31122020#"}, {"Tessera scaduta:", "D"}}),
			want:   "Operazione annullata"},
		{name: "CF not the card's", online: true, script: cat(typed("VRDNNA70M50F205B", team, "31122030"),
			[]step{{"della tessera non", "D"}}), want: "Operazione annullata"},
		{name: "expiry not the card's", online: true, script: cat(typed("RSSMRA80A01H501U", team, "30112030"),
			[]step{{"della tessera non", "D"}}), want: "Operazione annullata"},
		{name: "TEAM code of no card", online: true, script: cat(typed("RSSMRA80A01H501U", cms.TEAM(unknown), "31122030"),
			[]step{{"non presente", "D"}}), want: "Operazione annullata"},
		{name: "offline", online: false, script: []step{{"Inserire la TS del", "2"}}, want: "disponibile ora"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			lb, log := newLog()
			d := startDeskOpts(t, localOpts{online: func() bool { return tc.online }, log: log})
			d.login(ctx)
			d.run(ctx, tc.script)
			d.wait(ctx, tc.want)
			ops, _ := d.ops()
			if tc.kind == "" {
				if len(ops) != 0 {
					t.Fatalf("entries %+v", ops)
				}
			} else {
				if len(ops) != 1 || ops[0].Kind != tc.kind {
					t.Fatalf("entries %+v", ops)
				}
				full, err := d.box.Get(ops[0].ID)
				if err != nil {
					t.Fatal(err)
				}
				var req struct {
					Card     cms.CardRef
					Channel  string
					Operator string
				}
				if err := json.Unmarshal(full.Payload, &req); err != nil || req.Card.Serial != serial ||
					req.Card.CF != "RSSMRA80A01H501U" || req.Card.Expiry != "2030-12-31" || req.Channel != cms.Assisted || req.Operator != opSerial {
					t.Fatalf("payload %s, %v", full.Payload, err)
				}
			}
			lb.AssertNoPII(t, "RSSMRA80A01H501", team)
			d.panel.Press(hal.KeyOK) // past the outcome: another operation on the same data, or the start
			for ended, s := false, d.panel.Text(); !strings.Contains(s, "Inserire la TS del"); {
				if !ended && strings.Contains(s, "D=Fine") {
					d.panel.Press(hal.KeyCancel) // done with the data typed
					ended = true
				}
				var err error
				if s, err = d.panel.WaitChange(ctx, s); err != nil {
					t.Fatalf("never back to the start: %v", err)
				}
			}
			d.panel.Press(hal.KeyCancel)
			d.wait(ctx, "Inserire la tessera")
		})
	}
}
