package firmware

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aslcns/totem/firmware/flows"
	"github.com/aslcns/totem/firmware/maint"
	"github.com/aslcns/totem/firmware/screens"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/enroll"
	"github.com/aslcns/totem/sync/protocol"
)

// Maintenance mode at the panel (issue 16): a field technician opens it
// from the idle screen with a key sequence, proves who they are with their
// number and a TOTP code (or the hub's one-time unlock code while the
// clock is not synchronised: firmware/maint checks both), and gets a menu
// of tests and diagnostics. Nothing in it reaches a citizen's data: the
// card test reads the ATR only, the queue shows counts. Every session
// start, end, failure and action goes through techAudit.

// MaintSequence opens maintenance mode from the idle screen: * 0 * 0 * 0,
// each key within MaintSequencePace of the one before. On the idle screen
// * and 0 do nothing for a citizen (no service starts, nothing changes on
// the display), so keys pressed at random reach it only by those six in
// that order; and it needs no A-C key, which 12-key keypads lack.
const (
	MaintSequence     = "*0*0*0"
	MaintSequencePace = 5 * time.Second
)

// feed feeds a key pressed on the idle screen at now to the sequence and
// reports whether it completed it.
func (s *seqState) feed(k hal.Key, now time.Time) bool {
	if s.n > 0 && now.Sub(s.last) > MaintSequencePace {
		s.n = 0
	}
	switch {
	case byte(k) == MaintSequence[s.n]:
		s.n++
	case byte(k) == MaintSequence[0]:
		s.n = 1
	default:
		s.n = 0
	}
	s.last = now
	if s.n == len(MaintSequence) {
		s.n = 0
		return true
	}
	return false
}

type seqState struct {
	n    int
	last time.Time
}

// techAudit is the one place every technician session start, end,
// failure and action at the panel is recorded. actor is "tech:" and the
// technician's number (never a name), or "panel" before one is known;
// detail holds codes and counts only.
func (m *msession) techAudit(actor, action, detail string) {
	m.a.log.Info("technician audit", "actor", actor, "action", action, "detail", detail)
	m.a.audits.audit(actor, action, detail) // to the hub's audit, through the outbox
}

var (
	errMaintIdle = errors.New("firmware: maintenance session idle")
	errMaintExit = errors.New("firmware: maintenance left")
	errCardMoved = errors.New("firmware: card inserted or removed")
)

// msession is one maintenance session at the panel.
type msession struct {
	a       *App
	actor   string
	mode    string // "totp" or "unlock_code"
	present bool   // a card is in the slot
	watch   bool   // card events end the wait (card test)
}

// maintenance runs maintenance mode from the door to the end of the
// session. It reports whether a card is in the slot when it returns.
func maintenance(ctx context.Context, a *App) bool {
	m := &msession{a: a, actor: "panel"}
	a.log.Info("maintenance entry asked")
	err := m.login(ctx)
	if err == nil {
		m.techAudit(m.actor, "session_start", m.mode)
		err = m.menu(ctx)
		m.techAudit(m.actor, "session_end", maintReason(err))
		if ctx.Err() == nil {
			a.Show("maint_closed")
			m.pause(ctx)
		}
	}
	return m.present
}

// maintReason is how a maintenance session ended, for its audit.
func maintReason(err error) string { return maintEnds.code(err) }

var maintEnds = errCodes{
	{errMaintIdle, "idle_timeout"},
	{errMaintExit, "left"},
	{context.Canceled, "stopped"},
}

