package refcms

import (
	"bytes"
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
)

// A totem that misbehaves — a modified firmware, a replayed or forged
// operation — cannot corrupt a card's record: every operation against the
// rules is rejected with its code and leaves the records as they were, one
// after the other on the same store.
func TestMisbehavingTotemCannotCorruptCard(t *testing.T) {
	e := newEnv(t, nil)
	// A reader bought legitimately, whose receipt the totem then reuses.
	e.mustAccept(cms.KindReader, goodReader())
	const pinPayload = `{"card":{"serial":"6090012345678000","cf":"RSSMRA80A01H501U","expiry":"2030-12-31"},"channel":"self","result":"ok","old_pin":"12345","new_pin":"54321"}`
	tests := []struct {
		name    string
		kind    string
		payload any
		code    string
	}{
		{"revocation with a wrong CIP", cms.KindRevocation, selfRevocation(e, wrongCIP(e)), cms.CodeCIPWrong},
		{"consent for a revoked card", cms.KindConsent, func() cms.ConsentRequest {
			r := goodRequest()
			r.Card = revokedRef
			return r
		}(), cms.CodeCardRevoked},
		{"second activation", cms.KindActivation, func() cms.ActivationRequest {
			r := goodActivation()
			r.Card = activeRef
			return r
		}(), cms.CodeAlreadyActive},
		{"reprint for a revoked card", cms.KindReprint, func() cms.ReprintRequest {
			r := goodReprint()
			r.Card = revokedRef
			return r
		}(), cms.CodeCardRevoked},
		{"activation without an operator", cms.KindActivation, func() cms.ActivationRequest {
			r := goodActivation()
			r.Operator = ""
			return r
		}(), cms.CodeOperator},
		{"activation claiming self-service", cms.KindActivation, func() cms.ActivationRequest {
			r := goodActivation()
			r.Channel, r.Operator = cms.SelfService, ""
			return r
		}(), cms.CodeAssistedOnly},
		{"reader request reusing a payment reference", cms.KindReader, goodReader(), cms.CodePaymentReused},
		{"PIN audit event carrying a PIN", cms.KindPINChange, pinPayload, cms.CodePINData},
		{"suspension", cms.KindSuspension, goodRevocation(), cms.CodeNoSuspension},
		{"reactivation of a revoked card", cms.KindReactivation, cms.RevocationRequest{Card: revokedRef, Attendance: cms.Attendance{Channel: cms.SelfService}}, cms.CodeNoReactivation},
		{"reissue at a counter not enabled", cms.KindReissue, goodReissue(), cms.CodeReissueCounter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.snapshot()
			out := e.do(tt.kind, tt.payload)
			if out.Accepted || !slices.Contains(codesOf(out), tt.code) {
				t.Fatalf("outcome %+v, want %s", out, tt.code)
			}
			if after := e.snapshot(); !reflect.DeepEqual(before, after) {
				t.Fatalf("records changed:\nbefore %+v\nafter  %+v", before, after)
			}
			a, _ := e.s.Audit()
			if last := a[len(a)-1]; last.Accepted || last.Protocol != out.Protocol || !slices.Contains(last.Codes, tt.code) {
				t.Fatalf("audit %+v", last)
			}
		})
	}
	if c := e.card(activeSerial); c.State != cms.CardActive || c.Readers != 1 {
		t.Fatalf("active card at the end %+v", c)
	}
}

