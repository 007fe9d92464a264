package firmware

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aslcns/totem/hal"
)

// feeds hand the devices' events to the session loop, one goroutine a
// device, each until the context is done.
type feeds struct {
	dev    Devices
	cards  chan<- hal.CardEvent
	keys   chan<- hal.Key
	health *health
	log    *slog.Logger
	// operator is set while an operator session is open: the keyboard's
	// keys count only then.
	operator *atomic.Bool
	clock    hal.Clock
}

// start starts the feeds on wg.
func (f *feeds) start(ctx context.Context, wg *sync.WaitGroup) {
	wg.Go(func() { f.readCards(ctx) })
	wg.Go(func() { f.readKeys(ctx, f.dev.Keypad, "keypad", f.beep) })
	if f.dev.Keyboard != nil {
		// The keyboard's keys count while an operator session is open,
		// and are dropped otherwise: in self-service the citizen has
		// the keypad only.
		wg.Go(func() { f.readKeys(ctx, f.dev.Keyboard, "keyboard", f.operator.Load) })
	}
	if h, ok := f.dev.Reader.(hal.ReaderHealth); ok {
		wg.Go(func() { f.watchReader(ctx, h) })
	}
}

// readCards hands the reader's card events to the loop until ctx is done.
func (f *feeds) readCards(ctx context.Context) {
	for {
		ev, err := f.dev.Reader.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// The reader (or pcscd) is gone: say so, keep asking;
			// drivers recover on their own.
			f.health.readerState(ctx, false, err, f.cards)
			sleep(ctx, f.clock, time.Second)
			continue
		}
		f.health.readerState(ctx, true, nil, f.cards)
		select {
		case f.cards <- ev:
		case <-ctx.Done():
			return
		}
	}
}

// readKeys hands the keys of pad (name: "keypad" or "keyboard", in the
// log) to the loop until ctx is done; take, given each key read, says
// whether it counts.
func (f *feeds) readKeys(ctx context.Context, pad hal.Keypad, name string, take func() bool) {
	for {
		k, err := pad.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			f.log.Error(name, "err", err)
			sleep(ctx, f.clock, time.Second)
			continue
		}
		if !take() {
			continue
		}
		select {
		case f.keys <- k:
		case <-ctx.Done():
			return
		}
	}
}

// beep acknowledges a keypad's key with a beep; it always counts.
func (f *feeds) beep() bool {
	beep(f.dev, f.log)
	return true
}

// watchReader polls a reader that can tell its health once a second.
func (f *feeds) watchReader(ctx context.Context, h hal.ReaderHealth) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.clock.After(time.Second):
			f.health.readerState(ctx, h.Healthy(), nil, f.cards)
		}
	}
}

// voice speaks the screens once a citizen asks for it (KeySpeech); on and
// said return to off and "" when the citizen is done. The loop's
// goroutine only.
type voice struct {
	speaker hal.Speaker
	log     *slog.Logger
	on      bool
	// said is the last utterance: a screen redrawn as it was (a PIN
	// digit typed, a star more) is not said again, unless A asks.
	said string
}

// ask turns speech on, and has the screen said (again).
func (v *voice) ask() {
	if !v.on {
		v.log.Info("speech on")
	}
	v.on, v.said = true, ""
}

// say speaks the text of the screen in lang when speech is on, unless it
// was the last thing said.
func (v *voice) say(lang Lang, text func() string) {
	if !v.on {
		return
	}
	t := text()
	if v.speaker == nil || t == "" || t == v.said {
		return
	}
	v.said = t
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := v.speaker.Say(ctx, lang.Code(), t); err != nil {
		v.log.Warn("speaker", "err", err)
	}
}