// key shows screen name and waits for a key it is bound to. D leaves
// maintenance (errMaintExit); nobody at the panel for MaintIdle ends it
// (errMaintIdle); with watch set, a card inserted or removed ends the wait
// (errCardMoved).
func (m *msession) key(ctx context.Context, name string, args ...any) (hal.Key, error) {
	a := m.a
	a.Show(name, args...)
	idle := a.clock.After(a.o.MaintIdle)
	for {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case ev := <-a.cards:
			switch ev.Kind {
			case hal.CardInserted:
				m.present = true
			case hal.CardRemoved:
				m.present = false
			default:
				continue // the reader's state changed
			}
			if m.watch {
				return 0, errCardMoved
			}
		case k := <-a.keys:
			idle = a.clock.After(a.o.MaintIdle)
			if !screens.Bound(name, k) {
				continue
			}
			if k == hal.KeyCancel {
				return 0, errMaintExit
			}
			return k, nil
		case <-idle:
			return 0, errMaintIdle
		case <-a.tick:
			a.heart.alive()
		}
	}
}

// pause leaves an informative screen up for a few seconds or until a key.
func (m *msession) pause(ctx context.Context) {
	m.a.hold(ctx, 3*time.Second, func(ev hal.CardEvent) bool {
		if ev.Kind != 0 {
			m.present = ev.Kind == hal.CardInserted
		}
		return false
	})
}

// digits reads min to max digits on screen name, whose last verb shows
// them (args fill the verbs before it). * deletes, or goes back (ErrBack)
// when there is nothing to delete; # confirms.
func (m *msession) digits(ctx context.Context, name string, min, max int, args ...any) (string, error) {
	var buf []byte
	for {
		k, err := m.key(ctx, name, append(args, string(buf)+"_")...)
		if err != nil {
			return "", err
		}
		var back bool
		if buf, back = flows.TypeDigit(buf, k, max); back {
			return "", errBack
		}
		if k == hal.KeyOK && len(buf) >= min {
			return string(buf), nil
		}
	}
}

// login is the door: the technician's number, then the code. It returns
// nil with m.actor set once a technician is admitted.
func (m *msession) login(ctx context.Context) error {
	a, g := m.a, m.a.o.Maint
	if locked, left := g.Locked(); locked {
		m.techAudit("panel", "entry_refused", "locked")
		a.Show("maint_locked", minutes(left))
		m.pause(ctx)
		return errMaintExit
	}
	if g.Technicians() < 0 {
		m.techAudit("panel", "entry_refused", "no_technician_set")
		if _, err := m.key(ctx, "maint_noset"); err != nil {
			return err
		}
		return errMaintExit // *
	}
	for {
		id, err := m.digits(ctx, "maint_id", 4, 8)
		if err != nil {
			if errors.Is(err, errBack) {
				return errMaintExit
			}
			return err
		}
		// The clock decides what is asked: a TOTP needs the right time.
		var code string
		mode := "totp"
		if g.Synced() {
			code, err = m.digits(ctx, "maint_totp", maint.Digits, maint.Digits, id)
		} else {
			mode = "unlock_code"
			code, err = m.digits(ctx, "maint_unlock", 11, 11)
		}
		if errors.Is(err, errBack) {
			continue
		}
		if err != nil {
			return err
		}
		actor := "tech:" + id
		err = g.Login(id, code)
		switch {
		case err == nil:
			m.actor, m.mode = actor, mode
			return nil
		case errors.Is(err, maint.ErrLockedUp):
			m.techAudit(actor, "login_failed", loginFailure(err))
			m.techAudit("panel", "entry_locked", fmt.Sprintf("failures=%d minutes=%d", maint.MaxFailures, minutes(maint.LockFor)))
			a.health.event(protocol.LevelAlarm, "maintenance_locked",
				fmt.Sprintf("maintenance entry at the panel locked for %v after %d failed attempts", maint.LockFor, maint.MaxFailures))
			a.Show("maint_locked", minutes(maint.LockFor))
			m.pause(ctx)
			return errMaintExit
		case errors.Is(err, maint.ErrLocked):
			a.Show("maint_locked", minutes(maint.LockFor))
			m.pause(ctx)
			return errMaintExit
		}
		m.techAudit(actor, "login_failed", loginFailure(err))
		screen, args := "maint_refused", []any{g.TriesLeft()}
		switch {
		case errors.Is(err, maint.ErrReused):
			screen, args = "maint_reused", nil
		case errors.Is(err, maint.ErrExpired):
			screen, args = "maint_expired", nil
		}
		if _, err := m.key(ctx, screen, args...); err != nil {
			return err
		}
	}
}

