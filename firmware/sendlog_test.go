package firmware_test

import (
	"strings"
	"testing"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/firmware"
)

// sendlog_print prints the elenco invii through the print queue: codes
// and outcomes, no personal data.
func TestSendLogPrint(t *testing.T) {
	ctx := ctxT(t)
	d := startDesk(t, true)
	d.consentFlow(ctx)
	d.wait(ctx, "Accolta. Protocollo:")
	d.remove(ctx)
	entries, err := d.box.Recent(5)
	if err != nil || len(entries) != 1 || !entries[0].Done {
		t.Fatalf("entries %+v, %v", entries, err)
	}
	e := entries[0]

	for _, bad := range []string{"x", "0", "-3"} {
		if r := command(ctx, t, d.totem, "sendlog_print", map[string]string{"n": bad}, nil); r.OK || r.Error == "" {
			t.Errorf("n=%s: %+v", bad, r)
		}
	}
	if n := len(d.printer.Receipts()); n != 1 {
		t.Fatalf("%d receipts after refused commands", n)
	}

	var got struct {
		Job     uint64 `json:"job"`
		Entries int    `json:"entries"`
		Printed bool   `json:"printed"`
	}
	if r := command(ctx, t, d.totem, "sendlog_print", map[string]string{"n": "3"}, &got); !r.OK {
		t.Fatalf("sendlog_print: %+v", r)
	}
	rs := d.printer.Receipts()
	if !got.Printed || got.Job == 0 || got.Entries != 1 || len(rs) != 2 {
		t.Fatalf("reply %+v, %d receipts", got, len(rs))
	}
	r := strings.Join(strings.Fields(rs[1]), " ")
	for _, want := range []string{"Elenco invii", "Totem t-local", "Operazioni: 1", "Tipo: " + cms.KindConsent, e.ID,
		"Protocollo: " + e.Result.Transport.Protocol, "Esito trasmissione: ricevuta", "Esito elaborazione: ACCOLTA"} {
		if !strings.Contains(r, want) {
			t.Errorf("send log lacks %q: %s", want, r)
		}
	}
	info := testCard().Info
	for _, never := range []string{info.CF, firmware.MaskCF(info.CF), info.Surname, info.Name, "consultazione"} {
		if strings.Contains(r, never) {
			t.Errorf("send log holds %q: %s", never, r)
		}
	}
}
