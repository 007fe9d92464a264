package refcms

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
)

func goodActivation() cms.ActivationRequest {
	return cms.ActivationRequest{
		Card: adultRef, Channel: cms.Assisted, Operator: operator,
		Document: *doc(),
		Contact:  cms.Contact{Channel: cms.ContactSMS, Address: "+393471234567"},
		Privacy:  true,
	}
}

func parental(r *cms.ActivationRequest) {
	r.Card = minorRef
	r.Delegate = &cms.Delegation{Kind: cms.DelegParental, Name: "Giuseppe Verdi", CF: parentCF}
	r.Declaration = true
}

func consents2020() *cms.ConsentSet {
	return &cms.ConsentSet{Policy: "fse-2020", Consents: []cms.Consent{{Code: "consultazione", Given: true}, {Code: "opposizione_pregresso"}}}
}

// checkActivated checks an accepted activation: the card is active with the
// contact, the Data carries the first halves and the CIP, and the sink holds
// the second halves, which complete the codes.
func checkActivated(serial string, delegations int) func(*testing.T, *env, cms.Outcome) {
	return func(t *testing.T, e *env, out cms.Outcome) {
		c := e.card(serial)
		if c.State != cms.CardActive || c.Contact == nil || !c.ActivatedAt.Equal(now) || len(c.Delegations) != delegations {
			t.Fatalf("card after activation %+v", c)
		}
		d := data[cms.ActivationResult](t, out)
		k := e.s.codes(serial)
		if len(d.PINFirstHalf) != 4 || len(d.PUKFirstHalf) != 4 || len(d.CIP) != cms.CIPDigits || d.CIP != k.cip {
			t.Fatalf("data %+v", d)
		}
		if d.SecondHalvesTo != c.Contact.Masked() || strings.Contains(d.SecondHalvesTo, c.Contact.Address) {
			t.Errorf("second halves to %q", d.SecondHalvesTo)
		}
		ns, _ := e.s.Notifications(serial)
		if len(ns) != 1 || ns[0].To != c.Contact.Address || ns[0].Channel != c.Contact.Channel || ns[0].Protocol != out.Protocol ||
			d.PINFirstHalf+ns[0].PINSecondHalf != k.pin || d.PUKFirstHalf+ns[0].PUKSecondHalf != k.puk ||
			!strings.Contains(ns[0].Text, ns[0].PINSecondHalf) {
			t.Fatalf("notifications %+v, data %+v", ns, d)
		}
		h, _ := e.s.History(serial)
		if len(h) == 0 || h[0].Kind != cms.KindActivation || h[0].Protocol != out.Protocol {
			t.Fatalf("history %+v", h)
		}
	}
}

