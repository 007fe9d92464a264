package attack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/aslcns/totem/sync/uplink"
	"github.com/eclipse/paho.golang/paho"
)

// The totems every hub of the suite knows: demo-01 is the legitimate
// victim, demo-02 the stolen credential, demo-03 and demo-04 more
// legitimate totems (demo-04 is the real totemd of TestVoidEndToEnd).
var fleet = []string{"demo-01", "demo-02", "demo-03", "demo-04"}

// hubOpts configures a hub child.
type hubOpts struct {
	broker string // more lines of the [broker] table
	nofile int    // RLIMIT_NOFILE of the hub (prlimit), 0 = inherited
	// mosquitto runs the hub with --broker on Debian's mosquitto (the
	// ACL of deploy/mosquitto) instead of its embedded broker: for the
	// findings that concern the protocol and the hub, not mochi.
	mosquitto bool
}

// Broker kinds of the tests that run on both.
const (
	mochi     = "mochi"
	mosquitto = "mosquitto"
)

// hubProc is a totemhub child process with its own configuration and
// state directory on a free loopback port.
type hubProc struct {
	t        *testing.T
	dir      string
	cfg      string
	addr     string
	credDir  string
	stateDir string
	logPath  string
	logFrom  int64 // where this hub's lines begin in logPath (go test -count appends)
	cmd      *exec.Cmd
	exited   chan struct{}
}

