package refcms

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
)

// The citizen's data an operation left — the notification with the second
// halves and the contact, the stored result with the first halves — are
// purged once older than the retention, and only then; the cards, the
// history, the audit and the send log stay, and a duplicate of a purged
// operation is still answered as one (never applied again), without data.
func TestPurgeCitizenData(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		name      string
		after     time.Duration // since the old operations
		wantNotes int           // notifications left
		wantData  bool          // the old activation's data still stored
	}{
		{"within the retention", 89 * day, 2, true},
		{"past the retention", 91 * day, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, &Options{CitizenRetention: 90 * day})
			act := e.opAs("t1", now, cms.KindActivation, goodActivation())
			if out := e.apply(act); !out.Accepted || len(out.Data) == 0 {
				t.Fatalf("activation %+v", out)
			}
			late := now.Add(60 * day)
			if out := e.apply(e.opAs("t1", late, cms.KindReprint, goodReprint())); !out.Accepted {
				t.Fatalf("reprint %+v", out)
			}
			cards, audit := e.snapshot(), mustAudit(t, e.s)
			sent, _, _ := e.s.SendLog(cms.SendLogFilter{})

			rep, err := e.s.PurgeCitizenData(now.Add(tc.after))
			if err != nil {
				t.Fatal(err)
			}
			notes, _ := e.s.Notifications("")
			if len(notes) != tc.wantNotes || rep.Notifications != 2-tc.wantNotes {
				t.Fatalf("notifications %d left, report %+v", len(notes), rep)
			}
			if !tc.wantData {
				for _, n := range notes {
					if n.Serial == adultSerial {
						t.Fatal("the old notification is still there")
					}
				}
			}
			after := e.snapshot()
			after.notes = cards.notes // counted above
			if !reflect.DeepEqual(cards, after) || !reflect.DeepEqual(audit, mustAudit(t, e.s)) {
				t.Fatal("the purge changed the cards or the audit")
			}
			if after, _, _ := e.s.SendLog(cms.SendLogFilter{}); !reflect.DeepEqual(after, sent) {
				t.Fatalf("send log %+v, was %+v", after, sent)
			}
			dup, err := e.s.Apply(context.Background(), act)
			if err != nil || !dup.Duplicate || !dup.Accepted || (len(dup.Data) > 0) != tc.wantData {
				t.Fatalf("duplicate of the activation %+v %v", dup, err)
			}
			if again, _ := e.s.PurgeCitizenData(now.Add(tc.after)); again != (PurgeReport{}) {
				t.Fatalf("a second purge removed %+v", again)
			}
		})
	}
}

func mustAudit(t *testing.T, s *Store) []AuditRecord {
	t.Helper()
	a, err := s.Audit()
	if err != nil {
		t.Fatal(err)
	}
	return a
}