func TestActivation(t *testing.T) {
	type R = cms.ActivationRequest
	runTable(t, cms.KindActivation, goodActivation, []opCase[R]{
		{name: "direct", check: checkActivated(adultSerial, 0)},
		{name: "e-mail contact", mod: func(r *R) { r.Contact = cms.Contact{Channel: cms.ContactEmail, Address: "anna.verdi@example.it"} },
			check: func(t *testing.T, e *env, out cms.Outcome) {
				if d := data[cms.ActivationResult](t, out); d.SecondHalvesTo != "e-mail a***@example.it" {
					t.Fatalf("masked %q", d.SecondHalvesTo)
				}
			}},
		{name: "delegation potestà parentale for a minor", mod: parental,
			check: func(t *testing.T, e *env, out cms.Outcome) {
				checkActivated(minorSerial, 1)(t, e, out)
				if c := e.card(minorSerial); c.Delegations[0].CF != parentCF || c.Delegations[0].Kind != cms.DelegParental {
					t.Fatalf("delegation %+v", c.Delegations)
				}
				if h, _ := e.s.History(minorSerial); h[0].Detail != cms.DelegParental {
					t.Fatalf("history %+v", h)
				}
			}},
		{name: "delegation tutore", mod: func(r *R) {
			r.Delegate = &cms.Delegation{Kind: cms.DelegTutor, Name: "Stefania Bianchi", CF: tutorCF}
			r.Declaration = true
		}, check: checkActivated(adultSerial, 1)},
		{name: "delegation curatore", mod: func(r *R) {
			r.Delegate = &cms.Delegation{Kind: cms.DelegCurator, Name: "Stefania Bianchi", CF: tutorCF}
			r.Declaration = true
		}, check: checkActivated(adultSerial, 1)},
		{name: "tutore for a minor", mod: func(r *R) {
			parental(r)
			r.Delegate.Kind = cms.DelegTutor
		}, check: checkActivated(minorSerial, 1)},
		{name: "with reader and consents", mod: func(r *R) {
			r.Reader = &cms.Payment{Reference: "PAG-2026-000123", AmountCents: 420}
			r.Consents = consents2020()
		}, check: func(t *testing.T, e *env, out cms.Outcome) {
			checkActivated(adultSerial, 0)(t, e, out)
			d := data[cms.ActivationResult](t, out)
			if d.Readers != 1 || d.FSE != cms.FSECreated || e.card(adultSerial).Readers != 1 ||
				d.FSEDetail == nil || d.FSEDetail.FSE != cms.FSECreated || d.FSEDetail.Retries != DefaultFSERetries {
				t.Fatalf("data %+v", d)
			}
			rec, err := e.s.Consents(adultSerial)
			if err != nil || rec.Protocol != out.Protocol || rec.Operator != operator || rec.Channel != cms.Assisted {
				t.Fatalf("consents %+v %v", rec, err)
			}
			if f, err := e.s.FSE(adultRef.CF); err != nil || f.State != cms.FSECreated {
				t.Fatalf("fse %+v %v", f, err)
			}
		}},

		{name: "self-service", mod: func(r *R) { r.Channel, r.Operator = cms.SelfService, "" }, want: []string{cms.CodeAssistedOnly}},
		{name: "no operator", mod: func(r *R) { r.Operator = "" }, want: []string{cms.CodeOperator}},
		{name: "citizen card as operator", mod: func(r *R) { r.Operator = activeSerial }, want: []string{cms.CodeOperator}},
		{name: "second activation", mod: func(r *R) { r.Card = activeRef }, want: []string{cms.CodeAlreadyActive}},
		{name: "revoked card", mod: func(r *R) { r.Card = revokedRef }, want: []string{cms.CodeCardRevoked}},
		{name: "unknown card", mod: func(r *R) { r.Card.Serial = "6090044444444000" }, want: []string{cms.CodeCardUnknown}},
		{name: "CF mismatch", mod: func(r *R) { r.Card.CF = minorRef.CF }, want: []string{cms.CodeCardMismatch}},
		{name: "card expired", at: time.Date(2032, 9, 1, 0, 0, 0, 0, time.UTC), mod: func(r *R) { r.Document.Expiry = "2040-01-01" },
			want: []string{cms.CodeCardExpired}},
		{name: "potestà parentale for an adult", mod: func(r *R) {
			r.Delegate = &cms.Delegation{Kind: cms.DelegParental, Name: "Giuseppe Verdi", CF: parentCF}
			r.Declaration = true
		}, want: []string{cms.CodeDelegation}},
		{name: "delegate without name", mod: func(r *R) { parental(r); r.Delegate.Name = " " }, want: []string{cms.CodeDelegation}},
		{name: "delegate CF check char", mod: func(r *R) { parental(r); r.Delegate.CF = "VRDGPP60A01H501X" }, want: []string{cms.CodeDelegation}},
		{name: "delegate is the holder", mod: func(r *R) { parental(r); r.Delegate.CF = minorRef.CF }, want: []string{cms.CodeDelegation}},
		{name: "unknown delegation kind", mod: func(r *R) { parental(r); r.Delegate.Kind = "amico" }, want: []string{cms.CodeDelegation}},
		{name: "delegation without declaration", mod: func(r *R) { parental(r); r.Declaration = false }, want: []string{cms.CodeDeclaration}},
		{name: "document not checked", mod: func(r *R) { r.Document.Checked = false }, want: []string{cms.CodeDocument}},
		{name: "document expired", mod: func(r *R) { r.Document.Expiry = "2026-11-22" }, want: []string{cms.CodeDocument}},
		{name: "document type", mod: func(r *R) { r.Document.Type = "tessera_palestra" }, want: []string{cms.CodeDocument}},
		{name: "document number", mod: func(r *R) { r.Document.Number = "" }, want: []string{cms.CodeDocument}},
		{name: "no document", mod: func(r *R) { r.Document = cms.IDDocument{} }, want: []string{cms.CodeDocument}},
		{name: "bad phone", mod: func(r *R) { r.Contact.Address = "347-123" }, want: []string{cms.CodeContact}},
		{name: "bad e-mail", mod: func(r *R) { r.Contact = cms.Contact{Channel: cms.ContactEmail, Address: "anna@localhost"} }, want: []string{cms.CodeContact}},
		{name: "no channel", mod: func(r *R) { r.Contact.Channel = "posta" }, want: []string{cms.CodeContact}},
		{name: "privacy flag", mod: func(r *R) { r.Privacy = false }, want: []string{cms.CodePrivacy}},
		{name: "reader amount", mod: func(r *R) { r.Reader = &cms.Payment{Reference: "PAG-2026-000123", AmountCents: 400} }, want: []string{cms.CodePayment}},
		{name: "reader reference reused", setup: func(e *env) {
			e.mustAccept(cms.KindReader, cms.ReaderRequest{Card: activeRef, Attendance: cms.Attendance{Channel: cms.SelfService},
				Payment: cms.Payment{Reference: "PAG-2026-000123", AmountCents: 420}})
		}, mod: func(r *R) { r.Reader = &cms.Payment{Reference: "PAG-2026-000123", AmountCents: 420} }, want: []string{cms.CodePaymentReused}},
		{name: "consents of another policy", mod: func(r *R) {
			r.Consents = &cms.ConsentSet{Policy: "fse-2016", Consents: []cms.Consent{{Code: "alimentazione"}, {Code: "consultazione"}, {Code: "pregresso"}}}
		}, want: []string{cms.CodePolicy}},
		{name: "personal data reported wrong", setup: func(e *env) {
			e.mustAccept(cms.KindWrongData, cms.WrongDataReport{Card: adultRef, Channel: cms.Assisted, Operator: operator, Fields: []string{"cognome"}})
		}, want: []string{cms.CodeDataReported}},
		{name: "unknown field", raw: `{"card":{"serial":"6090022222222004"},"pin":"x"}`, want: []string{cms.CodeBadPayload}},
		{name: "many faults at once", mod: func(r *R) { r.Operator, r.Privacy, r.Contact.Channel = "", false, "" },
			want: []string{cms.CodeOperator, cms.CodePrivacy, cms.CodeContact}},
	})
}

func goodReprint() cms.ReprintRequest {
	return cms.ReprintRequest{Card: activeRef, Attendance: cms.Attendance{Channel: cms.SelfService}, Reason: cms.ReprintForgotten}
}

func checkReprinted(t *testing.T, e *env, out cms.Outcome) {
	d := data[cms.ReprintResult](t, out)
	k := e.s.codes(activeSerial)
	ns, _ := e.s.Notifications(activeSerial)
	if len(ns) != 1 || ns[0].Kind != cms.KindReprint || ns[0].To != "+393330000001" ||
		d.PINFirstHalf+ns[0].PINSecondHalf != k.pin || d.PUKFirstHalf+ns[0].PUKSecondHalf != k.puk ||
		d.SecondHalvesTo != "SMS *********0001" {
		t.Fatalf("data %+v notifications %+v", d, ns)
	}
	if h, _ := e.s.History(activeSerial); len(h) != 1 || h[0].Kind != cms.KindReprint || h[0].Detail == "" {
		t.Fatalf("history %+v", h)
	}
}

// newContact checks a reprint whose second halves went to a contact
// chosen at the counter, which the card keeps.
func newContact(channel, address, masked string) func(*testing.T, *env, cms.Outcome) {
	return func(t *testing.T, e *env, out cms.Outcome) {
		c := e.card(activeSerial)
		if c.Contact == nil || c.Contact.Channel != channel || c.Contact.Address != address {
			t.Fatalf("card contact %+v", c.Contact)
		}
		if d := data[cms.ReprintResult](t, out); d.SecondHalvesTo != masked {
			t.Fatalf("data %+v", d)
		}
		ns, _ := e.s.Notifications(activeSerial)
		if len(ns) != 1 || ns[0].To != address || ns[0].Channel != channel {
			t.Fatalf("notifications %+v", ns)
		}
	}
}

func noContact(e *env) {
	c := e.card(activeSerial)
	c.Contact = nil
	if err := e.s.PutCard(c); err != nil {
		e.t.Fatal(err)
	}
}

