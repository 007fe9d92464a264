package speech

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aslcns/totem/drivers/speech/speechtest"
	"github.com/aslcns/totem/hal"
)

// requireTools skips when espeak-ng or sox is missing, except under CI,
// whose .ci/run installs both (as deploy/deps.sh does for make test).
func requireTools(t *testing.T) {
	t.Helper()
	for _, c := range []string{"espeak-ng", "sox"} {
		if _, err := exec.LookPath(c); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed (CI installs it: .ci/run)", c)
			}
			t.Skipf("%s is not installed (deploy/deps.sh installs it)", c)
		}
	}
}

// TestSpeakerWAV: with the real espeak-ng, each utterance is a WAV file
// of non-silent speech whose length fits its words, in both voices, and
// the numbering goes on after a restart.
func TestSpeakerWAV(t *testing.T) {
	requireTools(t)
	dir := filepath.Join(t.TempDir(), "speech")
	s, err := New(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	texts := []struct{ lang, text string }{
		{"it", "Benvenuto. Inserire la tessera sanitaria. Senza tessera, cancelletto: menu."},
		{"en", "Welcome. Insert your health card. No card? Hash: menu."},
	}
	for _, x := range texts {
		if err := s.Say(context.Background(), x.lang, x.text); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	for i, x := range texts {
		path := filepath.Join(dir, fmt.Sprintf("%06d-%s.wav", i+1, x.lang))
		sec, rms := speechtest.Stat(t, path)
		words := len(strings.Fields(x.text))
		// 150 words per minute is 0.4 s a word; pauses at the stops
		// and slow syllables stay well within 0.2-1 s a word.
		if lo, hi := 0.2*float64(words), 1.0*float64(words); sec < lo || sec > hi {
			t.Errorf("%s: %.2f s for %d words, want %.1f-%.1f s", path, sec, words, lo, hi)
		}
		if rms < 0.02 {
			t.Errorf("%s: RMS amplitude %.4f: silence, not speech", path, rms)
		}
		t.Logf("%s: %.2f s, RMS %.3f, %d words", filepath.Base(path), sec, rms, words)
	}
	s2, err := New(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Say(context.Background(), "it", "Attendere, prego."); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "000003-it.wav")); err != nil {
		t.Errorf("after a restart: %v", err)
	}
}

// TestSpeakerErrors: an unknown language, a missing synthesiser and a
// closed speaker are errors, not silence taken for speech.
func TestSpeakerErrors(t *testing.T) {
	if _, err := New(Options{Command: "no-such-espeak-ng"}); err == nil {
		t.Error("New with a missing synthesiser: no error")
	}
	s, err := New(Options{Command: "true", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Say(context.Background(), "de", "Hallo"); err == nil {
		t.Error("Say in an unknown language: no error")
	}
	s.Close()
	if err := s.Say(context.Background(), "it", "Ciao"); err != hal.ErrClosed {
		t.Errorf("Say after Close = %v, want hal.ErrClosed", err)
	}
}

// TestSpeakerPlayback: playing, the text reaches the synthesiser on stdin
// with the voice asked for, a new utterance cuts the one playing short,
// and Close stops it.
func TestSpeakerPlayback(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "fake-espeak")
	// Records its arguments and text, then speaks "forever".
	script := "#!/bin/sh\necho \"$@\" >> " + dir + "/args\ncat >> " + dir + "/text\necho >> " + dir + "/text\nexec sleep 600\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Command: fake})
	if err != nil {
		t.Fatal(err)
	}
	// recorded waits until the fake has recorded n utterances (the
	// deadline only guards against a hang).
	recorded := func(n int) {
		t.Helper()
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			b, _ := os.ReadFile(filepath.Join(dir, "text"))
			if strings.Count(string(b), "\n") >= n {
				return
			}
		}
		t.Fatalf("the synthesiser never got utterance %d", n)
	}
	if err := s.Say(context.Background(), "it", "-w /etc/passwd prima"); err != nil {
		t.Fatal(err)
	}
	recorded(1)
	first := s.cur.Process
	if err := s.Say(context.Background(), "en", "second"); err != nil {
		t.Fatal(err)
	}
	if err := first.Signal(syscall.Signal(0)); err == nil {
		t.Error("the first utterance still plays after the second started")
	}
	recorded(2)
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second): // a hang, not a timing: Close kills at once
		t.Fatal("Close did not stop the utterance playing")
	}
	text, _ := os.ReadFile(filepath.Join(dir, "text"))
	if got, want := string(text), "-w /etc/passwd prima\nsecond\n"; got != want {
		t.Errorf("text on stdin: %q, want %q", got, want)
	}
	args, _ := os.ReadFile(filepath.Join(dir, "args"))
	if got, want := string(args), "-v it -s 150 --stdin\n-v en -s 150 --stdin\n"; got != want {
		t.Errorf("arguments:\n%s\nwant\n%s", got, want)
	}
}
