package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
)

// Data is what the console reads from the hub's reference CMS: its send
// log, the Reportistica and the FSE helpdesk tickets (refcms.Store).
type Data interface {
	SendLog(cms.SendLogFilter) ([]cms.Transmission, uint64, error)
	Transmission(n uint64) (cms.Transmission, error)
	Report(cms.ReportFilter) ([]cms.ReportRow, error)
	Tickets() ([]refcms.Ticket, error)
	// FSE is the creation state of a citizen's FSE: a ticket's state.
	FSE(cf string) (refcms.FSERecord, error)
}

var _ Data = (*refcms.Store)(nil)

// Commander carries a signed command to a totem and brings its reply: the
// hub's console connection to the broker (cmd/totemhub).
type Commander interface {
	Command(ctx context.Context, cmd *protocol.Command) (*protocol.Reply, error)
}

// Console configures the ops console: the pages behind a login. Without
// one (Options.Console nil) the listener serves only the read-only fleet
// page on the loopback.
type Console struct {
	Users *Users
	Data  Data // nil: the send log, report and ticket pages say so
	// Commands and Key carry the technician actions: each command is
	// signed with Key (the hub's console key, trusted by the totems) in
	// the logged-in user's role, never more. nil: actions refused.
	Commands Commander
	Key      *cmdsig.PrivateKey
	// Credentials, Unlock and Enroll are the embedded broker's registry
	// (nil on an external broker).
	Credentials func() ([]broker.Credential, error)
	Unlock      func(name string) (bool, error)
	Enroll      func(totem string) (code string, expires time.Time, err error)
	// Audit receives every action, after it is logged (the hub's audit
	// trail). nil: the log only.
	Audit func(actor, action, detail string)
	// Refresh is how often the fleet page refreshes itself; default 5 s.
	Refresh time.Duration
	Now     func() time.Time
	// List, when set, replaces the fleet registry's List (tests, the
	// benchmark).
	List func(hub.FleetFilter) []hub.TotemStatus
	// Stats, when set, counts logins and actions for /metrics
	// (Sources.Console).
	Stats *ConsoleStats
	// Events, when set, replaces the fleet registry's recent events.
	Events func(totem string) []protocol.Event
}

// ConsoleStats counts the console's logins and actions.
type ConsoleStats struct {
	LoginsOK      atomic.Int64
	LoginsFailed  atomic.Int64 // wrong password, code or name
	LoginsRefused atomic.Int64 // while the account is locked or the address blocked
	Lockouts      atomic.Int64 // accounts locked
	Actions       atomic.Int64 // audited actions other than logins
}

// receiptBundle writes the receipt bundle of send log entry n (a ZIP with
// the PDF receipt and, for a rejection, the CSV of its errors). It is set
// where the generator is wired; nil answers 501.
var receiptBundle func(w io.Writer, n uint64) error

// SetReceiptBundle sets the receipt bundle generator (tests and the hub).
func SetReceiptBundle(f func(w io.Writer, n uint64) error) { receiptBundle = f }

// console is a Console being served.
type console struct {
	Console
	log    *slog.Logger
	secure bool
	g      *guard
	alerts *alertBook
	slots  chan struct{} // logins hashing at once
}

// maxHashing is how many logins run argon2id at once.
const maxHashing = 2

// auditWeb records one action of the console: who (the account, or the
// name tried for a login), what, and its detail. Every state change and
// every login goes through here and nowhere else.
func (c *console) auditWeb(actor, action, detail string) {
	c.log.Info("audit", "actor", actor, "action", action, "detail", detail)
	switch action {
	case "login", "login_failed", "account_locked", "address_blocked", "logout":
	default:
		c.Stats.Actions.Add(1)
	}
	if c.Audit != nil {
		c.Audit(actor, action, detail)
	}
}

const sessionCookie = "totem_session"

// cookieName is __Host- prefixed over TLS: the browser then refuses the
// cookie unless it is Secure, host-only and for the whole path.
func (c *console) cookieName() string {
	if c.secure {
		return "__Host-" + sessionCookie
	}
	return sessionCookie
}

func (c *console) setCookie(w http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: c.cookieName(), Value: value, Path: "/", HttpOnly: true,
		Secure: c.secure, SameSite: http.SameSiteStrictMode, MaxAge: maxAge})
}

type ctxKey struct{}

// current returns the request's session (set by authed).
func current(r *http.Request) *session {
	s, _ := r.Context().Value(ctxKey{}).(*session)
	return s
}

// authed lets through only a request with a live session: a page request
// without one is sent to the login page, anything else gets 401.
func (c *console) authed(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var s *session
		if ck, err := r.Cookie(c.cookieName()); err == nil {
			s = c.g.lookup(ck.Value)
		}
		if s == nil {
			if r.Method == http.MethodGet && r.Header.Get("HX-Request") == "" {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.Path), http.StatusSeeOther)
				return
			}
			if r.Header.Get("HX-Request") != "" {
				w.Header().Set("HX-Redirect", "/login")
			}
			http.Error(w, "401 login required", http.StatusUnauthorized)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, s)))
	}
}

