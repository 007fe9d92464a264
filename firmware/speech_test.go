package firmware_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/hal/haltest"
)

// texts is what spk said, in order.
func texts(spk *haltest.Speaker) []string {
	var out []string
	for _, u := range spk.Said() {
		out = append(out, u.Lang+": "+u.Text)
	}
	return out
}

// hasSaid fails unless spk said want (whole utterances).
func hasSaid(t *testing.T, spk *haltest.Speaker, wants ...string) {
	t.Helper()
	said := "\n" + strings.Join(texts(spk), "\n") + "\n"
	for _, w := range wants {
		if !strings.Contains(said, "\n"+w+"\n") {
			t.Errorf("never said %q; said:%s", w, said)
		}
	}
}

// Speech is off until A is pressed; then every screen is said, with its
// choices and legends in words, in the session's language; the PIN never
// is (no digit, no star), and the next citizen starts silent.
func TestSpeechPerScreen(t *testing.T) {
	ctx := ctxT(t)
	spk := &haltest.Speaker{}
	l := startLocalOpts(t, localOpts{speaker: spk})
	l.wait(ctx, "A=Voce")
	l.insert(ctx, testCard())
	l.remove(ctx)
	if said := spk.Said(); len(said) != 0 {
		t.Fatalf("speech on without being asked for: %q", said)
	}

	l.panel.Press(firmware.KeySpeech, firmware.KeyLang)
	l.wait(ctx, "B=Italiano") // A was taken before B: speech is on
	l.panel.Press(firmware.KeyLang)
	l.wait(ctx, "B=English")
	l.reader.Insert(testCard())
	l.run(ctx, []step{{"1 Consensi FSE", "1"}, {"PIN:", testPIN},
		{"PIN: ********", "*"}, // a digit deleted: nothing new to say
		{"PIN: *******\n", testPIN[7:] + "#"}, {"Informativa FSE", "#"}, {"Consenso 1 di 2", "1"},
		{"Consenso 2 di 2", string(firmware.KeySpeech) + "2"}, // once on, A says the screen again
		{"Riepilogo", "D"}})
	l.wait(ctx, "Operazione annullata")
	l.remove(ctx)
	before := len(spk.Said())
	hasSaid(t, spk,
		"it: Inserire la tessera sanitaria TS-CNS Senza tessera cancelletto: Menu A: Voce B: English",
		"en: Insert your health card (TS-CNS) No card? hash: Menu A: Voice B: Italiano",
		"it: Lettura tessera. Attendere, prego",
		"it: pagina 1 di 4. cancelletto: Avanti D: Esci 1 Consensi FSE 2 Richiesta lettore 3 Cambio PIN",
		"it: Digitare il PIN della tessera e cancelletto: OK PIN: asterisco: Cancella D: Esci",
		"it: Consenso 1 di 2: Consultazione FSE letto dai medici 1: Sì 2: No asterisco: Indietro",
		"it: Riepilogo: Consultazione: Sì Escludi pre-2020: No cancelletto: Conferma D: Annulla",
		"it: Operazione annullata Rimuovere tessera",
	)
	n := 0
	for _, s := range texts(spk) {
		if strings.Contains(s, "Consenso 2 di 2") {
			n++
		}
		if strings.ContainsAny(s, "*0123456789") && strings.Contains(s, "PIN:") {
			t.Errorf("the PIN field spoken: %q", s)
		}
		for i := 0; i+5 <= len(testPIN); i++ {
			if strings.Contains(s, testPIN[i:i+5]) {
				t.Errorf("PIN digits spoken: %q", s)
			}
		}
	}
	if n != 2 {
		t.Errorf("Consenso 2 di 2 said %d times, want 2 (shown, then A)", n)
	}
	pinScreens := 0
	for _, s := range texts(spk) {
		if strings.HasPrefix(s, "it: Digitare il PIN") {
			pinScreens++
		}
	}
	if pinScreens != 1 {
		t.Errorf("the PIN screen said %d times, want once (a digit typed changes nothing said)", pinScreens)
	}

	l.reader.Insert(testCard())
	l.run(ctx, []step{{"1 Consensi FSE", "1"}})
	l.wait(ctx, "PIN:")
	if got := spk.Said()[before:]; len(got) != 0 {
		t.Errorf("the next citizen's screens spoken: %q", got)
	}
}

// An idle-screen choice of speech or language lasts an idle timeout when
// nobody follows it up.
func TestChoiceForgottenWhenIdle(t *testing.T) {
	ctx := ctxT(t)
	spk := &haltest.Speaker{}
	l := startLocalOpts(t, localOpts{speaker: spk, idle: 300 * time.Millisecond})
	l.wait(ctx, "A=Voce")
	l.panel.Press(firmware.KeyLang)
	l.wait(ctx, "B=Italiano")
	l.wait(ctx, "B=English") // back to Italian after the idle timeout
}

// B on the idle screen: the whole session is in English, screens, speech
// and receipt, and the next citizen starts in Italian again.
func TestLanguageChoice(t *testing.T) {
	ctx := ctxT(t)
	spk := &haltest.Speaker{}
	l := startLocalOpts(t, localOpts{speaker: spk})
	l.wait(ctx, "A=Voce")
	l.panel.Press(firmware.KeyLang, firmware.KeySpeech)
	l.wait(ctx, "B=Italiano")
	l.reader.Insert(testCard())
	l.run(ctx, []step{{"1 FSE consents", "1"}, {"Enter the card PIN", testPIN + "#"}, {"FSE privacy notice", "#"},
		{"Consent 1 of 2", "1"}, {"Consent 2 of 2", "2"}, {"Summary", "#"}})
	l.wait(ctx, "outcome will follow")
	rs := l.printer.Receipts()
	if len(rs) != 1 {
		t.Fatalf("%d receipts", len(rs))
	}
	mustContain(t, "receipt", rs[0], "FSE consents", "Consultation (doctors may read the FSE):", "PROVISIONAL RECEIPT", "Local reference: ", "Keep this receipt.")
	hasSaid(t, spk, "en: Consent 1 of 2: Consultation doctors read the FSE 1: Yes 2: No star: Back")
	l.reader.Remove()
	l.wait(ctx, "B=English")
	l.insert(ctx, testCard())
	l.panel.Press(firmware.KeyLang) // the menu switches too
	l.wait(ctx, "1 FSE consents")
}
