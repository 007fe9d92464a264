//go:build cgo && pcsc

package pcsc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ebfe/scard"

	"github.com/aslcns/totem/drivers/cns"
	"github.com/aslcns/totem/hal"
)

// Available reports whether this build has PC/SC support.
const Available = true

// Reader watches one PC/SC reader slot. Next is meant for one goroutine;
// Connect may run concurrently with it (it uses the other PC/SC context).
type Reader struct {
	o   Options
	log *slog.Logger

	closing context.Context // cancelled by Close
	cancel  context.CancelFunc

	// Monitor state, owned by the goroutine in Next (nextMu).
	nextMu  sync.Mutex
	mon     *scard.Context
	reader  string
	cur     scard.StateFlag
	pnp     scard.StateFlag
	present bool
	counter int
	pending []hal.CardEvent
	backoff time.Duration
	down    bool        // pcscd is away
	healthy atomic.Bool // !down, for Healthy from any goroutine
	lostErr error       // the loss of pcscd, to report after pending events

	mu     sync.Mutex // guards io and closed
	io     *scard.Context
	closed bool
}

var (
	_ hal.CardReader   = (*Reader)(nil)
	_ hal.ReaderHealth = (*Reader)(nil)
)

// Open connects to pcscd. The reader itself need not be there yet: Next
// waits for it.
func Open(ctx context.Context, o Options) (*Reader, error) {
	o.defaults()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	io, err := scard.EstablishContext()
	if err != nil {
		return nil, translate("establish context", err, false)
	}
	r := &Reader{o: o, log: o.Logger, io: io, backoff: o.MinBackoff}
	r.healthy.Store(true)
	r.closing, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// serviceLost reports errors after which both contexts must be released.
func serviceLost(err error) bool {
	switch err {
	case scard.ErrNoService, scard.ErrServiceStopped, scard.ErrCommError, scard.ErrInvalidHandle, scard.ErrShutdown:
		return true
	}
	return false
}

// translate turns a scard error into a hal sentinel, keeping the vendor
// error in the chain for logs. inSession says whether a card was connected
// (then "no card" means it was removed).
func translate(op string, err error, inSession bool) error {
	var s error
	switch err {
	case nil:
		return nil
	case scard.ErrNoSmartcard:
		s = hal.ErrNoCard
		if inSession {
			s = hal.ErrCardRemoved
		}
	case scard.ErrRemovedCard, scard.ErrResetCard:
		s = hal.ErrCardRemoved
	case scard.ErrUnknownReader, scard.ErrReaderUnavailable, scard.ErrNoReadersAvailable,
		scard.ErrNoService, scard.ErrServiceStopped, scard.ErrCommError, scard.ErrInvalidHandle, scard.ErrShutdown:
		s = hal.ErrNoReader
	case scard.ErrCancelled:
		s = hal.ErrTimeout
	default:
		s = hal.ErrNotResponding
	}
	return fmt.Errorf("pcsc: %s: %w (%w)", op, s, err)
}

// Readers lists the readers pcscd knows.
func (r *Reader) Readers() ([]string, error) {
	io, err := r.ioContext()
	if err != nil {
		return nil, err
	}
	names, err := io.ListReaders()
	if err == scard.ErrNoReadersAvailable {
		return nil, nil
	}
	if err != nil {
		r.dropIO(io, err)
		return nil, translate("list readers", err, false)
	}
	return names, nil
}

func (r *Reader) ioContext() (*scard.Context, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, hal.ErrClosed
	}
	if r.io == nil {
		io, err := scard.EstablishContext()
		if err != nil {
			return nil, translate("establish context", err, false)
		}
		r.io = io
	}
	return r.io, nil
}

// dropIO releases the I/O context after a service error, so the next
// Connect establishes a new one.
func (r *Reader) dropIO(io *scard.Context, err error) {
	if !serviceLost(err) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.io == io && io != nil {
		io.Release()
		r.io = nil
	}
}

