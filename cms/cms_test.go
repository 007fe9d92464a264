package cms

import (
	"strings"
	"testing"
	"time"
)

func TestValidCF(t *testing.T) {
	for _, tt := range []struct {
		cf string
		ok bool
	}{
		{"RSSMRA80A01H501U", true},
		{"VRDLCU15C10H501Y", true},
		{"VRDNNA70M50F205B", true},
		{"RSSMRA80A01H5LMF", false}, // omocodia letters, wrong check char
		{"RSSMRA80A01H501X", false}, // check char
		{"BNCLRA75D45F205X", false}, // the demo revoked card once had this wrong check character
		{"BNCLRA75D45F205C", true},
		{"RSSMRA80A01H501", false},
		{"rssmra80a01h501u", false},
		{"RSSMRA8XA01H501U", false}, // X is no omocodia letter
		{"1SSMRA80A01H501U", false},
		{"", false},
	} {
		if got := ValidCF(tt.cf); got != tt.ok {
			t.Errorf("ValidCF(%q) = %v", tt.cf, got)
		}
	}
}

func TestTEAMAndOperator(t *testing.T) {
	for _, tt := range []struct{ serial, team string }{
		{"6090012345678000", "80380000900123456782"}, // card.md's example
		{"6090012345678001", ""},                     // check digit
		{"1090012345678000", ""},                     // test card
		{"609001234567800", ""},
	} {
		if got := TEAM(tt.serial); got != tt.team {
			t.Errorf("TEAM(%s) = %q, want %q", tt.serial, got, tt.team)
		}
	}
	for _, tt := range []struct {
		serial string
		ok     bool
	}{{"8090000000042006", true}, {"9090000000077000", true}, {"6090012345678000", false}, {"80900000000420", false}, {"", false}} {
		if OperatorSerial(tt.serial) != tt.ok {
			t.Errorf("OperatorSerial(%q) != %v", tt.serial, tt.ok)
		}
	}
}

func TestValidTEAM(t *testing.T) {
	for _, tt := range []struct {
		team string
		ok   bool
	}{
		{"80380000900123456782", true}, // card.md's example
		{TEAM("6090098765432002"), true},
		{"80380000900123456783", false}, // check digit
		{"80380000900123456728", false}, // two digits swapped
		{"70380000900123456782", false}, // not 80380
		{"8038000090012345678", false},
		{"8038000090012345678A", false},
		{"", false},
	} {
		if ValidTEAM(tt.team) != tt.ok {
			t.Errorf("ValidTEAM(%q) != %v", tt.team, tt.ok)
		}
	}
}

func TestCheckNoPIN(t *testing.T) {
	for _, tt := range []struct {
		payload string
		pin     bool
	}{
		{`{"card":{"serial":"6090012345678000","cf":"RSSMRA80A01H501U","expiry":"2030-12-31"},"channel":"self","result":"ok"}`, false},
		{`{"result":"ok","pin":""}`, true},
		{`{"Old_PIN":"x"}`, true},
		{`{"puk":null}`, true},
		{`{"cip":null}`, true},
		{`{"a":["12345"]}`, true},
		{`{"a":1234}`, true},
		{`{"a":123}`, false},
		{`{"a":"123456789"}`, false},
		{`{"a":"12a45"}`, false},
		{`not json`, false},
	} {
		if got := CheckNoPIN([]byte(tt.payload)) != nil; got != tt.pin {
			t.Errorf("CheckNoPIN(%s) = %v", tt.payload, got)
		}
	}
}

func TestContactMasked(t *testing.T) {
	for _, tt := range []struct {
		c    Contact
		want string
	}{
		{Contact{ContactSMS, "+393471234567"}, "SMS *********4567"},
		{Contact{ContactEmail, "mario.rossi@example.it"}, "e-mail m***@example.it"},
		{Contact{ContactEmail, "bad"}, "e-mail"},
		{Contact{"fax", "1"}, ""},
	} {
		if got := tt.c.Masked(); got != tt.want {
			t.Errorf("%+v masked %q, want %q", tt.c, got, tt.want)
		}
	}
}

func TestRefusalAndOnline(t *testing.T) {
	if r := Refusal(KindSuspension); len(r) != 1 || r[0].Code != CodeNoSuspension || !strings.Contains(r[0].Message, "revoca") {
		t.Errorf("suspension %+v", r)
	}
	if r := Refusal(KindReactivation); len(r) != 1 || r[0].Code != CodeNoReactivation {
		t.Errorf("reactivation %+v", r)
	}
	if Refusal(KindConsent) != nil {
		t.Error("consent refused")
	}
	for k, online := range map[string]bool{KindActivation: true, KindReprint: true, KindRevocation: true, KindHistory: true,
		KindConsent: false, KindReader: false, KindPINChange: false, KindPINUnblock: false} {
		if Online(k) != online {
			t.Errorf("Online(%s) != %v", k, online)
		}
	}
}

// No reject message of the domain carries personal data: the holder's or
// the delegate's CF or name never appear, whatever the request holds.
func TestRejectsCarryNoPersonalData(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	card := &Card{Serial: "6090022222222004", CF: "VRDNNA70M50F205B", Expiry: "2032-08-31", State: CardActive, BirthDate: "1970-08-10"}
	deleg := &Delegation{Kind: DelegParental, Name: "Giuseppe Verdi", CF: "VRDNNA70M50F205B"}
	ref := CardRef{Serial: card.Serial, CF: "VRDGPP60A01H501Q", Expiry: card.Expiry}
	var rs []Reject
	rs = append(rs, (&ActivationRequest{Card: ref, Delegate: deleg, Contact: Contact{ContactEmail, "giuseppe.verdi@"}}).Validate(Policy2020, card, now)...)
	rs = append(rs, (&ReprintRequest{Card: ref, Delegate: deleg}).Validate(card, now)...)
	rs = append(rs, (&RevocationRequest{Card: ref, Delegate: deleg, TEAM: "1"}).Validate(card, now)...)
	rs = append(rs, (&ReissueRequest{Card: ref, Delegate: deleg}).Validate(card, true, now)...)
	rs = append(rs, (&ConsentRequest{Card: ref, Delegate: deleg, Policy: Policy2020.ID, Consents: []Consent{{Code: "consultazione"}, {Code: "opposizione_pregresso"}}}).Validate(Policy2020, card, now)...)
	if len(rs) < 10 {
		t.Fatalf("only %d rejects", len(rs))
	}
	for _, r := range rs {
		for _, pd := range []string{"VRDNNA70M50F205B", "VRDGPP60A01H501Q", "Giuseppe", "Verdi", "giuseppe"} {
			if strings.Contains(r.Message, pd) || strings.Contains(r.Error(), pd) {
				t.Errorf("%s: %q holds personal data", r.Code, r.Message)
			}
		}
		if r.Code == "" || r.Message == "" {
			t.Errorf("reject %+v", r)
		}
	}
}

// The demo cards are what a newcomer tries first: their codici fiscali
// pass the same check the totem applies to a CF read from the chip, and
// their serials carry a codice TEAM.
func TestDemoCardsValid(t *testing.T) {
	for _, c := range DemoCards() {
		if !ValidCF(c.CF) {
			t.Errorf("demo card %s: codice fiscale fails its check character", c.Serial)
		}
		if TEAM(c.Serial) == "" {
			t.Errorf("demo card %s: serial without a codice TEAM", c.Serial)
		}
	}
}
