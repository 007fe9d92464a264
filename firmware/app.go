// Package firmware is the totem application: it wires the devices of hal
// to the outbox and the uplink, runs the citizen's session as a state
// machine driven by card, keypad, timer and sync events, and serves the
// menus. The operation flows are in firmware/flows (the App is their
// Totem), the screens in firmware/screens, the receipt layouts in
// firmware/receipts, the console commands in firmware/console.
//
// Nothing imports firmware but the mains in cmd/.
package firmware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/firmware/console"
	"github.com/aslcns/totem/firmware/flows"
	"github.com/aslcns/totem/firmware/printq"
	"github.com/aslcns/totem/firmware/screens"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// Devices are the totem's devices.
type Devices struct {
	Reader  hal.CardReader
	Printer hal.Printer
	Keypad  hal.Keypad
	Display hal.Display
}

// Options configures an App.
type Options struct {
	Totem    string
	ASL      string
	Location string
	Lang     Lang

	Outbox *outbox.Outbox
	// Jobs makes receipts durable until printed; nil prints directly.
	// App.Run runs it.
	Jobs   *printq.Queue
	Logger *slog.Logger
	// Heartbeat is how often the session loop's waits wake to record
	// that it runs (Progress), default 1s.
	Heartbeat time.Duration

	// ResultWait is how long the citizen waits for the hub's protocol
	// number before a provisional receipt is printed.
	ResultWait time.Duration // default 5s
	// IdleTimeout ends a session nobody touches; a warning shows for the
	// last quarter of it.
	IdleTimeout time.Duration // default 60s
	// QueuedTTL is the expiry of queueable operations.
	QueuedTTL time.Duration // default 30 days
	// OperatorTimeout ends an operator session (assisted mode) when no
	// card is in the slot and no key is pressed for this long.
	OperatorTimeout time.Duration // default DefaultOperatorTimeout
	// ReissueCounter: the totem stands at an ASL counter enabled to
	// reissue cards, which an operator does; otherwise a reissue is
	// refused with where to go.
	ReissueCounter bool
	// Online reports whether the link to the hub is up (nil: unknown).
	Online func() bool
	// Events receives alerts for operations (reader gone, printer
	// faults…); nil drops them. It must not block.
	Events func(protocol.Event)
	// Link returns the link to the hub for the technician's resend and
	// resync, nil while there is none.
	Link func() Link
	// CommandsRefused returns the console commands refused so far, by
	// code (the verifier's count), for telemetry; nil reports none.
	CommandsRefused func() map[string]uint64
}

// App is the totem application.
type App struct {
	o     Options
	dev   Devices
	log   *slog.Logger
	start time.Time
	now   func() time.Time // the wall clock printed on receipts

	cards chan hal.CardEvent
	keys  chan hal.Key
	// tick wakes the loop's waits every Heartbeat; beat is when the loop
	// last ran (unix ns), see Progress.
	tick <-chan time.Time
	beat atomic.Int64

	policy atomic.Pointer[cms.Policy]
	last   atomic.Pointer[protocol.Outcome]

	// noCard is set while a citizen without a card is served; cardIn
	// then records whether a card came in meanwhile. Both belong to the
	// loop's goroutine.
	noCard, cardIn bool

	waiters waiters

	health  *health
	console *console.Console
	// desk is what the operation flows (firmware/flows) see of the App.
	desk *flows.Desk
}

const metaPolicy = "policy"

// DefaultOperatorTimeout ends an operator session left with the slot empty
// (config: session.operator_idle_timeout). It was 5 minutes: long enough
// for the next person at the totem to find it open.
const DefaultOperatorTimeout = 2 * time.Minute