func TestReprint(t *testing.T) {
	type R = cms.ReprintRequest
	runTable(t, cms.KindReprint, goodReprint, []opCase[R]{
		{name: "self-service direct", check: checkReprinted},
		{name: "assisted direct", mod: func(r *R) { r.Channel, r.Operator, r.Document = cms.Assisted, operator, doc() }, check: checkReprinted},
		{name: "assisted by delegation tutore", mod: func(r *R) {
			r.Channel, r.Operator, r.Document = cms.Assisted, operator, doc()
			r.Delegate = &cms.Delegation{Kind: cms.DelegTutor, Name: "Stefania Bianchi", CF: tutorCF}
		}, check: checkReprinted},
		{name: "self-service by delegation curatore", mod: func(r *R) {
			r.Delegate = &cms.Delegation{Kind: cms.DelegCurator, Name: "Stefania Bianchi", CF: tutorCF}
		}, check: checkReprinted},
		{name: "every reason", mod: func(r *R) { r.Reason = cms.ReprintNotReceived }, check: checkReprinted},
		{name: "assisted, the second halves to a new e-mail", mod: func(r *R) {
			r.Channel, r.Operator, r.Document = cms.Assisted, operator, doc()
			r.Contact = &cms.Contact{Channel: cms.ContactEmail, Address: "mario.rossi@example.it"}
		}, check: newContact(cms.ContactEmail, "mario.rossi@example.it", "e-mail m***@example.it")},
		{name: "assisted, a new contact where none was on record", setup: noContact, mod: func(r *R) {
			r.Channel, r.Operator, r.Document = cms.Assisted, operator, doc()
			r.Contact = &cms.Contact{Channel: cms.ContactSMS, Address: "+393471234567"}
		}, check: newContact(cms.ContactSMS, "+393471234567", "SMS *********4567")},

		{name: "self-service, a new contact", mod: func(r *R) {
			r.Contact = &cms.Contact{Channel: cms.ContactSMS, Address: "+393471234567"}
		}, want: []string{cms.CodeContact}},
		{name: "assisted, a new contact not valid", mod: func(r *R) {
			r.Channel, r.Operator, r.Document = cms.Assisted, operator, doc()
			r.Contact = &cms.Contact{Channel: cms.ContactEmail, Address: "mario.rossi@"}
		}, want: []string{cms.CodeContact}},
		{name: "assisted, a new contact without a channel", mod: func(r *R) {
			r.Channel, r.Operator, r.Document = cms.Assisted, operator, doc()
			r.Contact = &cms.Contact{Address: "+393471234567"}
		}, want: []string{cms.CodeContact}},

		{name: "no reason", mod: func(r *R) { r.Reason = "" }, want: []string{cms.CodeReason}},
		{name: "unknown reason", mod: func(r *R) { r.Reason = "curiosità" }, want: []string{cms.CodeReason}},
		{name: "revoked card", mod: func(r *R) { r.Card = revokedRef }, want: []string{cms.CodeCardRevoked}},
		{name: "card not activated", mod: func(r *R) { r.Card = adultRef }, want: []string{cms.CodeCardNotActive}},
		{name: "CF mismatch", mod: func(r *R) { r.Card.CF = adultRef.CF }, want: []string{cms.CodeCardMismatch}},
		{name: "potestà parentale for an adult", mod: func(r *R) {
			r.Delegate = &cms.Delegation{Kind: cms.DelegParental, Name: "Giuseppe Verdi", CF: parentCF}
		}, want: []string{cms.CodeDelegation}},
		{name: "assisted without document", mod: func(r *R) { r.Channel, r.Operator = cms.Assisted, operator }, want: []string{cms.CodeDocument}},
		{name: "assisted without operator", mod: func(r *R) { r.Channel, r.Document = cms.Assisted, doc() }, want: []string{cms.CodeOperator}},
		{name: "self-service with operator", mod: func(r *R) { r.Operator = operator }, want: []string{cms.CodeOperator}},
		{name: "no contact on record", setup: func(e *env) {
			c := e.card(activeSerial)
			c.Contact = nil
			if err := e.s.PutCard(c); err != nil {
				t.Fatal(err)
			}
		}, want: []string{cms.CodeContact}},
	})
}

func goodRevocation() cms.RevocationRequest {
	return cms.RevocationRequest{Card: activeRef, Attendance: cms.Attendance{Channel: cms.Assisted, Operator: operator, Document: doc()}, Reason: cms.ReasonTheft}
}

func selfRevocation(e *env, cip string) cms.RevocationRequest {
	if cip == "" {
		cip = e.s.codes(activeSerial).cip
	}
	return cms.RevocationRequest{TEAM: cms.TEAM(activeSerial), CIP: cip, Attendance: cms.Attendance{Channel: cms.SelfService}, Reason: cms.ReasonLoss}
}

func checkRevoked(serial, reason string) func(*testing.T, *env, cms.Outcome) {
	return func(t *testing.T, e *env, out cms.Outcome) {
		c := e.card(serial)
		d := data[cms.RevocationResult](t, out)
		if c.State != cms.CardRevoked || c.RevokeReason != reason || !c.RevokedAt.Equal(now) ||
			d.Reason != reason || d.Reissue != out.Protocol || !d.RevokedAt.Equal(now) {
			t.Fatalf("card %+v data %+v", c, d)
		}
		re, err := e.s.Reissue(serial)
		if err != nil || re.ID != out.Protocol || re.Source != cms.KindRevocation || re.Reason != reason {
			t.Fatalf("reissue %+v %v", re, err)
		}
		if n, _ := e.s.CIPFailures(serial); n != 0 {
			t.Errorf("CIP failures %d after a revocation", n)
		}
	}
}

