package flows

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	layout "github.com/aslcns/totem/firmware/receipts"
	"github.com/aslcns/totem/firmware/screens"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// fakeTotem is a Totem a test scripts: the keys pressed in order, and
// what the flow asked of it recorded.
type fakeTotem struct {
	keys      []hal.Key
	screens   []string
	submitted map[string][]byte
	finished  []string // the lines of the receipt finished
	printed   []string // the titles of the documents printed
}

func (f *fakeTotem) Show(name string, _ ...any) { f.screens = append(f.screens, name) }
func (f *fakeTotem) Display([]string)           { f.screens = append(f.screens, "(rows)") }
func (f *fakeTotem) Key(_ context.Context, name string, _ func()) (hal.Key, error) {
	if len(f.keys) == 0 {
		return 0, ErrIdle // nobody presses anything more
	}
	k := f.keys[0]
	f.keys = f.keys[1:]
	return k, nil
}
func (f *fakeTotem) Policy() cms.Policy { return cms.Policy2020 }
func (f *fakeTotem) Submit(_ context.Context, kind string, payload []byte) (outbox.Entry, error) {
	if f.submitted == nil {
		f.submitted = map[string][]byte{}
	}
	f.submitted[kind] = payload
	return outbox.Entry{ID: "op", Kind: kind}, nil
}
func (f *fakeTotem) Audit(string, []byte, time.Time) error { return nil }
func (f *fakeTotem) Finish(_ context.Context, _ outbox.Entry, _ string, _ hal.CardInfo, lines []string) error {
	f.finished = lines
	return nil
}
func (f *fakeTotem) Frame() layout.Frame { return layout.Frame{Totem: "t-1"} }
func (f *fakeTotem) Print(_ context.Context, d *hal.Doc, _ string) error {
	f.printed = append(f.printed, d.Title)
	return nil
}

func desk(f *fakeTotem) *Desk {
	return NewDesk(f, screens.IT, slog.New(slog.DiscardHandler), func(k string) string { return k }, nil)
}

// A flow sees the totem only through Totem: the consent flow, self-service,
// asks each consent of the policy, confirms the summary and submits what
// was chosen, with a receipt line per consent.
func TestConsentThroughTheTotemInterface(t *testing.T) {
	f := &fakeTotem{keys: []hal.Key{hal.KeyOK, '1', '2', hal.KeyOK}}
	err := ConsentVia(context.Background(), desk(f), hal.CardInfo{Serial: "s-1"}, &Via{})
	if err != nil {
		t.Fatal(err)
	}
	var req cms.ConsentRequest
	if err := json.Unmarshal(f.submitted[cms.KindConsent], &req); err != nil {
		t.Fatal(err)
	}
	want := []cms.Consent{{Code: "consultazione", Given: true}, {Code: "opposizione_pregresso", Given: false}}
	if req.Channel != cms.SelfService || req.Card.Serial != "s-1" || !slices.Equal(req.Consents, want) {
		t.Fatalf("submitted %+v", req)
	}
	if len(f.finished) != 2 || f.finished[0] != "Consultazione (i medici possono leggere il Fascicolo): SÌ" {
		t.Fatalf("receipt lines %q", f.finished)
	}
}

// The informativa comes before the consents, self-service too: 1 prints
// it (as often as asked), # goes on to the first consent.
func TestConsentInformativaFirst(t *testing.T) {
	f := &fakeTotem{keys: []hal.Key{'1', '1', hal.KeyOK, '1', '1', hal.KeyOK}}
	if err := ConsentVia(context.Background(), desk(f), hal.CardInfo{Serial: "s-1"}, &Via{}); err != nil {
		t.Fatal(err)
	}
	if len(f.screens) == 0 || f.screens[0] != "fse_info" {
		t.Fatalf("screens %q", f.screens)
	}
	if !slices.Equal(f.printed, []string{"Informativa FSE", "Informativa FSE"}) {
		t.Fatalf("printed %q", f.printed)
	}
	if f.submitted[cms.KindConsent] == nil {
		t.Fatal("nothing submitted")
	}
}

// Back on the informativa leaves the flow for the menu, D cancels it,
// and neither submits anything.
func TestConsentBackAndCancel(t *testing.T) {
	for _, tc := range []struct {
		key  hal.Key
		want error
	}{{hal.KeyBack, ErrBack}, {hal.KeyCancel, ErrCancel}} {
		f := &fakeTotem{keys: []hal.Key{tc.key}}
		err := ConsentVia(context.Background(), desk(f), hal.CardInfo{}, &Via{})
		if !errors.Is(err, tc.want) || f.submitted != nil {
			t.Errorf("key %q: err %v, submitted %v", tc.key, err, f.submitted)
		}
	}
}