// New returns an App. Run starts it.
func New(dev Devices, o Options) *App {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ResultWait == 0 {
		o.ResultWait = 5 * time.Second
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 60 * time.Second
	}
	if o.OperatorTimeout == 0 {
		o.OperatorTimeout = DefaultOperatorTimeout
	}
	if o.QueuedTTL == 0 {
		o.QueuedTTL = 30 * 24 * time.Hour
	}
	a := &App{o: o, dev: dev, log: o.Logger, start: time.Now(), now: time.Now,
		cards: make(chan hal.CardEvent, 16), keys: make(chan hal.Key, 32),
		waiters: waiters{m: make(map[string]chan outbox.Entry)}}
	p := cms.Policy2020
	if b, err := o.Outbox.Meta(metaPolicy); err == nil && b != nil {
		if pol, err := protocol.DecodePolicy(b); err == nil {
			p = policyFrom(pol)
		}
	}
	a.health = newHealth(o.Events, a.log)
	a.policy.Store(&p)
	a.console = newConsole(a)
	a.desk = flows.NewDesk(a, o.Lang, a.log, kindTitle, o.Online)
	return a
}

func policyFrom(p *protocol.Policy) cms.Policy {
	out := cms.Policy{ID: p.ID}
	for _, c := range p.Consents {
		out.Consents = append(out.Consents, cms.ConsentDef{Code: c.Code, Label: c.Label})
	}
	return out
}

// Policy returns the consent policy in use.
func (a *App) Policy() cms.Policy { return *a.policy.Load() }

// SetPolicy adopts the policy the hub published and keeps it for the
// next start. It is the uplink's OnPolicy.
func (a *App) SetPolicy(p *protocol.Policy) {
	pol := policyFrom(p)
	a.policy.Store(&pol)
	if b, err := protocol.Marshal(p); err == nil {
		if err := a.o.Outbox.SetMeta(metaPolicy, b); err != nil {
			a.log.Warn("policy not saved", "err", err)
		}
	}
	a.log.Info("consent policy", "policy", p.ID)
}

// Result is the uplink's OnResult: it wakes a session waiting for it.
func (a *App) Result(e outbox.Entry) {
	if e.Result != nil {
		a.last.Store(&protocol.Outcome{OpID: e.ID, Seq: e.Seq, Kind: e.Kind, Protocol: e.Result.Transport.Protocol,
			Transport: e.Result.Transport.Status, Processing: e.Result.Processing.Status, At: time.Now().UTC()})
	}
	a.waiters.deliver(e)
}

// Telemetry is the health report the uplink publishes.
func (a *App) Telemetry() protocol.Telemetry {
	t := protocol.Telemetry{Uptime: time.Since(a.start).Seconds(), Last: a.last.Load()}
	if q, err := a.o.Outbox.Stats(); err == nil {
		t.Queue = q
	}
	t.Devices = a.health.devices()
	if u, err := a.o.Outbox.Usage(); err == nil {
		t.Storage = storage(u)
	}
	if a.o.CommandsRefused != nil {
		if m := a.o.CommandsRefused(); len(m) > 0 {
			t.Refused = m
		}
	}
	return t
}

func storage(u outbox.Usage) *protocol.Storage {
	return &protocol.Storage{Pending: u.Pending, Quarantined: u.Quarantined, Shed: u.Shed, Bytes: u.Bytes,
		MaxSize: u.MaxSize, MaxPending: u.MaxPending, Fraction: u.Fraction, Alarm: u.Alarm}
}

// OutboxAlarm turns the outbox's quota alarm into an event a technician
// sees (followed by fresh telemetry carrying the usage): "outbox_quota"
// when usage reaches the alarm threshold, "outbox_quota_ok" when it falls
// back. It is the outbox's Options.OnAlarm.
func (a *App) OutboxAlarm(u outbox.Usage) {
	used := fmt.Sprintf("%d%% of its quota (%d pending, %d bytes)", int(u.Fraction*100), u.Pending, u.Bytes)
	if u.Alarm {
		a.log.Warn("outbox near its quota", "fraction", u.Fraction, "pending", u.Pending, "bytes", u.Bytes, "shed", u.Shed)
		a.health.event(protocol.LevelAlarm, "outbox_quota", "outbox at "+used+": operations will be refused at the quota")
		return
	}
	a.log.Info("outbox back below its quota alarm", "fraction", u.Fraction, "pending", u.Pending)
	a.health.event(protocol.LevelInfo, "outbox_quota_ok", "outbox back to "+used)
}