// A duplicate of an online operation returns the stored outcome, Data
// included, even after a restart, and applies nothing again.
func TestOnlineDuplicatesReturnStoredData(t *testing.T) {
	e := newEnv(t, nil)
	ops := []cms.Op{
		e.op(cms.KindActivation, goodActivation()),
		e.op(cms.KindReprint, goodReprint()),
		e.op(cms.KindHistory, cms.HistoryRequest{Card: activeRef, Attendance: cms.Attendance{Channel: cms.SelfService}, Scope: cms.HistoryAll}),
		e.op(cms.KindRevocation, selfRevocation(e, "")),
		e.op(cms.KindConsent, func() cms.ConsentRequest { r := goodRequest(); r.Card = adultRef; return r }()),
	}
	var outs []cms.Outcome
	for _, op := range ops {
		out := e.apply(op)
		if !out.Accepted || len(out.Data) == 0 {
			t.Fatalf("%s: %+v", op.Kind, out)
		}
		outs = append(outs, out)
	}
	notes, _ := e.s.Notifications("")
	audit, _ := e.s.Audit()
	e.s.Close()
	s, err := openAt(t, e.path, &Options{Seed: cms.DemoCards()})
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	for i, op := range ops {
		op.Received = now.Add(time.Hour) // a later copy: the stored outcome all the same
		dup, err := s.Apply(context.Background(), op)
		if err != nil {
			t.Fatal(err)
		}
		if !dup.Duplicate || !dup.Accepted || dup.Protocol != outs[i].Protocol || !bytes.Equal(dup.Data, outs[i].Data) {
			t.Fatalf("%s duplicate %+v, first %+v", op.Kind, dup, outs[i])
		}
	}
	// The restart kept the key: the codes are those of the first apply.
	if d := data[cms.ActivationResult](t, outs[0]); d.CIP != s.codes(adultSerial).cip {
		t.Error("the store's key changed across a restart")
	}
	notes2, _ := s.Notifications("")
	audit2, _ := s.Audit()
	if len(notes2) != len(notes) || len(audit2) != len(audit) {
		t.Fatalf("duplicates applied again: %d→%d notifications, %d→%d audit", len(notes), len(notes2), len(audit), len(audit2))
	}
	// The same batch again, in one commit: all duplicates.
	dups, err := s.ApplyBatch(context.Background(), ops)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range dups {
		if !d.Duplicate || !bytes.Equal(d.Data, outs[i].Data) {
			t.Fatalf("batch duplicate %d: %+v", i, d)
		}
	}
}

// Activation, then a reprint: the reprint gives the same codes, to the
// contact chosen at activation.
func TestActivationThenReprint(t *testing.T) {
	e := newEnv(t, nil)
	r := goodActivation()
	parental(&r)
	r.Contact = cms.Contact{Channel: cms.ContactEmail, Address: "genitore@example.it"}
	act := data[cms.ActivationResult](t, e.mustAccept(cms.KindActivation, r))
	rep := data[cms.ReprintResult](t, e.mustAccept(cms.KindReprint, cms.ReprintRequest{Card: minorRef, Attendance: cms.Attendance{Channel: cms.Assisted, Operator: operator, Document: doc()},
		Delegate: r.Delegate, Reason: cms.ReprintLost}))
	if rep.PINFirstHalf != act.PINFirstHalf || rep.PUKFirstHalf != act.PUKFirstHalf {
		t.Fatalf("reprint %+v, activation %+v", rep, act)
	}
	ns, _ := e.s.Notifications(minorSerial)
	if len(ns) != 2 || ns[1].To != "genitore@example.it" || ns[1].Channel != cms.ContactEmail || ns[0].PINSecondHalf != ns[1].PINSecondHalf {
		t.Fatalf("notifications %+v", ns)
	}
	// Two stores with different keys give different codes.
	other := newEnv(t, &Options{Secret: []byte("another key")})
	if other.s.codes(minorSerial) == e.s.codes(minorSerial) {
		t.Error("codes do not depend on the key")
	}
}