func TestRevocation(t *testing.T) {
	type R = cms.RevocationRequest
	var e0 *env // the CIP depends on the store's key: set by setup
	cip := func(e *env) { e0 = e }
	runTable(t, cms.KindRevocation, goodRevocation, []opCase[R]{
		{name: "assisted by card", check: checkRevoked(activeSerial, cms.ReasonTheft)},
		{name: "assisted by TEAM", mod: func(r *R) { r.Card, r.TEAM = cms.CardRef{}, cms.TEAM(activeSerial) }, check: checkRevoked(activeSerial, cms.ReasonTheft)},
		{name: "assisted by delegation", mod: func(r *R) {
			r.Delegate = &cms.Delegation{Kind: cms.DelegTutor, Name: "Stefania Bianchi", CF: tutorCF}
		}, check: checkRevoked(activeSerial, cms.ReasonTheft)},
		{name: "malfunction", mod: func(r *R) { r.Reason = cms.ReasonMalfunction }, check: checkRevoked(activeSerial, cms.ReasonMalfunction)},
		{name: "a card never activated", mod: func(r *R) { r.Card = adultRef }, check: checkRevoked(adultSerial, cms.ReasonTheft)},
		{name: "self-service TEAM and CIP", setup: cip, mod: func(r *R) { *r = selfRevocation(e0, "") },
			check: checkRevoked(activeSerial, cms.ReasonLoss)},
		{name: "self-service by delegation", setup: cip, mod: func(r *R) {
			*r = selfRevocation(e0, "")
			r.Delegate = &cms.Delegation{Kind: cms.DelegCurator, Name: "Stefania Bianchi", CF: tutorCF}
		}, check: checkRevoked(activeSerial, cms.ReasonLoss)},

		{name: "self-service wrong CIP", setup: cip, mod: func(r *R) { *r = selfRevocation(e0, wrongCIP(e0)) }, want: []string{cms.CodeCIPWrong},
			check: func(t *testing.T, e *env, out cms.Outcome) {
				if n, _ := e.s.CIPFailures(activeSerial); n != 1 || !strings.Contains(out.Rejects[0].Message, "restano 2") {
					t.Fatalf("failures %d, %+v", n, out.Rejects)
				}
			}},
		{name: "self-service no CIP", setup: cip, mod: func(r *R) { *r = selfRevocation(e0, ""); r.CIP = "" }, want: []string{cms.CodeCIPWrong},
			check: func(t *testing.T, e *env, _ cms.Outcome) {
				if n, _ := e.s.CIPFailures(activeSerial); n != 0 {
					t.Fatalf("a missing CIP counted as wrong: %d", n)
				}
			}},
		{name: "self-service bad TEAM", setup: cip, mod: func(r *R) { *r = selfRevocation(e0, ""); r.TEAM = "8038000090" }, want: []string{cms.CodeTEAM, cms.CodeCardUnknown}},
		{name: "self-service unknown TEAM", setup: cip, mod: func(r *R) { *r = selfRevocation(e0, ""); r.TEAM = cms.TEAM("6090044444444000") },
			want: []string{cms.CodeCardUnknown}},
		{name: "self-service with operator", setup: cip, mod: func(r *R) { *r = selfRevocation(e0, ""); r.Operator = operator }, want: []string{cms.CodeOperator}},
		{name: "TEAM of another card", mod: func(r *R) { r.TEAM = cms.TEAM(adultSerial) }, want: []string{cms.CodeTEAM}},
		{name: "no reason", mod: func(r *R) { r.Reason = "" }, want: []string{cms.CodeReason}},
		{name: "reason not of the seeds", mod: func(r *R) { r.Reason = "trasferimento" }, want: []string{cms.CodeReason}},
		{name: "already revoked", mod: func(r *R) { r.Card = revokedRef }, want: []string{cms.CodeCardRevoked}},
		{name: "assisted without document", mod: func(r *R) { r.Document = nil }, want: []string{cms.CodeDocument}},
		{name: "assisted without operator", mod: func(r *R) { r.Operator = "" }, want: []string{cms.CodeOperator}},
		{name: "no card named", mod: func(r *R) { r.Card = cms.CardRef{} }, want: []string{cms.CodeCardUnknown}},
		{name: "CF mismatch", mod: func(r *R) { r.Card.CF = adultRef.CF }, want: []string{cms.CodeCardMismatch}},
	})
}

func wrongCIP(e *env) string {
	c := []byte(e.s.codes(activeSerial).cip)
	c[0] = '0' + (c[0]-'0'+1)%10
	return string(c)
}

// After MaxCIPFailures wrong CIPs the card cannot be revoked in
// self-service, not even with the right CIP; the counter still can.
func TestCIPBlocksAfterThree(t *testing.T) {
	e := newEnv(t, nil)
	before := e.card(activeSerial)
	for i := 1; i <= cms.MaxCIPFailures; i++ {
		out := e.do(cms.KindRevocation, selfRevocation(e, wrongCIP(e)))
		if got := codesOf(out); !slices.Equal(got, []string{cms.CodeCIPWrong}) {
			t.Fatalf("attempt %d: %v", i, got)
		}
		if n, _ := e.s.CIPFailures(activeSerial); n != i {
			t.Fatalf("failures %d, want %d", n, i)
		}
	}
	out := e.do(cms.KindRevocation, selfRevocation(e, ""))
	if got := codesOf(out); !slices.Equal(got, []string{cms.CodeCIPBlocked}) {
		t.Fatalf("right CIP after 3 wrong: %v", got)
	}
	if after := e.card(activeSerial); after.State != cms.CardActive || after.RevokedAt != before.RevokedAt {
		t.Fatalf("card changed: %+v", after)
	}
	checkRevoked(activeSerial, cms.ReasonTheft)(t, e, e.mustAccept(cms.KindRevocation, goodRevocation()))
}

func goodReader() cms.ReaderRequest {
	return cms.ReaderRequest{Card: activeRef, Attendance: cms.Attendance{Channel: cms.SelfService}, Payment: cms.Payment{Reference: "PAG-2026-000777", AmountCents: 420}}
}

func checkReaders(n int) func(*testing.T, *env, cms.Outcome) {
	return func(t *testing.T, e *env, out cms.Outcome) {
		if d := data[cms.ReaderResult](t, out); d.Readers != n || e.card(activeSerial).Readers != n {
			t.Fatalf("data %+v, card %+v", d, e.card(activeSerial))
		}
	}
}