// Run runs the totem until ctx is done. On return the display shows
// "fuori servizio" and no session is left open.
func (a *App) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hb := a.o.Heartbeat
	if hb <= 0 {
		hb = time.Second
	}
	heartbeat := time.NewTicker(hb)
	defer heartbeat.Stop()
	a.tick = heartbeat.C
	a.alive()
	var wg sync.WaitGroup
	if a.o.Jobs != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.o.Jobs.Run(ctx)
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		a.readCards(ctx)
	}()
	go func() {
		defer wg.Done()
		a.readKeys(ctx)
	}()
	if h, ok := a.dev.Reader.(hal.ReaderHealth); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.watchReader(ctx, h)
		}()
	}
	err := a.loop(ctx)
	cancel()
	wg.Wait()
	a.dev.Display.Show([]string{"", "  Fuori servizio", "  Out of service", ""})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// readCards hands the reader's card events to the loop until ctx is done.
func (a *App) readCards(ctx context.Context) {
	for {
		ev, err := a.dev.Reader.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// The reader (or pcscd) is gone: say so, keep asking;
			// drivers recover on their own.
			a.health.readerState(ctx, false, err, a.cards)
			sleep(ctx, time.Second)
			continue
		}
		a.health.readerState(ctx, true, nil, a.cards)
		select {
		case a.cards <- ev:
		case <-ctx.Done():
			return
		}
	}
}

// readKeys hands the keypad's keys to the loop, with a beep each, until
// ctx is done.
func (a *App) readKeys(ctx context.Context) {
	for {
		k, err := a.dev.Keypad.Next(ctx)
		if err == nil {
			beep(a.dev, a.log)
		}
		if err != nil {
			if ctx.Err() == nil {
				a.log.Error("keypad", "err", err)
				sleep(ctx, time.Second)
				continue
			}
			return
		}
		select {
		case a.keys <- k:
		case <-ctx.Done():
			return
		}
	}
}

// watchReader polls a reader that can tell its health once a second.
func (a *App) watchReader(ctx context.Context, h hal.ReaderHealth) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.health.readerState(ctx, h.Healthy(), nil, a.cards)
		}
	}
}

// loop is the top of the state machine: idle, then one session per card.
func (a *App) loop(ctx context.Context) error {
	present := false
	for {
		a.Show(a.health.idleScreen())
		for !present {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case ev := <-a.cards:
				present = ev.Kind == hal.CardInserted
				if ev.Kind == 0 {
					a.Show(a.health.idleScreen()) // the reader's state changed
				}
			case k := <-a.keys: // the services that need no card
				present = a.cardless(ctx, k)
			case <-a.tick:
				a.alive()
			}
		}
		err := a.session(ctx)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, hal.ErrCardRemoved):
			a.log.Info("session ended", "reason", "card_removed")
			present = false
			continue
		case errors.Is(err, errLogout): // assisted mode, the slot empty
			present = false
			continue
		case err != nil:
			a.log.Info("session ended", "reason", reason(err))
			if errors.Is(err, errIdle) {
				// Nobody is there: nothing of the session stays on screen.
				a.Show("remove_card")
			}
		}
		// Wait for the card to leave the slot; the screen says why.
		present = a.awaitRemoval(ctx)
	}
}

func reason(err error) string {
	switch {
	case errors.Is(err, errIdle):
		return "idle_timeout"
	case errors.Is(err, errCancel):
		return "cancelled"
	case errors.Is(err, errUnavailable):
		return "offline"
	case errors.Is(err, errNoAnswer):
		return "no_answer"
	case errors.Is(err, errCardIn):
		return "card_in"
	case errors.Is(err, errBack):
		return "back"
	}
	return "error"
}