// The seed 002 rule for the FSE creation that follows a consent: a CF error
// opens a level-1 ticket at once; technical errors are retried by the CMS
// and open a level-2 ticket after FSERetries attempts.
func TestFSECreation(t *testing.T) {
	const cf = "RSSMRA80A01H501U"
	ok, cfErr, tech := FSEOK, FSECFError, FSETechError
	tests := []struct {
		name    string
		script  []FSEOutcome
		retries int
		rounds  int    // RetryFSE calls after the consent
		first   string // FSE state in the consent's Data
		state   string // after the rounds
		tries   int
		ticket  int    // level of the ticket opened, 0: none
		reason  string // of the ticket
	}{
		{"created at once", []FSEOutcome{ok}, 3, 2, cms.FSECreated, cms.FSECreated, 1, 0, ""},
		{"CF error at once", []FSEOutcome{cfErr}, 3, 2, cms.FSETicket, cms.FSETicket, 1, 1, TicketCF},
		{"technical error then created", []FSEOutcome{tech, tech, ok}, 3, 3, cms.FSEPending, cms.FSECreated, 3, 0, ""},
		{"CF error while retrying", []FSEOutcome{tech, cfErr}, 5, 3, cms.FSEPending, cms.FSETicket, 2, 1, TicketCF},
		{"technical errors exhaust the retries", []FSEOutcome{tech}, 3, 5, cms.FSEPending, cms.FSETicket, 3, 2, TicketTechnical},
		{"still retrying", []FSEOutcome{tech}, 5, 2, cms.FSEPending, cms.FSEPending, 3, 0, ""},
		{"one attempt allowed", []FSEOutcome{tech}, 1, 0, cms.FSETicket, cms.FSETicket, 1, 2, TicketTechnical},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, &Options{FSE: ScriptedFSE(map[string][]FSEOutcome{cf: tt.script}), FSERetries: tt.retries})
			out := e.mustAccept(cms.KindConsent, goodRequest())
			d := data[cms.ConsentResult](t, out)
			if d.FSE != tt.first || d.Retries != tt.retries || d.RetryEvery != 60 {
				t.Fatalf("consent data %+v, want %s", d, tt.first)
			}
			// The answer names the ticket opened at once, for the receipt.
			if (d.FSE == cms.FSETicket) != (d.Ticket != "") || d.FSE == cms.FSETicket && (d.TicketLevel != tt.ticket || d.Attempts != 1) {
				t.Fatalf("consent data %+v", d)
			}
			for range tt.rounds {
				if _, err := e.s.RetryFSE(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			f, err := e.s.FSE(cf)
			if err != nil || f.State != tt.state || f.Attempts != tt.tries || f.Protocol != out.Protocol || f.Serial != activeSerial {
				t.Fatalf("fse %+v %v, want %s after %d attempts", f, err, tt.state, tt.tries)
			}
			tickets, _ := e.s.Tickets()
			if tt.ticket == 0 {
				if len(tickets) != 0 || f.Ticket != "" {
					t.Fatalf("tickets %+v", tickets)
				}
				return
			}
			if len(tickets) != 1 || tickets[0].Level != tt.ticket || tickets[0].Reason != tt.reason || tickets[0].ID != f.Ticket ||
				tickets[0].CF != cf || tickets[0].Attempts != tt.tries || tickets[0].Note == "" {
				t.Fatalf("tickets %+v, fse %+v", tickets, f)
			}
			// A ticket is open: further rounds and consents try nothing more.
			if n, _ := e.s.RetryFSE(context.Background()); n != 0 {
				t.Fatalf("%d retried with a ticket open", n)
			}
			if d := data[cms.ConsentResult](t, e.mustAccept(cms.KindConsent, goodRequest())); d.FSE != cms.FSETicket {
				t.Fatalf("second consent %+v", d)
			}
			if again, _ := e.s.Tickets(); len(again) != 1 {
				t.Fatalf("tickets %+v", again)
			}
		})
	}
}

// The default source answers "codice fiscale errato o mancante" for a
// malformed CF, and the consent in an activation requests the FSE too.
func TestFSEDefaultSource(t *testing.T) {
	e := newEnv(t, nil)
	bad := cms.Card{Serial: "6090044444444000", CF: "BNCLRA75D45F205X", Expiry: "2030-01-31", State: cms.CardActive}
	if err := e.s.PutCard(bad); err != nil {
		t.Fatal(err)
	}
	r := goodRequest()
	r.Card = cms.CardRef{Serial: bad.Serial, CF: bad.CF, Expiry: bad.Expiry}
	if d := data[cms.ConsentResult](t, e.mustAccept(cms.KindConsent, r)); d.FSE != cms.FSETicket {
		t.Fatalf("data %+v", d)
	}
	a := goodActivation()
	a.Consents = consents2020()
	if d := data[cms.ActivationResult](t, e.mustAccept(cms.KindActivation, a)); d.FSE != cms.FSECreated {
		t.Fatalf("activation data %+v", d)
	}
	if ts, _ := e.s.Tickets(); len(ts) != 1 || ts[0].Level != 1 || ts[0].Serial != bad.Serial {
		t.Fatalf("tickets %+v", ts)
	}
}

