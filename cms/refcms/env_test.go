package refcms

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
)

// Demo cards (cms.DemoCards) and people used by the tests.
const (
	activeSerial  = "6090012345678000" // RSSMRA80A01H501U, adult, active, SMS contact
	revokedSerial = "6090098765432002"
	minorSerial   = "6090011111111006" // issued, holder born 2015
	adultSerial   = "6090022222222004" // issued, holder born 1970
	operator      = "8090000000042006" // an operator card, level 8
	parentCF      = "VRDGPP60A01H501Q"
	tutorCF       = "BNCSFN72B41F205E"
)

var (
	activeRef  = cms.CardRef{Serial: activeSerial, CF: "RSSMRA80A01H501U", Expiry: "2030-12-31"}
	revokedRef = cms.CardRef{Serial: revokedSerial, CF: "BNCLRA75D45F205C", Expiry: "2029-06-30"}
	minorRef   = cms.CardRef{Serial: minorSerial, CF: "VRDLCU15C10H501Y", Expiry: "2031-03-31"}
	adultRef   = cms.CardRef{Serial: adultSerial, CF: "VRDNNA70M50F205B", Expiry: "2032-08-31"}
)

func doc() *cms.IDDocument {
	return &cms.IDDocument{Type: cms.DocIdentityCard, Number: "CA12345AB", Issuer: "Comune di Roma", Expiry: "2030-05-01", Checked: true}
}

// env is a store with a per-totem sequence counter.
type env struct {
	t    *testing.T
	s    *Store
	path string
	seq  map[string]uint64
	n    int // op ids
}

func newEnv(t *testing.T, opts *Options) *env {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	opts.Seed = cms.DemoCards()
	path := filepath.Join(t.TempDir(), "cms.db")
	s, err := openAt(t, path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &env{t: t, s: s, path: path, seq: map[string]uint64{}}
}

// op builds the next operation of totem t1 at now.
func (e *env) op(kind string, payload any) cms.Op {
	e.t.Helper()
	return e.opAs("t1", now, kind, payload)
}

func (e *env) opAs(totem string, at time.Time, kind string, payload any) cms.Op {
	e.t.Helper()
	var b []byte
	switch p := payload.(type) {
	case string:
		b = []byte(p)
	default:
		var err error
		if b, err = json.Marshal(p); err != nil {
			e.t.Fatal(err)
		}
	}
	e.seq[totem]++
	e.n++
	return cms.Op{ID: id(e.n), Totem: totem, Seq: e.seq[totem], Kind: kind, Payload: b, Received: at}
}

func (e *env) apply(op cms.Op) cms.Outcome {
	e.t.Helper()
	out, err := e.s.Apply(context.Background(), op)
	if err != nil {
		e.t.Fatal(err)
	}
	if out.Protocol == "" || out.Duplicate || out.OutOfOrder {
		e.t.Fatalf("outcome %+v", out)
	}
	return out
}

func (e *env) do(kind string, payload any) cms.Outcome {
	e.t.Helper()
	return e.apply(e.op(kind, payload))
}

// mustAccept applies and fails the test unless accepted.
func (e *env) mustAccept(kind string, payload any) cms.Outcome {
	e.t.Helper()
	out := e.do(kind, payload)
	if !out.Accepted {
		e.t.Fatalf("%s rejected: %+v", kind, out.Rejects)
	}
	return out
}

func (e *env) card(serial string) cms.Card {
	e.t.Helper()
	c, err := e.s.Card(serial)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// snapshot is everything an operation may change of the cards' records.
type snapshot struct {
	cards    []cms.Card
	notes    int
	history  map[string]int
	consents map[string]ConsentRecord
}

func (e *env) snapshot() snapshot {
	e.t.Helper()
	sn := snapshot{history: map[string]int{}, consents: map[string]ConsentRecord{}}
	for _, d := range cms.DemoCards() {
		c, err := e.s.Card(d.Serial)
		if err != nil {
			e.t.Fatal(err)
		}
		sn.cards = append(sn.cards, c)
		h, _ := e.s.History(d.Serial)
		sn.history[d.Serial] = len(h)
		if r, err := e.s.Consents(d.Serial); err == nil {
			sn.consents[d.Serial] = r
		}
	}
	n, _ := e.s.Notifications("")
	sn.notes = len(n)
	return sn
}

// codesOf returns the distinct reject codes of out, sorted.
func codesOf(out cms.Outcome) []string {
	var cs []string
	for _, r := range out.Rejects {
		if !slices.Contains(cs, r.Code) {
			cs = append(cs, r.Code)
		}
		if r.Message == "" {
			panic("reject without a message: " + r.Code)
		}
	}
	slices.Sort(cs)
	return cs
}

// opCase is one row of an operation's table: a payload (or a change to the
// table's good payload), what must happen, and what to check after.
type opCase[P any] struct {
	name  string
	mod   func(*P)
	raw   string // a raw payload instead
	setup func(*env)
	at    time.Time
	opMod func(*cms.Op) // the hub's side of the operation (Counter)
	want  []string      // the reject codes; nil: accepted
	check func(*testing.T, *env, cms.Outcome)
}

// runTable runs each case on a fresh store: an accepted case runs its check;
// a rejected one must leave every card record, consent, history and the
// notification sink exactly as they were.
func runTable[P any](t *testing.T, kind string, good func() P, cases []opCase[P]) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			if tc.setup != nil {
				tc.setup(e)
			}
			var payload any
			if tc.raw != "" {
				payload = tc.raw
			} else {
				p := good()
				if tc.mod != nil {
					tc.mod(&p)
				}
				payload = p
			}
			before := e.snapshot()
			op := e.op(kind, payload)
			if !tc.at.IsZero() {
				op.Received = tc.at
			}
			if tc.opMod != nil {
				tc.opMod(&op)
			}
			out := e.apply(op)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if got := codesOf(out); !slices.Equal(got, want) || out.Accepted != (len(want) == 0) {
				t.Fatalf("accepted=%v codes %v, want %v (%+v)", out.Accepted, got, want, out.Rejects)
			}
			if !out.Accepted {
				if out.Data != nil {
					t.Errorf("rejected outcome has data %s", out.Data)
				}
				if after := e.snapshot(); !reflect.DeepEqual(before, after) {
					t.Fatalf("a rejected %s changed the records:\nbefore %+v\nafter  %+v", kind, before, after)
				}
			}
			if tc.check != nil {
				tc.check(t, e, out)
			}
		})
	}
}

func data[T any](t *testing.T, out cms.Outcome) T {
	t.Helper()
	var v T
	if err := strictJSON(out.Data, &v); err != nil {
		t.Fatalf("data %s: %v", out.Data, err)
	}
	return v
}
