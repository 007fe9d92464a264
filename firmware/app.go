// Package firmware is the totem application: it wires the devices of hal
// to the outbox and the uplink, runs the citizen's session as a state
// machine driven by card, keypad, timer and sync events, and serves the
// menus. The operation flows are in firmware/flows (the App is their
// Totem), the screens in firmware/screens, the receipt layouts in
// firmware/receipts, the console commands in firmware/console.
//
// The App wires small parts, one job each: feeds (the devices'
// goroutines), the session loop and its waits (app.go, session.go),
// selfService and cardless (the citizen's menus), operatorDesk (assisted
// mode), msession (maintenance mode), auditor (the people's actions for
// the hub's audit) and health (telemetry and events). Every wait is on the
// one Options.Clock (clock.go), which tests advance.
//
// Nothing imports firmware but the mains in cmd/.
package firmware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/firmware/console"
	"github.com/aslcns/totem/firmware/flows"
	"github.com/aslcns/totem/firmware/maint"
	"github.com/aslcns/totem/firmware/printq"
	"github.com/aslcns/totem/firmware/screens"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/internal/waiters"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// Devices are the totem's devices.
type Devices struct {
	Reader  hal.CardReader
	Printer hal.Printer
	Keypad  hal.Keypad
	Display hal.Display
	// Speaker speaks the screens once a citizen asks for it (KeySpeech);
	// nil: the totem has none.
	Speaker hal.Speaker
	// Keyboard is a USB keyboard for assisted mode (drivers/evdev); its
	// keys count only while an operator session is open. nil: none.
	Keyboard hal.Keypad
}

// The keys every citizen screen answers to besides its own, shown on the
// idle screen (issue 17): A turns speech on for the session and, once on,
// says the screen again; B switches the language on the idle screen and
// the menu. A screen that binds one itself (text entry) keeps it.
const (
	KeySpeech hal.Key = 'A'
	KeyLang   hal.Key = 'B'
)