// loginFailure is why a technician's code was refused, for the audit.
func loginFailure(err error) string { return loginFailures.code(err) }

var loginFailures = errCodes{
	{maint.ErrReused, "code_reused"},
	{maint.ErrExpired, "code_expired"},
	{maint.ErrRefused, "refused"},
}

func minutes(d time.Duration) int { return int((d + time.Minute - 1) / time.Minute) }

// maintItem is one function of the maintenance menu.
type maintItem struct {
	action string // in the audit
	run    func(m *msession, ctx context.Context) error
}

// maintItems is the menu: key → function, in one place.
var maintItems = map[hal.Key]maintItem{
	'1': {"printer", (*msession).printer},
	'2': {"card_reader_test", (*msession).cardTest},
	'3': {"diagnostics", (*msession).network},
	'4': {"queue", (*msession).queue},
	'5': {"enrollment", (*msession).enroll},
	'6': {"credentials_test", (*msession).credentials},
	'7': {"version", (*msession).version},
}

var maintPages = []string{"maint_menu", "maint_menu_2", "maint_menu_3"}

func (m *msession) menu(ctx context.Context) error {
	page := 0
	for {
		k, err := m.key(ctx, maintPages[page])
		if err != nil {
			return err
		}
		switch k {
		case hal.KeyOK:
			page = (page + 1) % len(maintPages)
			continue
		case hal.KeyBack:
			if page == 0 {
				return errMaintExit
			}
			page--
			continue
		}
		item, ok := maintItems[k]
		if !ok {
			continue
		}
		m.techAudit(m.actor, item.action, "")
		if err := item.run(m, ctx); err != nil && !errors.Is(err, errBack) {
			return err
		}
	}
}

func (m *msession) text(key string) string { return m.a.o.Lang.Text(key) }

// printer shows the printer's condition and the paper, and prints a test
// page on 1.
func (m *msession) printer(ctx context.Context) error {
	a := m.a
	for {
		state, paper := m.printerCondition(ctx)
		k, err := m.key(ctx, "maint_printer", m.text(state), m.text(paper))
		if err != nil {
			return err
		}
		if k == hal.KeyBack {
			return errBack
		}
		a.Show("maint_printing")
		err = a.Print(ctx, a.Frame().TestPage(a.o.Version), "")
		if err != nil {
			m.techAudit(m.actor, "printer_test_page", "failed: "+printerCondition(err, false))
			_, err = m.key(ctx, "maint_print_failed", flows.PrinterText(a.o.Lang, err))
		} else {
			m.techAudit(m.actor, "printer_test_page", "printed")
			_, err = m.key(ctx, "maint_printed")
		}
		if err != nil {
			return err
		}
	}
}

// printerCondition asks the printer its condition: the catalogue texts of
// its state and of its paper. It records what it learns for telemetry.
func (m *msession) printerCondition(ctx context.Context) (state, paper string) {
	a := m.a
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := a.dev.Printer.Status(sctx)
	if err != nil {
		a.health.setPrinter(err)
		return printerText(err), "m_unknown"
	}
	a.health.setPaperLow(st.PaperNearEnd)
	err = st.Err()
	a.health.setPrinter(err)
	switch {
	case st.PaperOut:
		paper = "m_paper_out"
	case st.PaperNearEnd:
		paper = "m_paper_low"
	default:
		paper = "m_paper_ok"
	}
	return printerText(err), paper
}

// printerText is the catalogue key of a printer's condition.
func printerText(err error) string {
	if err == nil {
		return "m_printer_ok"
	}
	return flows.PrinterKey(err)
}