// logName turns a test name into a file name.
func logName(t *testing.T, what string) string {
	return filepath.Join(logDir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+"."+what+".log")
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// startHub provisions the fleet with `totemhub provision` and starts the
// hub; it returns once the ingest has subscribed. A configuration the hub
// refuses fails the test through failf: a finding's keys (max_connections,
// connect_timeout) are part of what is tested.
func startHub(t *testing.T, o hubOpts) *hubProc {
	t.Helper()
	dir := t.TempDir()
	h := &hubProc{t: t, dir: dir, addr: freePort(t), credDir: filepath.Join(dir, "credentials"),
		stateDir: filepath.Join(dir, "state"), logPath: logName(t, "totemhub"), exited: make(chan struct{})}
	h.cfg = filepath.Join(dir, "totemhub.toml")
	var mq *mosq
	brokerConf := fmt.Sprintf("listen = %q\ntls_listen = \"\"\n%s", h.addr, o.broker)
	if o.mosquitto {
		mq = newMosq(t, filepath.Join(dir, "mosquitto"), h.addr)
		hubCreds := filepath.Join(dir, "totemhub.json")
		me, err := creds.Generate("totemhub", creds.RoleHub)
		if err == nil {
			err = creds.Save(hubCreds, me)
		}
		if err != nil {
			t.Fatal(err)
		}
		mq.users = append(mq.users, me)
		brokerConf = fmt.Sprintf("embedded = false\nurl = %q\ncredentials_file = %q\n%s", h.url(), hubCreds, o.broker)
	}
	conf := fmt.Sprintf(`state_dir = %q
[broker]
%s
[fleet]
credentials_dir = %q
provision = []
console = "console"
[http]
listen = ""
[log]
level = "info"
`, h.stateDir, brokerConf, h.credDir)
	if err := os.WriteFile(h.cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(h.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	// The file is appended to (the personal-data check reads every log
	// of the run): with -count > 1 an earlier hub's "ingest subscribed"
	// is in it already.
	if st, err := logf.Stat(); err == nil {
		h.logFrom = st.Size()
	}
	for _, id := range fleet {
		cmd := exec.Command(filepath.Join(bins, "totemhub"), "--config", h.cfg, "provision", id)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Run(); err != nil {
			b, _ := os.ReadFile(h.logPath)
			failf(t, "totemhub provision %s with [broker] %q: %v\n%s", id, o.broker, err, b)
		}
	}
	args := []string{filepath.Join(bins, "totemhub"), "--config", h.cfg}
	if o.nofile > 0 {
		// prlimit sets the limit on itself and execs the hub: the pid
		// is the hub's.
		args = append([]string{"prlimit", fmt.Sprintf("--nofile=%d:%d", o.nofile, o.nofile), "--"}, args...)
	}
	h.cmd = exec.Command(args[0], args[1:]...)
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { h.cmd.Wait(); close(h.exited) }()
	t.Cleanup(h.stop)
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("ATTACK_LOGS") != "" {
			t.Logf("totemhub log, last lines (personal data masked):\n%s", tail(h.log(), 30))
		}
	})
	if mq != nil {
		// The hub writes its console's credentials at start: mosquitto
		// learns every user then, and the hub's client connects once it
		// listens.
		if err := waitFor(10*time.Second, func() bool {
			_, err := os.Stat(filepath.Join(h.credDir, "console.json"))
			return err == nil
		}); err != nil {
			t.Fatalf("totemhub wrote no console credentials:\n%s", h.log())
		}
		for _, id := range append(slices.Clone(fleet), "console") {
			mq.users = append(mq.users, h.creds(id))
		}
		mq.start(t)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(h.log(), "ingest subscribed") {
		select {
		case <-h.exited:
			t.Fatalf("totemhub exited at start:\n%s", h.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("totemhub not ready in 20s:\n%s", h.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return h
}

// stop ends the hub: SIGTERM, then SIGKILL after 5 s.
func (h *hubProc) stop() {
	select {
	case <-h.exited:
		return
	default:
	}
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(5 * time.Second):
		h.cmd.Process.Kill()
		<-h.exited
	}
}

func (h *hubProc) alive() bool {
	select {
	case <-h.exited:
		return false
	default:
		return true
	}
}

func (h *hubProc) url() string { return "mqtt://" + h.addr }

// log is what this hub (and its provisioning) wrote to its log file.
func (h *hubProc) log() string {
	b, _ := os.ReadFile(h.logPath)
	if int64(len(b)) < h.logFrom {
		return ""
	}
	return string(b[h.logFrom:])
}

// tail is the last n lines of log, personal data masked.
func tail(log string, n int) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := strings.Join(lines, "\n")
	for _, p := range personal {
		out = strings.ReplaceAll(out, p, "<"+strconv.Itoa(len(p))+" chars>")
	}
	return out
}

func (h *hubProc) logLines() int { return strings.Count(h.log(), "\n") }

func (h *hubProc) creds(id string) creds.File {
	h.t.Helper()
	c, err := creds.Load(filepath.Join(h.credDir, id+".json"))
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// memKB returns the hub's VmHWM and VmRSS in KiB.
func (h *hubProc) memKB() (hwm, rss int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", h.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmHWM:":
			hwm = v
		case "VmRSS:":
			rss = v
		}
	}
	return hwm, rss
}

func (h *hubProc) fds() int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", h.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

func (h *hubProc) cmsSize() int64 {
	fi, err := os.Stat(filepath.Join(h.stateDir, "cms.db"))
	if err != nil {
		return -1
	}
	return fi.Size()
}

// monitor samples the hub's descriptors and memory every 20 ms during an
// attack and counts the log lines written meanwhile.
type monitor struct {
	h      *hubProc
	lines0 int
	stopc  chan struct{}
	done   chan struct{}
	maxFD  int
	maxRSS int64
}

func (h *hubProc) monitor() *monitor {
	m := &monitor{h: h, lines0: h.logLines(), stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if n := h.fds(); n > m.maxFD {
				m.maxFD = n
			}
			if _, rss := h.memKB(); rss > m.maxRSS {
				m.maxRSS = rss
			}
			select {
			case <-m.stopc:
				return
			case <-tick.C:
			}
		}
	}()
	return m
}

// figures are the hub's side of an attack.
type figures struct {
	maxFD    int
	hwmMB    float64 // VmHWM: the peak since the hub started
	rssMB    float64 // the largest VmRSS sampled
	logLines int     // hub log lines written during the attack
}

func (m *monitor) stop() figures {
	close(m.stopc)
	<-m.done
	hwm, _ := m.h.memKB()
	return figures{maxFD: m.maxFD, hwmMB: float64(hwm) / 1024, rssMB: float64(m.maxRSS) / 1024,
		logLines: m.h.logLines() - m.lines0}
}

func (r *row) hubFigs(f figures) {
	r.fig("hub HWM %.0f MB", f.hwmMB)
	r.fig("RSS max %.0f MB", f.rssMB)
	r.fig("fds max %d", f.maxFD)
	r.fig("log lines %d", f.logLines)
}

// legit is a legitimate totem in the test process: the real outbox and
// uplink, logging to a file of the suite.
type legit struct {
	t      *testing.T
	id     string
	box    *outbox.Outbox
	up     *uplink.Uplink
	cancel context.CancelFunc
	done   chan error

	mu      sync.Mutex
	waiting map[string]chan outbox.Entry
	early   map[string]outbox.Entry // final results that came before their waiter
	ids     []string                // every op id enqueued, in order
}

// startLegit runs totem id against h; it does not wait for the connection.
func (h *hubProc) startLegit(t *testing.T, id string) *legit {
	t.Helper()
	c := h.creds(id)
	box, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(logName(t, id), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	l := &legit{t: t, id: id, box: box, done: make(chan error, 1),
		waiting: map[string]chan outbox.Entry{}, early: map[string]outbox.Entry{}}
	l.up = uplink.New(uplink.Options{Totem: id, URL: h.url(), Username: c.Username, Password: c.Password,
		Outbox: box, Logger: slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second, ResendAfter: 3 * time.Second,
		OnResult: l.onResult})
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go func() { l.done <- l.up.Run(ctx) }()
	t.Cleanup(func() {
		l.cancel()
		select {
		case <-l.done:
		case <-time.After(10 * time.Second):
			t.Errorf("uplink of %s did not stop in 10s", id)
		}
		box.Close()
		logf.Close()
		if t.Failed() || os.Getenv("ATTACK_LOGS") != "" {
			b, _ := os.ReadFile(logName(t, id))
			t.Logf("totem %s log, last lines (personal data masked):\n%s", id, tail(string(b), 20))
		}
	})
	return l
}

// connectedLegit starts the legitimate totem id against h and waits up to
// 10 s for its link: an attack starts on a totem that works.
func (h *hubProc) connectedLegit(t *testing.T, id string) *legit {
	t.Helper()
	l := h.startLegit(t, id)
	if !l.connected(10 * time.Second) {
		t.Fatal("legitimate totem not connected before the attack")
	}
	return l
}

// underAttack is the opening of most attacks: the legitimate totem id
// connected and operating, and the hub's monitor started.
func (h *hubProc) underAttack(t *testing.T, id string) (*legit, *work, *monitor) {
	t.Helper()
	l := h.connectedLegit(t, id)
	w := l.keepOperating()
	return l, w, h.monitor()
}

func (l *legit) onResult(e outbox.Entry) {
	if !e.Done {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.waiting[e.ID]; ok {
		delete(l.waiting, e.ID)
		c <- e
		return
	}
	l.early[e.ID] = e
}

// connected waits up to d for the link.
func (l *legit) connected(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !l.up.Connected() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// op makes one operation durable and waits up to d for its final result;
// anything but accepted is an error.
func (l *legit) op(d time.Duration) (time.Duration, outbox.Entry, error) {
	start := time.Now()
	e, err := l.box.Enqueue(cms.KindConsent, synctest.ConsentPayload(), start, time.Time{})
	if err != nil {
		return 0, e, err
	}
	c := make(chan outbox.Entry, 1)
	l.mu.Lock()
	l.ids = append(l.ids, e.ID)
	if got, ok := l.early[e.ID]; ok {
		delete(l.early, e.ID)
		c <- got
	} else {
		l.waiting[e.ID] = c
	}
	l.mu.Unlock()
	select {
	case got := <-c:
		if got.Result == nil || got.Result.Processing.Status != protocol.ProcessingAccepted {
			return 0, got, fmt.Errorf("op seq %d not accepted: %+v", e.Seq, got.Result)
		}
		return time.Since(start), got, nil
	case <-time.After(d):
		l.mu.Lock()
		delete(l.waiting, e.ID)
		l.mu.Unlock()
		return 0, e, fmt.Errorf("op seq %d: no final result in %s", e.Seq, d)
	}
}

// opIDs returns the ids of the operations op enqueued.
func (l *legit) opIDs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ids)
}

// work is a legitimate totem operating during an attack: one operation
// after another, 50 ms apart, each with its round trip.
type work struct {
	l     *legit
	stopc chan struct{}
	done  chan struct{}
	lat   []time.Duration
	errs  []error
	ops   atomic.Int64 // operations finished, for stop
}

// keepOperating runs operations until stop, at most 2 000, each waited
// for up to 15 s.
func (l *legit) keepOperating() *work {
	w := &work{l: l, stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for range 2000 {
			d, _, err := l.op(15 * time.Second)
			if err != nil {
				w.errs = append(w.errs, err)
			} else {
				w.lat = append(w.lat, d)
			}
			w.ops.Add(1)
			select {
			case <-w.stopc:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return w
}

// minOps is how many operations stop lets the legitimate totem finish,
// up to 3 s, so that a short attack (one refused CONNECT, one publish)
// still reports a round trip over a few operations.
const minOps = 10

// stop waits for the operation under way and reports the round trips.
func (w *work) stop() (n int, p99 time.Duration, errs []error) {
	waitFor(3*time.Second, func() bool { return w.ops.Load() >= minOps })
	close(w.stopc)
	<-w.done
	if len(w.lat) > 0 {
		s := slices.Clone(w.lat)
		slices.Sort(s)
		p99 = s[(len(s)*99+99)/100-1]
	}
	return len(w.lat) + len(w.errs), p99, w.errs
}

// legitFigs records the legitimate totem's figures and fails the test on
// any error of its operations: every attack must leave it working.
func (r *row) legitFigs(t *testing.T, w *work) {
	t.Helper()
	n, p99, errs := w.stop()
	r.fig("legit ops %d", n)
	r.fig("p99 %s", p99.Round(100*time.Microsecond))
	r.fig("errors %d", len(errs))
	if len(errs) > 0 {
		failf(t, "legitimate totem %s: %d of %d operations failed during the attack, first: %v", w.l.id, len(errs), n, errs[0])
	}
	if n == 0 {
		t.Fatalf("legitimate totem %s made no operation", w.l.id)
	}
}

// client is a raw MQTT 5 client: the attacker's tool.
type client struct {
	c    *paho.Client
	conn net.Conn
	ca   *paho.Connack
}

// dial connects as user with clientID; it returns the CONNACK even when
// the broker refused (then with an error).
func (h *hubProc) dial(t *testing.T, user creds.File, clientID string, onMsg func(*paho.Publish), tweak func(*paho.Connect)) (*client, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", h.addr, 3*time.Second)
	if err != nil {
		return nil, err
	}
	cfg := paho.ClientConfig{Conn: conn, ClientID: clientID}
	if onMsg != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) { onMsg(pr.Packet); return true, nil }}
	}
	cl := &client{c: paho.NewClient(cfg), conn: conn}
	cp := &paho.Connect{KeepAlive: 30, ClientID: clientID, CleanStart: true,
		Username: user.Username, UsernameFlag: true, Password: []byte(user.Password), PasswordFlag: true}
	if tweak != nil {
		tweak(cp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl.ca, err = cl.c.Connect(ctx, cp)
	if err != nil {
		conn.Close()
		return cl, err
	}
	t.Cleanup(cl.close)
	return cl, nil
}

// attacker dials as the provisioned user with clientID and fails the test
// if the broker refuses.
func (h *hubProc) attacker(t *testing.T, user, clientID string, onMsg func(*paho.Publish)) *client {
	t.Helper()
	cl, err := h.dial(t, h.creds(user), clientID, onMsg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func (cl *client) close() {
	cl.c.Disconnect(&paho.Disconnect{ReasonCode: 0})
	cl.conn.Close()
}

// publish sends one message at QoS 1 and waits up to 5 s for its PUBACK.
func (cl *client) publish(topic string, payload []byte, retain bool) (*paho.PublishResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return cl.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: retain, Payload: payload})
}

// ctl runs the built totemctl as the provisioned console, bounded by d.
func (h *hubProc) ctl(t *testing.T, d time.Duration, args ...string) (string, error) {
	t.Helper()
	cfg := filepath.Join(h.dir, "totemctl.toml")
	if _, err := os.Stat(cfg); err != nil {
		conf := fmt.Sprintf("key_file = %q\ntimeout = \"4s\"\n[broker]\nurl = %q\ncredentials_file = %q\n",
			filepath.Join(h.credDir, "console.key"), h.url(), filepath.Join(h.credDir, "console.json"))
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bins, "totemctl"), append([]string{"--config", cfg}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if f, ferr := os.OpenFile(logName(t, "totemctl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); ferr == nil {
		f.Write(errb.Bytes())
		f.Close()
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("no answer in %s: %w", d, ctx.Err())
	}
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String() + errb.String(), nil
}

// opEnvelope is an operation as an attacker forges it.
func opEnvelope(id, totem string, seq uint64) []byte {
	b, _ := protocol.Marshal(protocol.Op{V: protocol.Version, ID: id, Totem: totem, Seq: seq, Kind: cms.KindConsent,
		Payload: synctest.ConsentPayload(), Created: time.Now()})
	return b
}

var errTimeout = errors.New("timeout")

// waitFor polls cond every 20 ms for up to d.
func waitFor(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return errTimeout
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// auditDump writes the hub's central audit (totemctl audit, -o json: every
// field as recorded) into a file of the suite, which the final check reads
// with the logs: the audit of people's actions is a log too, kept for
// months, and a refused command's record must not carry the data a hostile
// sender put in it. It waits up to d until want is in it (the totems'
// records come through their outboxes).
func (h *hubProc) auditDump(t *testing.T, d time.Duration, want string) {
	t.Helper()
	var out string
	waitFor(d, func() bool {
		var err error
		out, err = h.ctl(t, 5*time.Second, "audit", "-max", "1000", "-o", "json")
		return err == nil && strings.Contains(out, want)
	})
	if !strings.Contains(out, want) {
		t.Fatalf("the hub's audit lacks %q after %s: %s", want, d, tail(out, 10))
	}
	if err := os.WriteFile(logName(t, "audit"), []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
}