// Options configures an App.
type Options struct {
	Totem    string
	ASL      string
	Location string
	// Town is the ASL's town, where the forms printed are signed.
	Town string
	Lang Lang
	// Zone is the time zone of the times on receipts (nil: time.Local);
	// ReceiptLink the ASL's link template their QR code carries
	// (receipts.Frame.Link).
	Zone        *time.Location
	ReceiptLink string

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
	// Audit sends the people's actions at this totem (operator sessions,
	// console commands run or refused) to the hub's audit through the
	// outbox (audit.go); totemd sets it. Off, only RecordAudit records.
	Audit bool
	// Settings is the configuration file the console's config_get and
	// config_set read and change; nil refuses them.
	Settings *Settings
	// IdleWarning is how long before the idle timeout the panel asks
	// whether more time is needed (default a quarter of IdleTimeout).
	IdleWarning time.Duration
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

	// Clock is the App's one clock: every wait (idle timeouts, the
	// result and print waits, the heartbeat, pauses), the wall time on
	// receipts and in the audit, and maintenance mode (the pace of its
	// key sequence, its inactivity, the lock of its door); default
	// hal.SystemClock. Tests advance a haltest.Clock instead of sleeping.
	Clock hal.Clock
	// Maint is the door of maintenance mode at the panel (maintenance.go);
	// nil: the panel has no maintenance mode.
	Maint *maint.Gate
	// MaintIdle ends a maintenance session nobody touches (default 3 min).
	MaintIdle time.Duration
	// Diag reports the link and the clock for the maintenance menu; nil
	// shows them unknown.
	Diag func() Diagnostics
	// Version is the software version the maintenance menu shows.
	Version string
	// Enroll exchanges an enrollment code typed at the panel for the
	// totem's credentials and saves them (a refusal is an error with an
	// enroll reason); nil: not offered.
	Enroll func(ctx context.Context, code string) error
	// TestCredentials runs Test credenziali on the live link and returns
	// "" when it passed, or what failed: "network", "tls", "auth",
	// "locked", "refused", "nocreds", "acl", "expired", "no_answer"; nil: not
	// offered.
	TestCredentials func(ctx context.Context) string
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
	// tick wakes the loop's waits every Heartbeat; heart is when the loop
	// last ran, see Progress.
	tick  <-chan time.Time
	heart heart

	policy atomic.Pointer[cms.Policy]
	last   atomic.Pointer[protocol.Outcome]

	// walkIn is the citizen without a card being served, if any; the
	// loop's goroutine only.
	walkIn walkIn

	// waiters are the sessions (and console commands) waiting for the
	// results of an operation, by op id: the uplink's results reach them
	// through Result.
	waiters waiters.Set[outbox.Entry]
	// finished is the operation whose outcome Finish just showed; the
	// loop's goroutine only.
	finished *finished

	health  *health
	console *console.Console
	// audits records the people's actions for the hub's audit (audit.go).
	audits *auditor
	// timeouts are the idle timeout and the result wait in force.
	timeouts timeouts
	// desk is what the operation flows (firmware/flows) see of the App.
	desk *flows.Desk

	clock hal.Clock
	seq   seqState // the maintenance key sequence; the loop's goroutine
	// hubOffset is the clock's offset from the hub's at the last result.
	hubOffset hubOffset
	// lang is the language of the session; it returns to Options.Lang
	// when a citizen is done. The loop's goroutine only.
	lang Lang
	// voice speaks the screens once a citizen asks for it.
	voice voice
	// operator is set while an operator session is open: the keyboard's
	// keys count only then.
	operator atomic.Bool
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
	if o.IdleWarning <= 0 || o.IdleWarning >= o.IdleTimeout {
		o.IdleWarning = o.IdleTimeout / 4
	}
	if o.OperatorTimeout == 0 {
		o.OperatorTimeout = DefaultOperatorTimeout
	}
	if o.QueuedTTL == 0 {
		o.QueuedTTL = 30 * 24 * time.Hour
	}
	if o.Clock == nil {
		o.Clock = hal.SystemClock{}
	}
	if o.MaintIdle == 0 {
		o.MaintIdle = 3 * time.Minute
	}
	a := &App{o: o, dev: dev, log: o.Logger, start: o.Clock.Now(), now: o.Clock.Now, lang: o.Lang,
		cards: make(chan hal.CardEvent, 16), keys: make(chan hal.Key, 32),
		clock: o.Clock}
	a.heart.clock = o.Clock
	a.voice = voice{speaker: dev.Speaker, log: a.log}
	a.audits = &auditor{on: o.Audit, box: o.Outbox, log: a.log, now: a.now}
	a.SetTimeouts(o.ResultWait, o.IdleTimeout)
	p := cms.Policy2020
	if b, err := o.Outbox.Meta(metaPolicy); err == nil && b != nil {
		if pol, err := protocol.DecodePolicy(b); err == nil {
			p = pol.Policy
		}
	}
	a.health = newHealth(o.Events, a.log)
	a.policy.Store(&p)
	a.console = newConsole(a)
	a.desk = flows.NewDesk(a, o.Lang, a.log, a.title, o.Online)
	a.desk.SetClock(o.Clock)
	return a
}

// Policy returns the consent policy in use.
func (a *App) Policy() cms.Policy { return *a.policy.Load() }

// SetPolicy adopts the policy the hub published and keeps it for the
// next start. It is the uplink's OnPolicy.
func (a *App) SetPolicy(p *protocol.Policy) {
	pol := p.Policy
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
			Transport: e.Result.Transport.Status, Processing: e.Result.Processing.Status, At: a.clock.Now().UTC()})
		a.hubOffset.note(a.now(), e.Result.Transport.At)
	}
	a.waiters.Deliver(e.ID, e)
}

