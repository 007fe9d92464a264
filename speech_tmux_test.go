package totem_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/drivers/speech/speechtest"
)

// The demo's speech (issue 17): totemd --vspeech in tmux, speech turned
// on with `a` on the welcome screen, English chosen with `b`; every
// screen then becomes a WAV of non-silent speech of plausible length in
// the voice of the language, none before `a` was pressed.
func TestDemoSpeechInTmux(t *testing.T) {
	needTools(t, "tmux", "espeak-ng", "sox")
	// No hub: the totem serves offline, which is all the panel needs.
	d := newDemo(t, "")
	dir := d.dir
	speech := filepath.Join(dir, "speech")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := startPanel(t, ctx, dir, d.bin+"/totemd --config "+dir+"/totemd.toml --panel terminal --vspeech "+speech)
	waitFor, keys := p.waitFor, p.keys
	wavs := func() []string {
		w, _ := filepath.Glob(filepath.Join(speech, "*.wav"))
		return w
	}

	waitFor("A=Voce")
	keys("i")
	waitFor("1 Consensi FSE")
	keys("r")
	waitFor("A=Voce")
	if w := wavs(); len(w) != 0 {
		t.Fatalf("speech before it was asked for: %v", w)
	}
	keys("a")
	keys("b")
	waitFor("B=Italiano")
	keys("i")
	waitFor("1 FSE consents")
	keys("1")
	waitFor("Enter the card PIN")
	keys("1", "2", "3", "4", "5", "Enter")
	waitFor("FSE privacy notice")
	keys("Enter")
	waitFor("Consent 1 of 2")
	keys("D")
	waitFor("Cancelled")
	keys("r")
	waitFor("A=Voce")
	keys("q")
	p.waitExit()
	w := wavs()
	// The idle screen (it, then en), reading, menu, the PIN screen (once:
	// a digit typed changes nothing said), the FSE notice, consent 1,
	// cancelled.
	if len(w) != 8 {
		t.Fatalf("%d utterances: %v", len(w), w)
	}
	langs := map[string]int{}
	for _, f := range w {
		sec, rms := speechtest.Stat(t, f)
		if sec < 0.8 || sec > 30 || rms < 0.02 {
			t.Errorf("%s: %.2f s, RMS %.3f: not a screen's speech", filepath.Base(f), sec, rms)
		}
		langs[strings.TrimSuffix(f[strings.LastIndex(f, "-")+1:], ".wav")]++
	}
	if langs["it"] != 1 || langs["en"] != 7 {
		t.Errorf("voices used: %v", langs)
	}
}