// Offline, an online-only flow says so, asks nothing, and the next key
// goes back to the menu (not a session ended on a dead screen).
func TestOfflineFlowAsksNothing(t *testing.T) {
	f := &fakeTotem{keys: []hal.Key{hal.KeyCancel, '1'}}
	dk := NewDesk(f, screens.IT, slog.New(slog.DiscardHandler), func(k string) string { return k }, func() bool { return false })
	if err := Reprint(context.Background(), dk, hal.CardInfo{}); !errors.Is(err, ErrBack) {
		t.Fatalf("err %v", err)
	}
	if len(f.keys) != 1 || !slices.Equal(f.screens, []string{"offline_refused"}) || f.submitted != nil {
		t.Fatalf("screens %q, keys left %d, submitted %v", f.screens, len(f.keys), f.submitted)
	}
}

// The panel reads a refusal as the catalogue's texts of its codes, each
// once, in the session's language; never a code or the CMS's message.
func TestRejectionText(t *testing.T) {
	e := outbox.Entry{Done: true, Result: &protocol.Result{Processing: protocol.Processing{Status: protocol.ProcessingRejected,
		Errors: []protocol.Error{{Code: cms.CodeCIPWrong, Message: "CIP errato: restano 2 tentativi."}, {Code: cms.CodeCIPWrong, Message: "x"}}}}}
	if got := RejectionText(screens.EN, e); got != screens.EN.Rejection(cms.CodeCIPWrong) {
		t.Errorf("EN: %q", got)
	}
	e.Result.Processing.Errors = nil
	if got := RejectionText(screens.IT, e); got != screens.IT.Rejection("") || got == "" {
		t.Errorf("no code: %q", got)
	}
	e.Result.Processing.Errors = []protocol.Error{{Code: "X_NEW", Message: "interno"}}
	if got := RejectionText(screens.EN, e); got != "The request was not accepted: please go to the counter." {
		t.Errorf("unknown code: %q", got)
	}
}

// Text entry edits at a cursor: A and B (a keyboard's arrows) move it, *
// deletes before it, Del under it, multi-tap and typed characters insert
// at it (typed ones only those the field takes, in its case).
func TestTextCursor(t *testing.T) {
	for _, tc := range []struct {
		keys []hal.Key
		tap  *[10]string
		init string
		want string
	}{
		{[]hal.Key{'2', '2', '2', 'C', '3', 'A', hal.KeyBack, 'B', '4', '4', hal.KeyOK}, &tapUpper, "", "DH"},
		{[]hal.Key{hal.Char('x'), hal.Char('@'), hal.Char('1'), hal.KeyLeft, hal.KeyLeft, hal.KeyDelete, hal.KeyOK}, &tapUpper, "", "1"},
		{[]hal.Key{hal.Char('A'), hal.Char('@'), hal.Char('b'), hal.KeyOK}, &tapEmail, "", "a@b"},
		{[]hal.Key{hal.Char('o'), hal.Char('1'), hal.Char('\''), hal.KeyOK}, &tapName, "", "O'"},
		// A refused CF comes back with its text, the cursor at the end.
		{[]hal.Key{'A', 'A', hal.KeyBack, '0', hal.KeyOK}, &tapUpper, "RSSMRA80A01H5O1U", "RSSMRA80A01H501U"},
	} {
		f := &fakeTotem{keys: tc.keys}
		got, err := desk(f).text(context.Background(), "t_deleg_cf", tc.tap, 1, 16, tc.init)
		if err != nil || got != tc.want {
			t.Errorf("keys %q: %q, %v; want %q", tc.keys, got, err, tc.want)
		}
	}
	if got := textRow([]byte("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), 3, false); got != "ABC_DEFGHIJKLMNOPQRS" {
		t.Errorf("row %q", got)
	}
	if got := textRow([]byte("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), 26, false); got != "HIJKLMNOPQRSTUVWXYZ_" {
		t.Errorf("row at the end %q", got)
	}
	dk := desk(&fakeTotem{})
	if got := dk.hint(&tapEmail, '1', 2); got != "1: .@[-]_1 C=avanti" {
		t.Errorf("hint %q", got)
	}
}

// TestPrinterKey: the citizen's screen names the printer faults it has a
// text for, and says printer_fault for any other.
func TestPrinterKey(t *testing.T) {
	for err, want := range map[error]string{
		hal.ErrPaperOut:      "paper_out",
		hal.ErrCoverOpen:     "cover_open",
		hal.ErrNotResponding: "not_responding",
		hal.ErrPrinterFault:  "printer_fault",
		hal.ErrTimeout:       "printer_fault",
	} {
		if got := PrinterKey(err); got != want {
			t.Errorf("PrinterKey(%v) = %q, want %q", err, got, want)
		}
	}
}