// awaitRemoval waits until the card is removed (idle timeout clears the
// screen meanwhile). It returns whether a card is still present.
func (a *App) awaitRemoval(ctx context.Context) bool {
	timer := time.NewTimer(a.o.IdleTimeout)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return true
		case ev := <-a.cards:
			if ev.Kind == hal.CardRemoved {
				return false
			}
		case <-a.keys:
		case <-timer.C:
			// Nothing of the session stays on screen: ask for the card only.
			a.Show("remove_card")
		case <-a.tick:
			a.alive()
		}
	}
}

var (
	errIdle   = flows.ErrIdle
	errCancel = flows.ErrCancel
)

// Key waits for a key the screen name is bound to: card removal ends the
// session (hal.ErrCardRemoved), an idle timeout shows a warning and then
// ends it. Other keys only show that someone is there.
func (a *App) Key(ctx context.Context, name string, redraw func()) (hal.Key, error) {
	warnAt := a.o.IdleTimeout * 3 / 4
	timer := time.NewTimer(warnAt)
	defer timer.Stop()
	warned := false
	for {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case ev := <-a.cards:
			if a.noCard {
				if a.cardEvent(ev) {
					return 0, errCardIn
				}
				continue
			}
			if ev.Kind == hal.CardRemoved {
				return 0, hal.ErrCardRemoved
			}
		case k := <-a.keys:
			if warned {
				redraw()
				warned = false
				timer.Reset(warnAt)
				continue // the key only dismissed the warning
			}
			if !screens.Bound(name, k) {
				timer.Reset(warnAt)
				continue
			}
			return k, nil
		case <-timer.C:
			if warned {
				return 0, errIdle
			}
			warned = true
			a.Show("idle_warning")
			timer.Reset(a.o.IdleTimeout - warnAt)
		case <-a.tick:
			a.alive()
		}
	}
}

// Show puts a catalogue screen on the display, formatting %-verbs in each
// row with args in order.
func (a *App) Show(key string, args ...any) {
	if screens.Has(key+"_nocard") && a.noCard {
		key += "_nocard" // the variant that asks for no card back
	}
	if err := a.dev.Display.Show(screens.Format(a.o.Lang, key, args...)); err != nil {
		a.log.Warn("display", "err", err)
	}
}

// Progress is when the session loop last ran. Its waits wake every
// Heartbeat to record it, so an idle loop proves it is alive, and a loop
// stuck in a call (a driver, a lock) stops moving it: totemd pings the
// systemd watchdog only while it moves.
func (a *App) Progress() time.Time { return time.Unix(0, a.beat.Load()) }

// alive records that the loop ran; the loop's goroutine only.
func (a *App) alive() { a.beat.Store(time.Now().UnixNano()) }

// Display puts rows on the display as they are.
func (a *App) Display(rows []string) {
	if err := a.dev.Display.Show(rows); err != nil {
		a.log.Warn("display", "err", err)
	}
}

// beep acknowledges a key press on the first device that can beep.
func beep(dev Devices, log *slog.Logger) {
	for _, d := range []any{dev.Keypad, dev.Display} {
		if b, ok := d.(hal.Beeper); ok {
			if err := b.Beep(); err != nil {
				log.Debug("beep", "err", err)
			}
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// cardStateLink is the optional capability of the link (the uplink has
// it) that asks the hub for a card's state in the CMS.
type cardStateLink interface {
	CardState(ctx context.Context, serial string) (string, error)
}

var _ flows.CardStater = (*App)(nil)

// CardState asks the hub, through the link, for the CMS's state of the
// card with serial (flows.CardStater), waiting at most ResultWait.
func (a *App) CardState(ctx context.Context, serial string) (string, error) {
	var l any
	if a.o.Link != nil {
		l = a.o.Link()
	}
	cs, ok := l.(cardStateLink)
	if !ok {
		return "", errors.New("firmware: the link does not answer card states")
	}
	ctx, cancel := context.WithTimeout(ctx, a.o.ResultWait)
	defer cancel()
	return cs.CardState(ctx, serial)
}