func TestReaderRequest(t *testing.T) {
	type R = cms.ReaderRequest
	other := func(e *env) {
		e.mustAccept(cms.KindReader, cms.ReaderRequest{Card: activeRef, Attendance: cms.Attendance{Channel: cms.SelfService},
			Payment: cms.Payment{Reference: "PAG-2026-000001", AmountCents: 420}})
	}
	runTable(t, cms.KindReader, goodReader, []opCase[R]{
		{name: "self-service", check: checkReaders(1)},
		{name: "assisted", mod: func(r *R) { r.Channel, r.Operator, r.Document = cms.Assisted, operator, doc() }, check: checkReaders(1)},
		{name: "a second reader, another receipt", setup: other, check: checkReaders(2)},

		{name: "receipt reused", setup: other, mod: func(r *R) { r.Payment.Reference = "PAG-2026-000001" }, want: []string{cms.CodePaymentReused}},
		{name: "no receipt", mod: func(r *R) { r.Payment.Reference = "" }, want: []string{cms.CodePayment}},
		{name: "receipt with odd characters", mod: func(r *R) { r.Payment.Reference = "PAG 2026;1" }, want: []string{cms.CodePayment}},
		{name: "wrong amount", mod: func(r *R) { r.Payment.AmountCents = 400 }, want: []string{cms.CodePayment}},
		{name: "revoked card", mod: func(r *R) { r.Card = revokedRef }, want: []string{cms.CodeCardRevoked}},
		{name: "card not activated", mod: func(r *R) { r.Card = adultRef }, want: []string{cms.CodeCardNotActive}},
		{name: "assisted without document", mod: func(r *R) { r.Channel, r.Operator = cms.Assisted, operator }, want: []string{cms.CodeDocument}},
		{name: "unknown card", mod: func(r *R) { r.Card.Serial = "6090044444444000" }, want: []string{cms.CodeCardUnknown}},
	})
}

const olderSerial = "6090033333333002" // an older, revoked card of the active card's holder

func goodHistory() cms.HistoryRequest {
	return cms.HistoryRequest{Card: activeRef, Attendance: cms.Attendance{Channel: cms.SelfService}, Scope: cms.HistoryCard}
}

func historySetup(e *env) {
	if err := e.s.PutCard(cms.Card{Serial: olderSerial, CF: activeRef.CF, Expiry: "2024-12-31", State: cms.CardRevoked,
		RevokeReason: cms.ReasonLoss}); err != nil {
		e.t.Fatal(err)
	}
	e.mustAccept(cms.KindReprint, goodReprint())
	e.mustAccept(cms.KindReader, goodReader())
}

func checkHistory(serials ...string) func(*testing.T, *env, cms.Outcome) {
	return func(t *testing.T, e *env, out cms.Outcome) {
		d := data[cms.HistoryResult](t, out)
		var got []string
		for _, c := range d.Cards {
			got = append(got, c.Serial)
			if c.TEAM != cms.TEAM(c.Serial) {
				t.Errorf("TEAM %q", c.TEAM)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, serials) {
			t.Fatalf("cards %v, want %v", got, serials)
		}
		for _, c := range d.Cards {
			if c.Serial == activeSerial && (len(c.Events) != 2 || c.Events[0].Kind != cms.KindReprint ||
				c.Events[1].Kind != cms.KindReader || c.Readers != 1 || c.State != cms.CardActive) {
				t.Fatalf("history of the active card %+v", c)
			}
		}
		// A lookup changes nothing: no event of its own.
		if h, _ := e.s.History(activeSerial); len(h) != 2 {
			t.Fatalf("history has %d events", len(h))
		}
		if strings.Contains(string(out.Data), activeRef.CF) {
			t.Error("history data repeats the CF")
		}
	}
}

func TestHistory(t *testing.T) {
	type R = cms.HistoryRequest
	runTable(t, cms.KindHistory, goodHistory, []opCase[R]{
		{name: "this card", setup: historySetup, check: checkHistory(activeSerial)},
		{name: "all cards of the CF", setup: historySetup, mod: func(r *R) { r.Scope = cms.HistoryAll },
			check: checkHistory(activeSerial, olderSerial)},
		{name: "assisted, all cards", setup: historySetup, mod: func(r *R) { r.Channel, r.Operator, r.Scope, r.Document = cms.Assisted, operator, cms.HistoryAll, doc() },
			check: checkHistory(activeSerial, olderSerial)},
		{name: "assisted, a revoked card", mod: func(r *R) { r.Card, r.Channel, r.Operator, r.Document = revokedRef, cms.Assisted, operator, doc() },
			check: func(t *testing.T, e *env, out cms.Outcome) {
				if d := data[cms.HistoryResult](t, out); len(d.Cards) != 1 || d.Cards[0].State != cms.CardRevoked {
					t.Fatalf("data %+v", d)
				}
			}},

		{name: "self-service, a revoked card", mod: func(r *R) { r.Card = revokedRef }, want: []string{cms.CodeCardRevoked}},
		{name: "no scope", mod: func(r *R) { r.Scope = "" }, want: []string{cms.CodeBadPayload}},
		{name: "CF mismatch", mod: func(r *R) { r.Card.CF = adultRef.CF }, want: []string{cms.CodeCardMismatch}},
		{name: "unknown card", mod: func(r *R) { r.Card.Serial = "6090044444444000" }, want: []string{cms.CodeCardUnknown}},
		{name: "assisted without operator", mod: func(r *R) { r.Channel, r.Document = cms.Assisted, doc() }, want: []string{cms.CodeOperator}},
		{name: "assisted without document", mod: func(r *R) { r.Channel, r.Operator = cms.Assisted, operator }, want: []string{cms.CodeDocument}},
		{name: "assisted, document expired", mod: func(r *R) {
			r.Channel, r.Operator, r.Document = cms.Assisted, operator, doc()
			r.Document.Expiry = "2020-01-01"
		}, want: []string{cms.CodeDocument}},
	})
}

func goodPINEvent() cms.PINEvent {
	return cms.PINEvent{Card: activeRef, Channel: cms.SelfService, Result: cms.PINOK}
}

func TestPINEvents(t *testing.T) {
	type R = cms.PINEvent
	for _, kind := range []string{cms.KindPINChange, cms.KindPINUnblock} {
		t.Run(kind, func(t *testing.T) {
			recorded := func(result string) func(*testing.T, *env, cms.Outcome) {
				return func(t *testing.T, e *env, out cms.Outcome) {
					h, _ := e.s.History(activeSerial)
					if len(h) != 1 || h[0].Kind != kind || h[0].Detail != result || out.Data != nil {
						t.Fatalf("history %+v data %s", h, out.Data)
					}
				}
			}
			const card = `"card":{"serial":"6090012345678000","cf":"RSSMRA80A01H501U","expiry":"2030-12-31"}`
			runTable(t, kind, goodPINEvent, []opCase[R]{
				{name: "ok", check: recorded(cms.PINOK)},
				{name: "wrong", mod: func(r *R) { r.Result = cms.PINWrong }, check: recorded(cms.PINWrong)},
				{name: "blocked", mod: func(r *R) { r.Result = cms.PINBlocked }, check: recorded(cms.PINBlocked)},

				{name: "a pin member", raw: `{` + card + `,"channel":"self","result":"ok","pin":"12345"}`, want: []string{cms.CodePINData}},
				{name: "a new_pin member", raw: `{` + card + `,"channel":"self","result":"ok","new_pin":""}`, want: []string{cms.CodePINData}},
				{name: "a PUK member", raw: `{` + card + `,"channel":"self","result":"ok","PUK":"x"}`, want: []string{cms.CodePINData}},
				{name: "a PIN-like value", raw: `{` + card + `,"channel":"self","result":"ok","note":"12345678"}`, want: []string{cms.CodePINData}},
				{name: "a PIN-like number", raw: `{` + card + `,"channel":"self","result":"ok","x":[1,{"y":98765}]}`, want: []string{cms.CodePINData}},
				{name: "a PIN as the result", mod: func(r *R) { r.Result = "54321" }, want: []string{cms.CodePINData}},
				{name: "nested", raw: `{"card":{"serial":"6090012345678000","pin_nuovo":"x"},"channel":"self","result":"ok"}`, want: []string{cms.CodePINData}},
				{name: "bad result", mod: func(r *R) { r.Result = "boh" }, want: []string{cms.CodeBadPayload}},
				{name: "assisted", mod: func(r *R) { r.Channel = cms.Assisted }, want: []string{cms.CodeBadPayload}},
				{name: "unknown card", mod: func(r *R) { r.Card.Serial = "6090044444444000" }, want: []string{cms.CodeCardUnknown}},
				{name: "CF mismatch", mod: func(r *R) { r.Card.CF = adultRef.CF }, want: []string{cms.CodeCardMismatch}},
			})
		})
	}
}

func TestRefusedKinds(t *testing.T) {
	for _, tc := range []struct{ kind, code, says string }{
		{cms.KindSuspension, cms.CodeNoSuspension, "non possono più essere sospese"},
		{cms.KindReactivation, cms.CodeNoReactivation, "non possono più essere riattivate"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			runTable(t, tc.kind, func() cms.RevocationRequest { return goodRevocation() }, []opCase[cms.RevocationRequest]{
				{name: "well-formed", want: []string{tc.code}, check: func(t *testing.T, e *env, out cms.Outcome) {
					if !strings.Contains(out.Rejects[0].Message, tc.says) || !strings.Contains(out.Rejects[0].Message, "revoca") {
						t.Fatalf("message %q", out.Rejects[0].Message)
					}
					if a, _ := e.s.Audit(); a[len(a)-1].Serial != activeSerial || a[len(a)-1].Operator != operator {
						t.Fatalf("audit %+v", a[len(a)-1])
					}
				}},
				{name: "of a revoked card", mod: func(r *cms.RevocationRequest) { r.Card = revokedRef }, want: []string{tc.code}},
				{name: "garbage", raw: `not json`, want: []string{tc.code}},
			})
		})
	}
}