// securityHeaders: the pages load only their own script (htmx) and
// images, are never framed and never sniffed.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "+
		"img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// routes adds the console's routes to mux, behind CSRF protection.
func (c *console) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /static/htmx.min.js", serveHTMX)
	mux.HandleFunc("GET /login", c.loginPage)
	mux.HandleFunc("POST /login", c.login)
	mux.HandleFunc("POST /logout", c.authed(c.logout))
	mux.HandleFunc("POST /lang", c.authed(c.setLang))
	mux.HandleFunc("GET /{$}", c.authed(c.fleetPage))
	mux.HandleFunc("GET /fleet/rows", c.authed(c.fleetRows))
	mux.HandleFunc("GET /totem/{id}", c.authed(c.totemPage))
	mux.HandleFunc("POST /totem/{id}/action", c.authed(c.totemAction))
	mux.HandleFunc("GET /sendlog", c.authed(c.sendLogPage))
	mux.HandleFunc("GET /sendlog/{n}/receipt.zip", c.authed(c.receipt))
	mux.HandleFunc("GET /report", c.authed(c.reportPage))
	mux.HandleFunc("GET /report.csv", c.authed(c.reportCSV))
	mux.HandleFunc("GET /tickets", c.authed(c.ticketsPage))
	mux.HandleFunc("GET /alerts", c.authed(c.alertsPage))
	mux.HandleFunc("GET /access", c.authed(c.accessPage))
	mux.HandleFunc("POST /access/unlock", c.authed(c.unlockAction))
	mux.HandleFunc("POST /access/enroll", c.authed(c.enrollAction))
}

// page is what every page template gets.
type page struct {
	L       map[string]string
	Lang    string
	User    string
	Role    string
	Nav     string
	Refresh int // seconds
	Error   string
	Body    any
}

func (c *console) page(r *http.Request, nav string, body any) page {
	p := page{Lang: "it", Nav: nav, Refresh: int(c.Refresh / time.Second), Body: body}
	if s := current(r); s != nil {
		p.User, p.Role, p.Lang = s.user, s.role, s.lang
	}
	if _, ok := langs[p.Lang]; !ok {
		p.Lang = "it"
	}
	p.L = textsByLang[p.Lang]
	return p
}

func (c *console) render(w http.ResponseWriter, name string, p page) {
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := consoleTemplates.ExecuteTemplate(w, name, p); err != nil {
		c.log.Warn("console page", "page", name, "err", err)
	}
}

// fail answers an error the console itself can explain; err goes to the
// log only (it may name a file or a totem's input), the user gets code.
func (c *console) fail(w http.ResponseWriter, code int, msg string, err error) {
	if err != nil {
		c.log.Warn("console", "msg", msg, "err", err)
	}
	securityHeaders(w)
	http.Error(w, msg, code)
}

func (c *console) loginPage(w http.ResponseWriter, r *http.Request) {
	p := c.page(r, "login", loginBody{Next: safeNext(r.URL.Query().Get("next"))})
	if l := r.URL.Query().Get("lang"); l == "en" {
		p.Lang, p.L = l, textsByLang[l]
	}
	c.render(w, "login", p)
}

type loginBody struct{ Next string }

// safeNext keeps a redirect after login on this site: a path, never
// another origin ("//evil", "https://…", "/\evil").
func safeNext(s string) string {
	if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.ContainsAny(s, "\\\r\n") {
		return "/"
	}
	return s
}

// maxForm bounds a posted form.
const maxForm = 16 << 10