// lost releases both contexts after pcscd went away.
func (r *Reader) lost(err error) error {
	r.log.Warn("pcscd lost", "err", err)
	if r.mon != nil {
		r.mon.Release()
		r.mon = nil
	}
	r.mu.Lock()
	if r.io != nil {
		r.io.Release()
		r.io = nil
	}
	r.mu.Unlock()
	r.reader = ""
	if r.present {
		r.present = false
		r.pending = append(r.pending, hal.CardEvent{Kind: hal.CardRemoved, Reader: r.o.Reader, Counter: r.counter})
	}
	r.down = true
	r.healthy.Store(false)
	r.lostErr = translate("monitor", err, false)
	return r.lostErr
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// monitor returns the monitor context, establishing it (with backoff while
// pcscd is away).
func (r *Reader) monitor(ctx context.Context) (*scard.Context, error) {
	for r.mon == nil {
		if r.down {
			if err := sleep(ctx, r.backoff); err != nil {
				return nil, err
			}
			r.backoff = min(2*r.backoff, r.o.MaxBackoff)
		}
		c, err := scard.EstablishContext()
		if err != nil {
			r.down = true
			r.healthy.Store(false)
			r.log.Debug("pcscd unreachable", "err", err, "retry_in", r.backoff)
			continue
		}
		if r.down {
			r.log.Info("pcscd back")
		}
		r.mon, r.down, r.backoff = c, false, r.o.MinBackoff
		r.healthy.Store(true)
	}
	return r.mon, nil
}

// Healthy reports whether pcscd is reachable (hal.ReaderHealth): false from
// the moment it is lost until the monitor has established it again.
func (r *Reader) Healthy() bool { return r.healthy.Load() }

// wait runs GetStatusChange, cancelling it when ctx is done. Cancel is
// repeated until the wait returns, since a Cancel issued just before the
// wait starts would be lost.
func wait(ctx context.Context, c *scard.Context, states []scard.ReaderState, timeout time.Duration) error {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	stop := context.AfterFunc(ctx, func() {
		defer wg.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			c.Cancel()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	err := c.GetStatusChange(states, timeout)
	close(done)
	if stop() {
		wg.Done()
	}
	wg.Wait()
	return err
}

// Next blocks until a card is inserted in or removed from the watched
// reader, or ctx is done. When pcscd goes away it reports a removal (if a
// card was in) and then an error wrapping hal.ErrNoReader once; later calls
// wait for pcscd to come back.
func (r *Reader) Next(ctx context.Context) (hal.CardEvent, error) {
	r.nextMu.Lock()
	defer r.nextMu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(r.closing, cancel)
	defer stop()
	for {
		if ev, done, err := r.ready(ctx); done {
			return ev, err
		}
		mon, err := r.monitor(ctx)
		if err != nil {
			continue
		}
		if r.reader == "" && !r.findReader(ctx, mon) {
			continue
		}
		if ev, done, err := r.watch(ctx, mon); done {
			return ev, err
		}
	}
}

// ready returns, with done set, what Next returns before it waits: an
// event already decoded, the loss of pcscd, or the end of Close or ctx.
func (r *Reader) ready(ctx context.Context) (ev hal.CardEvent, done bool, err error) {
	if len(r.pending) > 0 {
		ev := r.pending[0]
		r.pending = r.pending[1:]
		return ev, true, nil
	}
	if err := r.lostErr; err != nil {
		r.lostErr = nil
		return hal.CardEvent{}, true, err
	}
	if r.closing.Err() != nil {
		return hal.CardEvent{}, true, hal.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return hal.CardEvent{}, true, err
	}
	return hal.CardEvent{}, false, nil
}

// findReader picks the reader to watch and reports whether there is one;
// without one it waits for a reader to be plugged in (PnP), re-listing
// every Poll at worst.
func (r *Reader) findReader(ctx context.Context, mon *scard.Context) bool {
	names, err := mon.ListReaders()
	if serviceLost(err) {
		r.lost(err)
		return false
	}
	r.reader = pick(names, r.o.Reader)
	r.cur = scard.StateUnaware
	if r.reader == "" {
		states := []scard.ReaderState{{Reader: pnpName, CurrentState: r.pnp}}
		err := wait(ctx, mon, states, r.o.Poll)
		if serviceLost(err) {
			r.lost(err)
			return false
		}
		if err == nil {
			r.pnp = states[0].EventState
		}
		return false
	}
	r.log.Info("watching reader", "reader", r.reader)
	return true
}

// watch waits once for a change of the watched reader (or of the readers
// plugged in) and returns, with done set, what Next returns.
func (r *Reader) watch(ctx context.Context, mon *scard.Context) (ev hal.CardEvent, done bool, err error) {
	states := []scard.ReaderState{
		{Reader: pnpName, CurrentState: r.pnp},
		{Reader: r.reader, CurrentState: r.cur},
	}
	err = wait(ctx, mon, states, r.o.Poll)
	switch {
	case err == nil:
	case err == scard.ErrTimeout, err == scard.ErrCancelled:
		return hal.CardEvent{}, false, nil
	case err == scard.ErrUnknownReader, err == scard.ErrReaderUnavailable:
		ev, ok := r.readerGone()
		return ev, ok, nil
	case serviceLost(err):
		r.lost(err) // reports the removal first, then the loss
		return hal.CardEvent{}, false, nil
	default:
		r.log.Warn("status change", "err", err)
		if err := sleep(ctx, r.o.MinBackoff); err != nil {
			return hal.CardEvent{}, true, err
		}
		return hal.CardEvent{}, false, nil
	}
	if states[0].EventState&scard.StateChanged != 0 {
		r.pnp = states[0].EventState &^ scard.StateChanged
	}
	ev, ok := r.event(states[1].EventState)
	return ev, ok, nil
}

// event decodes the watched reader's new state es into the event to
// report, if any.
func (r *Reader) event(es scard.StateFlag) (hal.CardEvent, bool) {
	if es&scard.StateChanged == 0 {
		return hal.CardEvent{}, false
	}
	r.cur = es &^ scard.StateChanged
	flags := es & 0xFFFF
	if flags&(scard.StateUnknown|scard.StateUnavailable|scard.StateIgnore) != 0 {
		return r.readerGone()
	}
	counter := int(uint32(es)>>16) & 0xFFFF
	present := flags&scard.StatePresent != 0
	ev := hal.CardEvent{Reader: r.reader, Counter: counter}
	switch {
	case present != r.present:
		r.present = present
		ev.Kind = hal.CardRemoved
		if present {
			ev.Kind = hal.CardInserted
		}
	case present && counter-r.counter >= 2:
		// Removed and inserted again between two waits: report both.
		ev.Kind = hal.CardRemoved
		r.pending = append(r.pending, hal.CardEvent{Kind: hal.CardInserted, Reader: r.reader, Counter: counter})
	default:
		r.counter = counter
		return hal.CardEvent{}, false
	}
	r.counter = counter
	return ev, true
}

// readerGone forgets the watched reader (unplugged) and reports the card
// in it as removed.
func (r *Reader) readerGone() (hal.CardEvent, bool) {
	r.log.Warn("reader gone", "reader", r.reader)
	name := r.reader
	r.reader = ""
	if !r.present {
		return hal.CardEvent{}, false
	}
	r.present = false
	return hal.CardEvent{Kind: hal.CardRemoved, Reader: name, Counter: r.counter}, true
}

// Connect opens an exclusive session with the card in the reader.
func (r *Reader) Connect(ctx context.Context) (hal.Card, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	io, err := r.ioContext()
	if err != nil {
		return nil, err
	}
	names, err := io.ListReaders()
	if err != nil && err != scard.ErrNoReadersAvailable {
		r.dropIO(io, err)
		return nil, translate("connect", err, false)
	}
	name := pick(names, r.o.Reader)
	if name == "" {
		return nil, fmt.Errorf("pcsc: connect: %w", hal.ErrNoReader)
	}
	var h *scard.Card
	for {
		h, err = io.Connect(name, scard.ShareExclusive, scard.ProtocolAny)
		if err != scard.ErrSharingViolation {
			break
		}
		// Someone else holds the card for a moment (a PKCS#11 middleware…).
		if sleep(ctx, 100*time.Millisecond) != nil {
			return nil, ctx.Err()
		}
	}
	if err != nil {
		r.dropIO(io, err)
		return nil, translate("connect", err, false)
	}
	st, err := h.Status()
	if err != nil {
		h.Disconnect(scard.ResetCard)
		return nil, translate("status", err, true)
	}
	l := &link{r: r, io: io, h: h}
	c := &Card{Card: cns.New(l, st.Atr), l: l, Reader: name}
	return c, nil
}

// Card is an exclusive session with a card: the TS-CNS application (PIN
// change and unblock, NIS…) on a PC/SC handle. Close resets and unpowers
// the card.
type Card struct {
	*cns.Card
	Reader string
	l      *link
}

var (
	_ hal.Card       = (*Card)(nil)
	_ hal.PINChanger = (*Card)(nil)
)

// Close ends the session leaving the card unpowered (so no verified PIN
// state survives).
func (c *Card) Close() error {
	c.Card.Close()
	return c.l.close()
}

// link is the cns.Transmitter on a PC/SC handle.
type link struct {
	r           *Reader
	io          *scard.Context
	h           *scard.Card
	reconnected bool
	closed      bool
}

func (l *link) Transmit(apdu []byte) ([]byte, error) {
	if l.closed {
		return nil, hal.ErrClosed
	}
	if len(apdu) == 0 {
		return nil, errors.New("pcsc: transmit: empty APDU")
	}
	resp, err := l.h.Transmit(apdu)
	if err == nil && len(resp) < 2 {
		// Some drivers (vpcd) return an empty answer when the card left
		// during the command.
		err = scard.ErrNotTransacted
	}
	if err == nil {
		return resp, nil
	}
	if err == scard.ErrResetCard && !l.reconnected {
		l.reconnected = true
		if err := l.h.Reconnect(scard.ShareExclusive, scard.ProtocolAny, scard.LeaveCard); err != nil {
			return nil, translate("reconnect", err, true)
		}
		return nil, fmt.Errorf("pcsc: transmit: %w", cns.ErrCardReset)
	}
	if err == scard.ErrNotTransacted || err == scard.ErrUnpoweredCard || err == scard.ErrUnresponsiveCard {
		// The card may have left in the middle of the command.
		if _, serr := l.h.Status(); serr == scard.ErrRemovedCard || serr == scard.ErrNoSmartcard {
			err = serr
		}
	}
	l.r.dropIO(l.io, err)
	return nil, translate("transmit", err, true)
}

func (l *link) close() error {
	if l.closed {
		return nil
	}
	l.closed = true
	err := l.h.Disconnect(scard.UnpowerCard)
	if err != nil && err != scard.ErrRemovedCard && err != scard.ErrNoSmartcard {
		if err2 := l.h.Disconnect(scard.ResetCard); err2 == nil {
			return nil
		}
		return translate("disconnect", err, true)
	}
	return nil
}

// Close stops Next, waits for it, and releases both PC/SC contexts.
// Sessions still open fail afterwards.
func (r *Reader) Close() error {
	r.cancel()
	r.nextMu.Lock()
	if r.mon != nil {
		r.mon.Release()
		r.mon = nil
	}
	r.nextMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.io != nil {
		r.io.Release()
		r.io = nil
	}
	return nil
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 5 * time.Second
	}
}

// pick chooses the reader to watch among names: the first whose name
// equals or starts with want, or the first non-PnP reader when want is "".
func pick(names []string, want string) string {
	for _, n := range names {
		if n == pnpName {
			continue
		}
		if want == "" || n == want {
			return n
		}
	}
	for _, n := range names {
		if want != "" && n != pnpName && len(n) > len(want) && n[:len(want)] == want {
			return n
		}
	}
	return ""
}

const pnpName = `\\?PnP?\Notification`