func goodReissue() cms.ReissueRequest {
	return cms.ReissueRequest{Card: activeRef, Attendance: cms.Attendance{Channel: cms.Assisted, Operator: operator, Document: doc()},
		Reason: cms.ReasonMalfunction}
}

// atCounter is the hub's word that the totem is an enabled counter.
func atCounter(op *cms.Op) { op.Counter = true }

func checkReissue(serial string) func(*testing.T, *env, cms.Outcome) {
	return func(t *testing.T, e *env, out cms.Outcome) {
		re, err := e.s.Reissue(serial)
		if d := data[cms.ReissueResult](t, out); err != nil || re.ID != out.Protocol || re.Source != cms.KindReissue || d.Reissue != re.ID {
			t.Fatalf("reissue %+v %v data %s", re, err, out.Data)
		}
	}
}

func TestReissue(t *testing.T) {
	type R = cms.ReissueRequest
	cases := []opCase[R]{
		{name: "holder", check: checkReissue(activeSerial)},
		{name: "parent of a minor", mod: func(r *R) {
			r.Card = minorRef
			r.Delegate = &cms.Delegation{Kind: cms.DelegParental, Name: "Giuseppe Verdi", CF: parentCF}
			r.Declaration = true
		}, check: checkReissue(minorSerial)},
		{name: "parent without the declaration", mod: func(r *R) {
			r.Card = minorRef
			r.Delegate = &cms.Delegation{Kind: cms.DelegParental, Name: "Giuseppe Verdi", CF: parentCF}
		}, want: []string{cms.CodeDeclaration}},
		{name: "tutore", mod: func(r *R) {
			r.Delegate = &cms.Delegation{Kind: cms.DelegTutor, Name: "Stefania Bianchi", CF: tutorCF}
			r.Declaration = true
		}, check: checkReissue(activeSerial)},
		{name: "a revoked card", mod: func(r *R) { r.Card = revokedRef }, check: checkReissue(revokedSerial)},

		{name: "counter not enabled", opMod: func(*cms.Op) {}, want: []string{cms.CodeReissueCounter}},
		{name: "counter not enabled, self-service", opMod: func(*cms.Op) {}, mod: func(r *R) { r.Channel, r.Operator = cms.SelfService, "" },
			want: []string{cms.CodeReissueCounter}},
		// The totem's own claim is no field of the request: refused whole.
		{name: "the totem claims to be a counter", opMod: func(*cms.Op) {},
			raw:  `{"card":{"serial":"6090012345678000","cf":"RSSMRA80A01H501U","expiry":"2030-12-31"},"channel":"assisted","operator":"8090000000042006","reason":"malfunzionamento","counter_enabled":true}`,
			want: []string{cms.CodeBadPayload}},
		{name: "self-service", mod: func(r *R) { r.Channel, r.Operator = cms.SelfService, "" }, want: []string{cms.CodeAssistedOnly}},
		{name: "curatore", mod: func(r *R) {
			r.Delegate = &cms.Delegation{Kind: cms.DelegCurator, Name: "Stefania Bianchi", CF: tutorCF}
		}, want: []string{cms.CodeReissueRequester}},
		{name: "parent of an adult", mod: func(r *R) {
			r.Delegate = &cms.Delegation{Kind: cms.DelegParental, Name: "Giuseppe Verdi", CF: parentCF}
			r.Declaration = true
		}, want: []string{cms.CodeDelegation}},
		{name: "already requested with the revocation", setup: func(e *env) { e.mustAccept(cms.KindRevocation, goodRevocation()) },
			mod: func(r *R) { r.Card = activeRef }, want: []string{cms.CodeReissuePending}},
		{name: "no reason", mod: func(r *R) { r.Reason = "" }, want: []string{cms.CodeReason}},
		{name: "no document", mod: func(r *R) { r.Document = nil }, want: []string{cms.CodeDocument}},
		{name: "no operator", mod: func(r *R) { r.Operator = "" }, want: []string{cms.CodeOperator}},
		{name: "tutore without a document", mod: func(r *R) {
			r.Delegate = &cms.Delegation{Kind: cms.DelegTutor, Name: "Stefania Bianchi", CF: tutorCF}
			r.Declaration = true
			r.Document = nil
		}, want: []string{cms.CodeDocument}},
	}
	for i := range cases {
		if cases[i].opMod == nil {
			cases[i].opMod = atCounter
		}
	}
	runTable(t, cms.KindReissue, goodReissue, cases)
}