func (c *console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		c.fail(w, http.StatusBadRequest, "bad form", nil)
		return
	}
	name, pw, code := r.PostForm.Get("user"), r.PostForm.Get("password"), strings.TrimSpace(r.PostForm.Get("code"))
	lang := r.PostForm.Get("lang")
	if _, ok := langs[lang]; !ok {
		lang = "it"
	}
	ip := clientIP(r)
	p := c.page(r, "login", loginBody{Next: safeNext(r.PostForm.Get("next"))})
	p.Lang, p.L = lang, textsByLang[lang]
	actor := name
	if !ValidName(name) {
		actor = "(invalid name)" // what was typed is not logged: it may be a password
	}
	// Refusals while blocked or locked are not audited one by one (a
	// flood would fill the audit): the block and the lock themselves are.
	if c.g.ipBlocked(ip) || !c.g.lockedAccount(name).IsZero() {
		c.Stats.LoginsRefused.Add(1)
		p.Error = p.L["login_locked"]
		w.WriteHeader(http.StatusTooManyRequests)
		c.render(w, "login", p)
		return
	}
	// argon2id takes 19 MiB a time: a flood of logins waits for a slot
	// instead of taking the hub's memory.
	select {
	case c.slots <- struct{}{}:
		defer func() { <-c.slots }()
	case <-r.Context().Done():
		return
	}
	acc, ok, err := c.Users.Get(name)
	if err != nil {
		c.log.Warn("console accounts", "err", err)
	}
	hash := dummyHash()
	if ok {
		hash = acc.Hash
	}
	pwOK := len(pw) <= maxPassword && checkPassword(hash, pw) && ok
	step := int64(-1)
	if pwOK {
		step = totpStep(acc.TOTP, code, c.Now())
	}
	if step < 0 || !c.g.succeeded(name, step) {
		counted := "" // an unknown name is counted against the address only
		if ok {
			counted = name
		}
		locked, blocked := c.g.failed(counted, ip)
		c.Stats.LoginsFailed.Add(1)
		why := "wrong password or code"
		if pwOK && step >= 0 {
			why = "TOTP code already used"
		}
		c.auditWeb(actor, "login_failed", why+" from "+ip)
		if locked {
			c.Stats.Lockouts.Add(1)
			c.auditWeb(actor, "account_locked", fmt.Sprintf("%d failed logins, locked for %s", maxAccountFailures, lockFor))
		}
		if blocked {
			c.auditWeb(actor, "address_blocked", fmt.Sprintf("%s: %d failed logins, blocked for %s", ip, maxIPFailures, ipWindow))
		}
		p.Error = p.L["login_failed"]
		w.WriteHeader(http.StatusUnauthorized)
		c.render(w, "login", p)
		return
	}
	c.Stats.LoginsOK.Add(1)
	tok := c.g.start(acc.Name, acc.Role, lang)
	c.setCookie(w, tok, int(maxSessionAge/time.Second))
	c.auditWeb(acc.Name, "login", "role "+acc.Role+" from "+ip)
	http.Redirect(w, r, p.Body.(loginBody).Next, http.StatusSeeOther)
}

func (c *console) logout(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(c.cookieName()); err == nil {
		c.g.end(ck.Value)
	}
	c.setCookie(w, "", -1)
	c.auditWeb(current(r).user, "logout", "")
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (c *console) setLang(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	r.ParseForm()
	if l := r.PostForm.Get("lang"); langs[l] > 0 || l == "it" {
		if ck, err := r.Cookie(c.cookieName()); err == nil {
			c.g.setLang(ck.Value, l)
		}
	}
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

// newCommandID is a command's id and nonce.
func newCommandID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// commandTTL is how long a command the console signs stays valid.
const commandTTL = time.Minute

// allowed reports whether role may run command name at target, by
// sync/cmdsig's table: the one the totems and the hub enforce.
func allowed(role, target, name string) bool {
	need, ok := cmdsig.Needs(target, name)
	if !ok {
		return false
	}
	return need == role || role == cmdsig.Ops
}

// signAndSend signs command name for totem in the user's role and sends
// it; the reply's error, if any, is the totem's. id is the command's id,
// which the totem logs: the audit names it, so the totem's line leads to
// the user.
func (c *console) signAndSend(ctx context.Context, s *session, totem, name string, args map[string]string) (rep *protocol.Reply, id string, err error) {
	if c.Commands == nil || c.Key == nil {
		return nil, "", errors.New("this hub has no console connection to the totems")
	}
	cmd := &protocol.Command{V: protocol.Version, ID: newCommandID(), Name: name, Args: args}
	if err := cmdsig.Sign(*c.Key, cmd, totem, s.role, c.Now(), commandTTL); err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rep, err = c.Commands.Command(ctx, cmd)
	return rep, cmd.ID, err
}

// parseN reads a send log number.
func parseN(s string) (uint64, bool) {
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && n > 0
}

func (c *console) receipt(w http.ResponseWriter, r *http.Request) {
	n, ok := parseN(r.PathValue("n"))
	if !ok {
		c.fail(w, http.StatusBadRequest, "bad send log number", nil)
		return
	}
	gen := receiptBundle
	if gen == nil {
		c.fail(w, http.StatusNotImplemented, textsByLang[c.page(r, "", nil).Lang]["bundle_missing"], nil)
		return
	}
	// The bundle is built in memory first: an error halfway would
	// otherwise leave the browser with half a ZIP and a 200.
	var buf strings.Builder
	if err := gen(&buf, n); err != nil {
		if errors.Is(err, cms.ErrNotFound) {
			c.fail(w, http.StatusNotFound, "no such send log entry", nil)
			return
		}
		c.fail(w, http.StatusInternalServerError, "receipt bundle failed", err)
		return
	}
	c.auditWeb(current(r).user, "receipt_download", "send log "+strconv.FormatUint(n, 10))
	securityHeaders(w)
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="invio-%d.zip"`, n))
	io.WriteString(w, buf.String())
}

var consoleTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	"when":     when,
	"add":      func(a, b int) int { return a + b },
	"outcomes": func() []string { return sendOutcomes[1:] },
	"dict2": func(l map[string]string, rows []cms.Transmission) any {
		return struct {
			L    map[string]string
			Rows []cms.Transmission
		}{l, rows}
	},
}).ParseFS(templates, "templates/console/*.html"))