func TestRunFSERetries(t *testing.T) {
	e := newEnv(t, &Options{FSE: ScriptedFSE(map[string][]FSEOutcome{activeRef.CF: {FSETechError, FSEOK}})})
	e.mustAccept(cms.KindConsent, goodRequest())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.s.RunFSERetries(ctx, time.Millisecond) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if f, _ := e.s.FSE(activeRef.CF); f.State == cms.FSECreated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("FSE never created")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestReport(t *testing.T) {
	e := newEnv(t, nil)
	day1 := now
	day2 := now.Add(24 * time.Hour)
	apply := func(totem string, at time.Time, kind string, p any) {
		t.Helper()
		e.apply(e.opAs(totem, at, kind, p))
	}
	apply("t1", day1, cms.KindConsent, goodRequest())                          // self, accepted
	apply("t1", day1, cms.KindActivation, goodActivation())                    // operator, accepted
	apply("t1", day1, cms.KindActivation, goodActivation())                    // operator, second activation: rejected
	apply("t2", day2, cms.KindReader, goodReader())                            // self, accepted
	apply("t2", day2, cms.KindReader, goodReader())                            // self, receipt reused
	apply("t2", day2, cms.KindSuspension, cms.HistoryRequest{Card: activeRef}) // refused
	apply("t2", day2.Add(time.Hour), cms.KindReprint, goodReprint())           // self, accepted

	row := func(day, totem, op, kind string, acc, rej int, codes map[string]int) ReportRow {
		return ReportRow{Day: day, Totem: totem, Operator: op, Kind: kind, Accepted: acc, Rejected: rej, Codes: codes}
	}
	tests := []struct {
		name string
		f    ReportFilter
		want []ReportRow
	}{
		{"all", ReportFilter{}, []ReportRow{
			row("", "t1", "", cms.KindConsent, 1, 0, nil),
			row("", "t1", operator, cms.KindActivation, 1, 1, map[string]int{cms.CodeAlreadyActive: 1}),
			row("", "t2", "", cms.KindReader, 1, 1, map[string]int{cms.CodePaymentReused: 1}),
			row("", "t2", "", cms.KindReprint, 1, 0, nil),
			row("", "t2", "", cms.KindSuspension, 0, 1, map[string]int{cms.CodeNoSuspension: 1}),
		}},
		{"by operator", ReportFilter{Operator: operator}, []ReportRow{
			row("", "t1", operator, cms.KindActivation, 1, 1, map[string]int{cms.CodeAlreadyActive: 1}),
		}},
		{"by totem and outcome", ReportFilter{Totem: "t2", Outcome: ReportRejected}, []ReportRow{
			row("", "t2", "", cms.KindReader, 0, 1, map[string]int{cms.CodePaymentReused: 1}),
			row("", "t2", "", cms.KindSuspension, 0, 1, map[string]int{cms.CodeNoSuspension: 1}),
		}},
		{"by kind, accepted", ReportFilter{Kind: cms.KindReader, Outcome: ReportAccepted}, []ReportRow{
			row("", "t2", "", cms.KindReader, 1, 0, nil),
		}},
		{"by period", ReportFilter{From: day2, To: day2.Add(time.Hour)}, []ReportRow{
			row("", "t2", "", cms.KindReader, 1, 1, map[string]int{cms.CodePaymentReused: 1}),
			row("", "t2", "", cms.KindSuspension, 0, 1, map[string]int{cms.CodeNoSuspension: 1}),
		}},
		{"by day", ReportFilter{ByDay: true, Kind: cms.KindActivation}, []ReportRow{
			row("2026-11-23", "t1", operator, cms.KindActivation, 1, 1, map[string]int{cms.CodeAlreadyActive: 1}),
		}},
		{"nothing", ReportFilter{Totem: "t9"}, []ReportRow{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.s.Report(tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("report\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	if _, err := e.s.Report(ReportFilter{Outcome: "maybe"}); err == nil {
		t.Error("unknown outcome accepted")
	}
}