func goodWrongData() cms.WrongDataReport {
	return cms.WrongDataReport{Card: activeRef, Channel: cms.SelfService, Fields: []string{"cognome", "data_nascita"}}
}

func TestWrongData(t *testing.T) {
	type R = cms.WrongDataReport
	recorded := func(t *testing.T, e *env, out cms.Outcome) {
		d := data[cms.WrongDataResult](t, out)
		if d.Guidance != cms.GuidanceSceltaRevoca || !strings.Contains(d.Guidance, "Scelta e Revoca") || d.Report != out.Protocol {
			t.Fatalf("data %+v", d)
		}
		if c := e.card(activeSerial); !c.DataReported || c.State != cms.CardActive {
			t.Fatalf("card %+v", c)
		}
		if h, _ := e.s.History(activeSerial); len(h) != 1 || h[0].Kind != cms.KindWrongData {
			t.Fatalf("history %+v", h)
		}
	}
	runTable(t, cms.KindWrongData, goodWrongData, []opCase[R]{
		{name: "self-service", check: recorded},
		{name: "assisted", mod: func(r *R) { r.Channel, r.Operator = cms.Assisted, operator }, check: recorded},
		{name: "no field named", mod: func(r *R) { r.Fields = nil }, check: recorded},

		{name: "unknown field", mod: func(r *R) { r.Fields = []string{"reddito"} }, want: []string{cms.CodeBadPayload}},
		{name: "revoked card", mod: func(r *R) { r.Card = revokedRef }, want: []string{cms.CodeCardRevoked}},
		{name: "unknown card", mod: func(r *R) { r.Card.Serial = "6090044444444000" }, want: []string{cms.CodeCardUnknown}},
	})
}

func TestConsentChannelRules(t *testing.T) {
	type R = cms.ConsentRequest
	runTable(t, cms.KindConsent, goodRequest, []opCase[R]{
		{name: "assisted", mod: assistedConsent,
			check: func(t *testing.T, e *env, out cms.Outcome) {
				if d := data[cms.ConsentResult](t, out); d.FSE != cms.FSECreated {
					t.Fatalf("data %+v", d)
				}
				if h, _ := e.s.History(activeSerial); len(h) != 1 || h[0].Kind != cms.KindConsent {
					t.Fatalf("history %+v", h)
				}
				if rec, err := e.s.Consents(activeSerial); err != nil || rec.Delegate != nil || rec.Operator != operator {
					t.Fatalf("consents %+v %v", rec, err)
				}
			}},
		{name: "assisted without operator", mod: func(r *R) { assistedConsent(r); r.Operator = "" }, want: []string{cms.CodeOperator}},
		{name: "assisted without document", mod: func(r *R) { assistedConsent(r); r.Document = nil }, want: []string{cms.CodeDocument}},
		{name: "assisted, document expired", mod: func(r *R) { assistedConsent(r); r.Document.Expiry = "2020-01-01" }, want: []string{cms.CodeDocument}},
		{name: "assisted, document not checked", mod: func(r *R) { assistedConsent(r); r.Document.Checked = false }, want: []string{cms.CodeDocument}},
		{name: "self-service with operator", mod: func(r *R) { r.Operator = operator }, want: []string{cms.CodeOperator}},
		{name: "card not activated", mod: func(r *R) { r.Card = adultRef }, want: []string{cms.CodeCardNotActive}},
	})
}

func assistedConsent(r *cms.ConsentRequest) {
	r.Channel, r.Operator, r.Document = cms.Assisted, operator, doc()
}

// activeMinor activates the minor's card for the parent, so that
// consents can be given for it.
func activeMinor(e *env) {
	a := goodActivation()
	parental(&a)
	e.mustAccept(cms.KindActivation, a)
}

// Seed 001: "diretto interessato o delegato (potestà parentale / tutore /
// curatore)" gives the FSE consents; the CMS checks the delegate as for an
// activation: potestà only for a minor, name and CF, not the holder, the
// dichiarazione sostitutiva signed, and only at a counter.
func TestConsentByDelegate(t *testing.T) {
	type R = cms.ConsentRequest
	delegate := func(kind, cf string) func(*R) {
		return func(r *R) {
			assistedConsent(r)
			r.Delegate = &cms.Delegation{Kind: kind, Name: "Giuseppe Verdi", CF: cf}
			r.Declaration = true
		}
	}
	recorded := func(serial, kind string) func(*testing.T, *env, cms.Outcome) {
		return func(t *testing.T, e *env, out cms.Outcome) {
			rec, err := e.s.Consents(serial)
			if err != nil || rec.Delegate == nil || rec.Delegate.Kind != kind || rec.Protocol != out.Protocol || rec.Channel != cms.Assisted {
				t.Fatalf("consents %+v %v", rec, err)
			}
			if d := data[cms.ConsentResult](t, out); d.FSE != cms.FSECreated {
				t.Fatalf("data %+v", d)
			}
		}
	}
	minor := func(f func(*R)) func(*R) { return func(r *R) { f(r); r.Card = minorRef } }
	runTable(t, cms.KindConsent, goodRequest, []opCase[R]{
		{name: "parent for a minor", setup: activeMinor, mod: minor(delegate(cms.DelegParental, parentCF)),
			check: recorded(minorSerial, cms.DelegParental)},
		{name: "tutore for a minor", setup: activeMinor, mod: minor(delegate(cms.DelegTutor, tutorCF)),
			check: recorded(minorSerial, cms.DelegTutor)},
		{name: "tutore for an adult", mod: delegate(cms.DelegTutor, tutorCF), check: recorded(activeSerial, cms.DelegTutor)},
		{name: "curatore for an adult", mod: delegate(cms.DelegCurator, tutorCF), check: recorded(activeSerial, cms.DelegCurator)},

		{name: "potestà parentale for an adult", mod: delegate(cms.DelegParental, parentCF), want: []string{cms.CodeDelegation}},
		{name: "without the declaration", setup: activeMinor,
			mod: func(r *R) { minor(delegate(cms.DelegParental, parentCF))(r); r.Declaration = false }, want: []string{cms.CodeDeclaration}},
		{name: "self-service with a delegate", mod: func(r *R) {
			r.Delegate, r.Declaration = &cms.Delegation{Kind: cms.DelegTutor, Name: "Giuseppe Verdi", CF: tutorCF}, true
		}, want: []string{cms.CodeDelegation}},
		{name: "delegate is the holder", mod: delegate(cms.DelegTutor, activeRef.CF), want: []string{cms.CodeDelegation}},
		{name: "delegate's CF check character wrong", mod: delegate(cms.DelegTutor, "BNCSFN72B41F205A"), want: []string{cms.CodeDelegation}},
		{name: "delegate without a name", mod: func(r *R) { delegate(cms.DelegTutor, tutorCF)(r); r.Delegate.Name = " " },
			want: []string{cms.CodeDelegation}},
		{name: "unknown delegation", mod: func(r *R) { delegate(cms.DelegTutor, tutorCF)(r); r.Delegate.Kind = "nonno" },
			want: []string{cms.CodeDelegation}},
		{name: "delegate without a document", mod: func(r *R) { delegate(cms.DelegTutor, tutorCF)(r); r.Document = nil },
			want: []string{cms.CodeDocument}},
		{name: "the minor's card not activated", mod: minor(delegate(cms.DelegParental, parentCF)), want: []string{cms.CodeCardNotActive}},
	})
}