// cardTest shows the class and the ATR of any card inserted: nothing is
// read from the chip's files, so nothing personal.
func (m *msession) cardTest(ctx context.Context) error {
	m.watch = true
	defer func() { m.watch = false }()
	for {
		var err error
		var k hal.Key
		if !m.present {
			k, err = m.key(ctx, "maint_card")
		} else {
			class, atr := m.probe(ctx)
			m.techAudit(m.actor, "card_probed", strings.TrimPrefix(class, "m_"))
			a, b := atrRows(atr)
			k, err = m.key(ctx, "maint_card_info", m.text(class), a, b)
		}
		switch {
		case errors.Is(err, errCardMoved):
			continue
		case err != nil:
			return err
		case k == hal.KeyBack:
			return errBack
		}
	}
}

// probe connects to the card and returns the catalogue key of its class
// and its ATR.
func (m *msession) probe(ctx context.Context) (string, []byte) {
	card, err := m.a.dev.Reader.Connect(ctx)
	if err != nil {
		return "m_card_unread", nil
	}
	defer card.Close()
	p, ok := card.(hal.CardProbe)
	if !ok {
		return "m_class_unknown", nil
	}
	class, atr := p.Probe()
	switch class {
	case hal.ClassCNS, hal.ClassOperator:
		return "m_class_cns", atr
	case hal.ClassCIE:
		return "m_class_cie", atr
	case hal.ClassContactless:
		return "m_class_nfc", atr
	}
	return "m_class_unknown", atr
}

// atrRows lays an ATR out in hex on two rows of 20 ("+" ends a second row
// that could not hold the rest).
func atrRows(atr []byte) (string, string) {
	h := strings.ToUpper(hex.EncodeToString(atr))
	if len(h) <= 20 {
		return h, ""
	}
	if len(h) <= 40 {
		return h[:20], h[20:]
	}
	return h[:20], h[20:39] + "+"
}

// Diagnostics is what the maintenance menu shows of the link to the hub;
// the uplink fills it (Options.Diag).
type Diagnostics struct {
	Connected bool
	Broker    string // host:port
	TLS       bool
	// LastError is the last failure to connect, as a code: "" none,
	// "network", "tls", "auth", "locked", "refused", "nocreds".
	LastError string
	Synced    bool // the wall clock is synchronised (NTP)
}

// network shows the link, the clock and the last link error, one page
// each.
func (m *msession) network(ctx context.Context) error {
	a := m.a
	var d Diagnostics
	if a.o.Diag != nil {
		d = a.o.Diag()
	}
	conn, tls, clock := "m_disconnected", "m_no", "m_not_synced"
	if d.Connected {
		conn = "m_connected"
	}
	if d.TLS {
		tls = "m_yes"
	}
	if d.Synced {
		clock = "m_synced"
	}
	errKey := "m_two_none"
	if d.LastError != "" {
		errKey = "m_two_" + d.LastError
	}
	e1, e2 := twoRows(m.text(errKey))
	pages := []func() (hal.Key, error){
		func() (hal.Key, error) {
			return m.key(ctx, "maint_net", m.text(conn), cut(d.Broker, 20), m.text(tls))
		},
		func() (hal.Key, error) { return m.key(ctx, "maint_clock", m.text(clock), a.hubOffset.text(a.o.Lang)) },
		func() (hal.Key, error) { return m.key(ctx, "maint_linkerr", e1, e2) },
	}
	for i := 0; i < len(pages); {
		k, err := pages[i]()
		if err != nil {
			return err
		}
		if k == hal.KeyBack {
			if i == 0 {
				return errBack
			}
			i--
			continue
		}
		i++
	}
	return errBack
}

func twoRows(s string) (string, string) {
	rows := screens.Wrap(s, 20)
	rows = append(rows, "", "")
	return rows[0], rows[1]
}

func cut(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n])
	}
	return s
}