// Telemetry is the health report the uplink publishes.
func (a *App) Telemetry() protocol.Telemetry {
	t := protocol.Telemetry{Uptime: a.clock.Now().Sub(a.start).Seconds(), Last: a.last.Load()}
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
	tick := make(chan time.Time, 1)
	a.tick = tick
	a.heart.alive()
	var wg sync.WaitGroup
	ticks := ticker(a.clock, hb, tick)
	wg.Go(func() { ticks(ctx) })
	if a.o.Jobs != nil {
		wg.Go(func() { a.o.Jobs.Run(ctx) })
	}
	f := &feeds{dev: a.dev, cards: a.cards, keys: a.keys, health: a.health, log: a.log, operator: &a.operator, clock: a.clock}
	f.start(ctx, &wg)
	err := a.loop(ctx)
	cancel()
	wg.Wait()
	a.dev.Display.Show([]string{"", "  Fuori servizio", "  Out of service", ""})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// loop is the top of the state machine: idle, then one session per card.
func (a *App) loop(ctx context.Context) error {
	present := false
	// A language or speech chosen on the idle screen by someone who then
	// walks away lasts an idle timeout.
	chosen := a.timer(a.o.IdleTimeout)
	for {
		a.endCitizen()
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
				if a.o.Maint != nil && a.seq.feed(k, a.clock.Now()) {
					present = maintenance(ctx, a)
					if !present {
						a.Show(a.health.idleScreen())
					}
					continue
				}
				idle := a.health.idleScreen()
				if a.globalKey(idle, k, func() { a.Show(idle) }) {
					chosen.Reset(a.o.IdleTimeout)
					continue
				}
				present = a.cardless(ctx, k)
			case <-chosen.C:
				if a.voice.on || a.lang != a.o.Lang {
					a.endCitizen()
					a.Show(a.health.idleScreen())
				}
			case <-a.tick:
				a.heart.alive()
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

// reason is how a session ended, for its log line and audit.
func reason(err error) string { return sessionEnds.code(err) }

var sessionEnds = errCodes{
	{errIdle, "idle_timeout"},
	{errCancel, "cancelled"},
	{errUnavailable, "offline"},
	{errNoAnswer, "no_answer"},
	{errCardIn, "card_in"},
	{errBack, "back"},
}

// errCodes name the sentinels a log or audit line tells apart: code
// returns the code of the first one err is, "error" for any other error.
type errCodes []struct {
	err  error
	code string
}

func (t errCodes) code(err error) string {
	for _, c := range t {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "error"
}

// awaitRemoval waits until the card is removed (idle timeout clears the
// screen meanwhile). It returns whether a card is still present.
func (a *App) awaitRemoval(ctx context.Context) bool {
	timer := a.clock.After(a.timeouts.idle())
	for {
		select {
		case <-ctx.Done():
			return true
		case ev := <-a.cards:
			if ev.Kind == hal.CardRemoved {
				return false
			}
		case <-a.keys:
		case <-timer:
			// Nothing of the session stays on screen: ask for the card only.
			a.Show("remove_card")
		case <-a.tick:
			a.heart.alive()
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
	k, _, err := a.keyOr(ctx, name, redraw, nil)
	return k, err
}

// keyOr is Key that also returns an entry received on results (nil: none
// awaited) meanwhile.
func (a *App) keyOr(ctx context.Context, name string, redraw func(), results <-chan outbox.Entry) (hal.Key, *outbox.Entry, error) {
	idle := a.timeouts.idle() // set live by SetTimeouts
	warn := a.o.IdleWarning
	if warn >= idle {
		warn = idle / 4
	}
	w := a.idleWatch(idle, idle-warn)
	for {
		select {
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		case ev := <-a.cards:
			if a.walkIn.on {
				if a.walkIn.event(ev) {
					return 0, nil, errCardIn
				}
				continue
			}
			if ev.Kind == hal.CardRemoved {
				return 0, nil, hal.ErrCardRemoved
			}
		case k := <-a.keys:
			if w.dismiss(redraw) {
				continue // the key only dismissed the warning
			}
			if c, ok := k.Char(); ok && !screens.Typed(name) {
				// A keyboard's digit stands for the keypad's, but
				// where only the keypad may type (the PIN).
				if c < '0' || c > '9' || screens.Secret(name) {
					w.restart()
					continue
				}
				k = hal.Key(c)
			}
			if a.globalKey(name, k, redraw) {
				w.restart()
				continue
			}
			if !screens.Bound(name, k) {
				w.restart()
				continue
			}
			return k, nil, nil
		case <-w.C:
			if err := w.fired(); err != nil {
				return 0, nil, err
			}
		case e := <-results:
			if e.Done {
				return 0, &e, nil
			}
		case <-a.tick:
			a.heart.alive()
		}
	}
}

// Show puts a catalogue screen on the display, formatting %-verbs in each
// row with args in order.
func (a *App) Show(key string, args ...any) {
	if screens.Has(key+"_nocard") && a.walkIn.on {
		key += "_nocard" // the variant that asks for no card back
	}
	if err := a.dev.Display.Show(screens.Format(a.lang, key, args...)); err != nil {
		a.log.Warn("display", "err", err)
	}
	a.voice.say(a.lang, func() string { return screens.Spoken(a.lang, key, args...) })
}

// globalKey handles the speech and language keys on screen name (redraw
// puts it back, spoken, in the language now chosen); it reports whether k
// was one of them.
func (a *App) globalKey(name string, k hal.Key, redraw func()) bool {
	if screens.Bound(name, k) && name != "idle" {
		return false
	}
	switch {
	case k == KeySpeech && a.dev.Speaker != nil:
		a.voice.ask()
	case k == KeyLang && (name == "idle" || strings.HasPrefix(name, "menu")):
		a.setLang(a.lang.Other())
		a.log.Info("language chosen", "lang", a.lang.Code())
	default:
		return false
	}
	redraw()
	return true
}

// setLang makes l the language of the screens, speech and receipts.
func (a *App) setLang(l Lang) {
	a.lang = l
	a.desk.SetLang(l)
}

// endCitizen puts the language and speech back to the totem's defaults
// once a citizen is done.
func (a *App) endCitizen() {
	a.voice.on, a.voice.said = false, ""
	a.setLang(a.o.Lang)
}

// Progress is when the session loop last ran. Its waits wake every
// Heartbeat to record it, so an idle loop proves it is alive, and a loop
// stuck in a call (a driver, a lock) stops moving it: totemd pings the
// systemd watchdog only while it moves.
func (a *App) Progress() time.Time { return a.heart.last() }

// Display puts rows on the display as they are.
func (a *App) Display(rows []string) {
	if err := a.dev.Display.Show(rows); err != nil {
		a.log.Warn("display", "err", err)
	}
	a.voice.say(a.lang, func() string { return screens.SpokenRows(a.lang, rows) })
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

// SetTimeouts changes the result wait and the idle timeout (sync.result_wait
// and session.idle_timeout changed live); a zero leaves one as it is. A
// wait already running keeps its timer; the next one uses the new value.
func (a *App) SetTimeouts(resultWait, idle time.Duration) { a.timeouts.set(resultWait, idle) }

// cardStateLink is the optional capability of the link (the uplink has
// it) that asks the hub for a card's state in the CMS.
type cardStateLink interface {
	CardState(ctx context.Context, serial string) (string, error)
}

var _ flows.CardStater = (*App)(nil)

// CardState asks the hub, through the link, for the CMS's state of the
// card with serial (flows.CardStater), waiting at most the result wait in force.
func (a *App) CardState(ctx context.Context, serial string) (string, error) {
	var l any
	if a.o.Link != nil {
		l = a.o.Link()
	}
	cs, ok := l.(cardStateLink)
	if !ok {
		return "", errors.New("firmware: the link does not answer card states")
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeouts.resultWait())
	defer cancel()
	return cs.CardState(ctx, serial)
}
