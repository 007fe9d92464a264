// Package speech is the totem's speech output (EN 301 549 5.1.3): a
// hal.Speaker that synthesises with espeak-ng (the Debian package, voices
// it and en) and plays through ALSA with espeak-ng's own audio output, or,
// in the demo and the tests, writes each utterance as a WAV file.
package speech

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/aslcns/totem/hal"
)

var _ hal.Speaker = (*Speaker)(nil)

// Options configures a Speaker.
type Options struct {
	// Dir, when set, receives each utterance as NNNNNN-LANG.wav instead
	// of playing it; numbering goes on after the files already there.
	Dir string
	// Command is the synthesiser; "" = "espeak-ng".
	Command string
	// Rate is the speed in words per minute; 0 = 150, slower than
	// espeak-ng's 175 for a lobby and older citizens.
	Rate int
}

// voices are espeak-ng's voices by language.
var voices = map[string]string{"it": "it", "en": "en"}

// Speaker speaks through espeak-ng. Its methods are safe for concurrent
// use; Close stops the utterance playing.
type Speaker struct {
	o Options

	mu     sync.Mutex
	seq    int
	cur    *exec.Cmd     // the utterance playing, nil when none
	done   chan struct{} // closed once cur has been waited for
	closed bool
}

// New returns a Speaker; it fails when the synthesiser is not installed
// or Dir cannot be made.
func New(o Options) (*Speaker, error) {
	if o.Command == "" {
		o.Command = "espeak-ng"
	}
	if o.Rate == 0 {
		o.Rate = 150
	}
	if _, err := exec.LookPath(o.Command); err != nil {
		return nil, fmt.Errorf("speech: %w (install the Debian package espeak-ng)", err)
	}
	s := &Speaker{o: o}
	if o.Dir != "" {
		if err := os.MkdirAll(o.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("speech: %w", err)
		}
		s.seq = lastSeq(o.Dir)
	}
	return s, nil
}

// lastSeq is the highest number of the WAV files in dir (0 for none), so
// a restart does not overwrite them.
func lastSeq(dir string) int {
	names, _ := filepath.Glob(filepath.Join(dir, "*.wav"))
	n := 0
	for _, p := range names {
		num, _, _ := strings.Cut(filepath.Base(p), "-")
		if v, err := strconv.Atoi(num); err == nil && v > n {
			n = v
		}
	}
	return n
}

// Say speaks text in lang, cutting short the utterance playing. With Dir
// set it returns once the WAV file is written.
func (s *Speaker) Say(ctx context.Context, lang, text string) error {
	voice, ok := voices[lang]
	if !ok {
		return fmt.Errorf("speech: no voice for language %q", lang)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return hal.ErrClosed
	}
	s.stop()
	// The text goes on stdin: nothing in it can be read as an option.
	args := []string{"-v", voice, "-s", strconv.Itoa(s.o.Rate), "--stdin"}
	if s.o.Dir != "" {
		s.seq++
		path := filepath.Join(s.o.Dir, fmt.Sprintf("%06d-%s.wav", s.seq, lang))
		cmd := exec.CommandContext(ctx, s.o.Command, append(args, "-w", path)...)
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("speech: %s: %w: %s", s.o.Command, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	// Playback outlives this call: Close or the next Say stops it.
	cmd := exec.Command(s.o.Command, args...)
	cmd.Stdin = strings.NewReader(text)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("speech: %w", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait() // a killed utterance is no error
		close(done)
	}()
	s.cur, s.done = cmd, done
	return nil
}

// stop kills the utterance playing and waits for it; s.mu is held.
func (s *Speaker) stop() {
	if s.cur == nil {
		return
	}
	select {
	case <-s.done:
	default:
		s.cur.Process.Kill() // it may have ended meanwhile: the wait reaps it
		<-s.done
	}
	s.cur, s.done = nil, nil
}

// Close stops the utterance playing; later calls to Say fail.
func (s *Speaker) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stop()
	s.closed = true
	return nil
}