func goodLookup() cms.LookupRequest {
	return cms.LookupRequest{Card: activeRef, Channel: cms.Assisted, Operator: operator}
}

// The second identity check (seed 002, step 5): the operator reads the
// CMS's record of the card, by the chip's data or by a TEAM code, to
// compare it with the document; a card the CMS knows otherwise is sent
// to the sportello Scelta e Revoca. Nothing changes.
func TestLookup(t *testing.T) {
	type R = cms.LookupRequest
	shows := func(surname, birth string, state cms.CardState, contact string) func(*testing.T, *env, cms.Outcome) {
		return func(t *testing.T, e *env, out cms.Outcome) {
			d := data[cms.LookupResult](t, out)
			if d.Surname != surname || d.BirthDate != birth || d.State != state || d.Contact != contact || d.Name == "" {
				t.Fatalf("data %+v", d)
			}
			if h, _ := e.s.History(activeSerial); len(h) != 0 {
				t.Fatalf("history %+v", h)
			}
		}
	}
	runTable(t, cms.KindLookup, goodLookup, []opCase[R]{
		{name: "active card", check: shows("ROSSI", "1980-01-01", cms.CardActive, "SMS *********0001")},
		{name: "a minor's card waiting for activation", mod: func(r *R) { r.Card = minorRef },
			check: shows("VERDI", "2015-03-10", cms.CardIssued, "")},
		{name: "a revoked card", mod: func(r *R) { r.Card = revokedRef }, check: shows("BIANCHI", "", cms.CardRevoked, "")},
		{name: "by TEAM code", mod: func(r *R) { r.Card, r.TEAM = cms.CardRef{}, cms.TEAM(activeSerial) },
			check: shows("ROSSI", "1980-01-01", cms.CardActive, "SMS *********0001")},

		{name: "CF not the CMS's", mod: func(r *R) { r.Card.CF = adultRef.CF }, want: []string{cms.CodeCardMismatch}},
		{name: "expiry not the CMS's", mod: func(r *R) { r.Card.Expiry = "2031-12-31" }, want: []string{cms.CodeCardMismatch}},
		{name: "unknown card", mod: func(r *R) { r.Card.Serial = "6090044444444000" }, want: []string{cms.CodeCardUnknown}},
		{name: "unknown TEAM code", mod: func(r *R) { r.Card, r.TEAM = cms.CardRef{}, "80380000000000000000" }, want: []string{cms.CodeCardUnknown}},
		{name: "no card", mod: func(r *R) { r.Card = cms.CardRef{} }, want: []string{cms.CodeCardUnknown}},
		{name: "self-service", mod: func(r *R) { r.Channel, r.Operator = cms.SelfService, "" }, want: []string{cms.CodeAssistedOnly}},
		{name: "not an operator card", mod: func(r *R) { r.Operator = activeSerial }, want: []string{cms.CodeOperator}},
	})
}

// Options.CIPs fixes a card's CIP (the demo cards' cms.DemoCIP, in the
// README): the revocation takes it, and a derived one is refused.
func TestFixedCIP(t *testing.T) {
	s, err := openAt(t, filepath.Join(t.TempDir(), "cms.db"), &Options{Seed: cms.DemoCards(), CIPs: cms.DemoCIPs()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.CIP(activeSerial); got != cms.DemoCIP {
		t.Fatalf("CIP %q, want %q", got, cms.DemoCIP)
	}
	if got := s.CIP("6090099999999999"); got == cms.DemoCIP || len(got) != cms.CIPDigits {
		t.Fatalf("a card not fixed has CIP %q", got)
	}
}

// A query spends no protocol number: the Storico gets a reference of its
// own series ("C…"), and the next request's protocol number follows the
// last request's (issue 17).
func TestQueryHasItsOwnSeries(t *testing.T) {
	e := newEnv(t, nil)
	first := e.mustAccept(cms.KindHistory, goodHistory())
	if !strings.HasPrefix(first.Protocol, "C") || len(first.Protocol) != 16 {
		t.Fatalf("query reference %q", first.Protocol)
	}
	a := e.mustAccept(cms.KindHistory, goodHistory())
	b := e.do(cms.KindHistory, goodHistory())
	if a.Protocol == first.Protocol || b.Protocol == a.Protocol {
		t.Fatalf("query references %q %q %q", first.Protocol, a.Protocol, b.Protocol)
	}
	req := e.do(cms.KindRevocation, goodRevocation())
	if strings.HasPrefix(req.Protocol, "C") || !strings.HasSuffix(req.Protocol, "000000001") {
		t.Fatalf("the first request's protocol %q: the queries spent numbers", req.Protocol)
	}
}