// hubOffset is the offset of the totem's clock from the hub's (ns), once
// known.
type hubOffset struct {
	ns    atomic.Int64
	known atomic.Bool
}

// note records the offset of now from hub, the time a result stamped by
// the hub shows.
func (h *hubOffset) note(now, hub time.Time) {
	if hub.IsZero() {
		return
	}
	h.ns.Store(int64(now.Sub(hub)))
	h.known.Store(true)
}

// text is the offset at the last result (delivery time included), at
// most 8 columns, or n.d. in lang.
func (h *hubOffset) text(lang Lang) string {
	if !h.known.Load() {
		return lang.Text("m_unknown")
	}
	return offsetString(time.Duration(h.ns.Load()))
}

func offsetString(d time.Duration) string {
	sign := "+"
	if d < 0 {
		sign, d = "-", -d
	}
	switch {
	case d < 1000*time.Second:
		return fmt.Sprintf("%s%ds", sign, int(d/time.Second))
	case d < 1000*time.Minute:
		return fmt.Sprintf("%s%dm", sign, int(d/time.Minute))
	case d < 100000*time.Hour:
		return fmt.Sprintf("%s%dh", sign, int(d/time.Hour))
	}
	return sign + ">11y"
}

// age is how old t is, at most 6 columns.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 100*time.Second:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < 100*time.Minute:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 100*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

// queue shows the outbox's counts, resends what is stuck in quarantine on
// 1, and summarises the send log on #.
func (m *msession) queue(ctx context.Context) error {
	a := m.a
	for {
		q, _ := a.o.Outbox.Stats()
		u, _ := a.o.Outbox.Usage()
		oldest := "-"
		if !q.Oldest.IsZero() {
			oldest = age(a.now().Sub(q.Oldest))
		}
		k, err := m.key(ctx, "maint_queue", q.Depth, u.Quarantined, oldest)
		if err != nil {
			return err
		}
		switch k {
		case hal.KeyBack:
			return errBack
		case '1':
			ok, failed := m.resendStuck(ctx)
			m.techAudit(m.actor, "resend_stuck", fmt.Sprintf("resent=%d failed=%d", ok, failed))
			if _, err := m.key(ctx, "maint_resent", ok, failed); err != nil {
				return err
			}
		case hal.KeyOK:
			n, ok, rejected, pending := m.sendLogSummary()
			k, err := m.key(ctx, "maint_sendlog", n, ok, rejected, pending)
			if err != nil {
				return err
			}
			if k == hal.KeyOK {
				return errBack
			}
		}
	}
}

// maxResend bounds the entries one resend from the panel takes.
const maxResend = 100

// resendStuck sends the quarantined entries again through the link (each
// back to the queue with its op id: the hub dedups).
func (m *msession) resendStuck(ctx context.Context) (ok, failed int) {
	a := m.a
	stuck, err := a.o.Outbox.Quarantined(maxResend)
	if err != nil {
		a.log.Warn("quarantine not read", "err", err)
		return 0, 0
	}
	var l Link
	if a.o.Link != nil {
		l = a.o.Link()
	}
	for _, e := range stuck {
		if l == nil {
			failed++
			continue
		}
		if _, err := l.Resend(ctx, e.ID); err != nil {
			a.log.Warn("resend from the panel failed", "op_id", e.ID, "err", err)
			failed++
			continue
		}
		ok++
	}
	return ok, failed
}

// sendLogWindow is how many of the newest operations the summary counts.
const sendLogWindow = 50

func (m *msession) sendLogSummary() (n, ok, rejected, pending int) {
	entries, err := m.a.o.Outbox.Recent(sendLogWindow)
	if err != nil {
		return 0, 0, 0, 0
	}
	for _, e := range entries {
		switch {
		case e.Result != nil && (e.Result.Processing.Status == protocol.ProcessingRejected ||
			e.Result.Transport.Status == protocol.TransportRefused):
			rejected++
		case e.Done:
			ok++
		default:
			pending++
		}
	}
	return len(entries), ok, rejected, pending
}

