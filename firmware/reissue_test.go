package firmware_test

import (
	"testing"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
)

// Riemissione at the operator's menu: offered where totem.reissue_counter
// is set, refused with where to go elsewhere; a curatore cannot ask; it
// needs the CMS; and the CMS refuses it unless the hub's registry knows
// the totem as a counter (this harness applies without one).
func TestAssistedReissueAtThePanel(t *testing.T) {
	for _, tc := range []struct {
		name    string
		counter bool
		online  bool
		script  []step
		want    string
		code    string // the CMS's refusal, "": nothing sent
	}{
		{name: "totem not a counter", online: true, script: []step{{"3 Consensi FSE", "7"}},
			want: "solo agli sportelli"},
		{name: "offline", counter: true, script: []step{{"7 Riemiss.", "7"}}, want: "disponibile ora"},
		{name: "a curatore is refused at the panel", counter: true, online: true,
			script: []step{{"7 Riemiss.", "7"}, {"Nuova tessera per:", "1"}, {"1 Diretta", "4"}, {"Nuova tessera: solo", "D"}},
			want:   "Operazione annullata"},
		{name: "the hub does not know the totem as a counter", counter: true, online: true,
			script: cat([]step{{"7 Riemiss.", "7"}, {"Nuova tessera per:", "2"}}, directSteps, []step{{"Riemissione per", "#"}}),
			want:   "rifiutata", code: cms.CodeReissueCounter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			d := startDeskOpts(t, localOpts{online: func() bool { return tc.online }, reissueCounter: tc.counter})
			d.login(ctx)
			d.reader.Insert(testCard())
			d.run(ctx, append([]step{{"1 Attivazione", "#"}}, tc.script...))
			d.wait(ctx, tc.want)
			entries, _ := d.ops()
			if tc.code == "" {
				if len(entries) != 0 {
					t.Fatalf("entries %+v", entries)
				}
			} else if len(entries) != 1 || entries[0].Kind != cms.KindReissue || !entries[0].Done ||
				len(entries[0].Result.Processing.Errors) == 0 || entries[0].Result.Processing.Errors[0].Code != tc.code {
				t.Fatalf("entries %+v", entries)
			}
			if _, err := d.store.Reissue(testCard().Info.Serial); err == nil {
				t.Fatal("a reissue was recorded")
			}
			d.reader.Remove()
			d.wait(ctx, "Inserire la TS del")
			d.panel.Press(hal.KeyCancel)
			d.wait(ctx, "Inserire la tessera")
		})
	}
}