// tapCode is the multi-tap of an enrollment code: the digits 2-9 and the
// letters of their keys (the code's alphabet has no 0, 1, I or O; they
// are refused by the hub like any wrong character).
var tapCode = [10]string{"0", "1", "2ABC", "3DEF", "4GHI", "5JKL", "6MNO", "7PQRS", "8TUV", "9WXYZ"}

// enroll reads an enrollment code by multi-tap and exchanges it for the
// totem's credentials (Options.Enroll).
func (m *msession) enroll(ctx context.Context) error {
	a := m.a
	if a.o.Enroll == nil {
		_, err := m.key(ctx, "maint_cred_ko", twoRowsArgs(m.text("m_two_not_offered"))...)
		return err
	}
	for {
		code, err := m.multiTap(ctx, "maint_enroll", enroll.CodeLen)
		if err != nil {
			return err
		}
		a.Show("maint_enrolling")
		err = a.o.Enroll(ctx, code)
		screen := "maint_enrolled"
		switch {
		case err == nil:
			m.techAudit(m.actor, "enrollment_code", "credentials_saved")
		case enroll.ReasonOf(err) != "":
			m.techAudit(m.actor, "enrollment_code", "refused: "+enroll.ReasonOf(err))
			screen = "maint_enroll_failed"
		default:
			a.log.Warn("enrollment from the panel failed", "err", err)
			m.techAudit(m.actor, "enrollment_code", "hub_not_reached")
			screen = "maint_enroll_offline"
		}
		k, err := m.key(ctx, screen)
		if err != nil {
			return err
		}
		if screen == "maint_enrolled" || k == hal.KeyBack {
			return errBack
		}
	}
}

func twoRowsArgs(s string) []any {
	a, b := twoRows(s)
	return []any{a, b}
}

// multiTap reads n characters of an enrollment code: a key types the
// first character of its set, pressed again the next; C closes the
// character so the same key types the next one.
func (m *msession) multiTap(ctx context.Context, name string, n int) (string, error) {
	var buf []byte
	last, presses := hal.Key(0), 0
	for {
		shown := group(string(buf))
		if last == 0 && len(buf) < n {
			shown += "_"
		}
		k, err := m.key(ctx, name, shown)
		if err != nil {
			return "", err
		}
		switch {
		case k >= '0' && k <= '9':
			set := tapCode[k-'0']
			if k == last {
				presses++
				buf[len(buf)-1] = set[presses%len(set)]
				continue
			}
			if len(buf) < n {
				buf = append(buf, set[0])
				last, presses = k, 0
			}
		case k == 'C':
			last = 0
		case k == hal.KeyBack:
			last = 0
			if len(buf) == 0 {
				return "", errBack
			}
			buf = buf[:len(buf)-1]
		case k == hal.KeyOK && len(buf) == n:
			return string(buf), nil
		}
	}
}

// group writes a code in groups of four, as ops reads it out.
func group(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if i > 0 && i%4 == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// credentials runs Test credenziali on the live link.
func (m *msession) credentials(ctx context.Context) error {
	a := m.a
	problem := "not_offered"
	if a.o.TestCredentials != nil {
		a.Show("maint_credtest")
		problem = a.o.TestCredentials(ctx)
	}
	if problem == "" {
		m.techAudit(m.actor, "credentials_test", "ok")
		_, err := m.key(ctx, "maint_cred_ok")
		return err
	}
	m.techAudit(m.actor, "credentials_test", "ko: "+problem)
	_, err := m.key(ctx, "maint_cred_ko", twoRowsArgs(m.text("m_two_"+problem))...)
	return err
}

func (m *msession) version(ctx context.Context) error {
	v := m.a.o.Version
	if v == "" {
		v = m.text("m_unknown")
	}
	_, err := m.key(ctx, "maint_version", cut(v, 20), m.a.o.Totem)
	return err
}
