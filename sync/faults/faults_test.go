package faults

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/pki"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/aslcns/totem/sync/uplink"
)

const totemID = "t-fault"

// central is the hub side, in the test process: the kit's reference CMS
// and hub instances (sharing the ingest), on a broker of the given kind —
// the kit's own (mochi) or mosquitto.
type central struct {
	*synctest.Central
	t     *testing.T
	kind  string // mochi or mosquitto
	mq    *mosq  // mosquitto
	store *refcms.Store
	hubMe creds.File
	totem creds.File
	be    cms.Backend // what the hubs started next apply to
}

// hubRun is one running hub instance.
type hubRun = synctest.Hub

func newCentral(t *testing.T, kind string) *central {
	t.Helper()
	c := startCentral(t, kind, totemID)
	c.totem = c.Creds(totemID)
	return c
}

// startCentral starts the central side with a totem user for each id.
func startCentral(t *testing.T, kind string, totems ...string) *central {
	t.Helper()
	var users []synctest.User
	for _, id := range totems {
		users = append(users, synctest.User{Name: id, Role: creds.RoleTotem})
	}
	k := synctest.Start(t, synctest.Options{Users: users, NoBroker: kind == mosquitto})
	c := &central{Central: k, t: t, kind: kind, store: k.CMS, be: k.CMS, hubMe: k.HubCreds}
	if kind == mosquitto {
		all := []creds.File{c.hubMe}
		for _, id := range totems {
			all = append(all, c.Creds(id))
		}
		c.mq = newMosq(t, all...) // skips without mosquitto
		c.mq.start()
	}
	return c
}

// startBroker starts the broker again, on the address it had.
func (c *central) startBroker() {
	c.t.Helper()
	if c.mq != nil {
		c.mq.start()
		return
	}
	c.StartBroker()
}

func (c *central) brokerAddr() string {
	if c.mq != nil {
		return c.mq.addr
	}
	return c.Addr()
}

// stopBroker closes mochi, or kills mosquitto with SIGKILL.
func (c *central) stopBroker() {
	if c.mq != nil {
		c.mq.stop()
		return
	}
	c.StopBroker()
}

// restartBroker stops the broker and starts it again on the same address
// (mosquitto keeps no sessions: persistence is off, as mochi's are in
// memory).
func (c *central) restartBroker() {
	c.t.Helper()
	c.stopBroker()
	time.Sleep(200 * time.Millisecond)
	c.startBroker()
}

func (c *central) url() string { return c.scheme() + c.brokerAddr() }

// scheme is the URL scheme of the broker: mosquitto listens in TLS only,
// as deploy/mosquitto's listener, with a certificate from the hub's CA
// code; every client connects to it as the programs do (pki.Client).
func (c *central) scheme() string {
	if c.mq != nil {
		return "mqtts://"
	}
	return "mqtt://"
}

// caFile is the CA the clients trust, "" for plain mochi.
func (c *central) caFile() string {
	if c.mq == nil {
		return ""
	}
	return c.mq.caFile
}

// tls is the clients' TLS configuration, nil for plain mochi.
func (c *central) tls() *tls.Config {
	if c.mq == nil {
		return nil
	}
	cfg, err := pki.Client{CAFile: c.mq.caFile}.Config(c.url())
	if err != nil {
		c.t.Fatal(err)
	}
	return cfg
}

// startHub starts one more hub instance; instances share the ingest
// through $share/totemhub.
func (c *central) startHub() *hubRun {
	c.t.Helper()
	return c.StartHub(hub.Options{URL: c.url(), TLS: c.tls(), ClientID: "hub-" + fmt.Sprint(rand.IntN(1e6)), Backend: c.be})
}

// oldest is the instance started first, nil if none runs.
func (c *central) oldest() *hubRun {
	if hs := c.Hubs(); len(hs) > 0 {
		return hs[0]
	}
	return nil
}

// check asserts that every acknowledged operation was applied exactly once
// and that the totem's operations were applied in sequence order.
func (c *central) check(acked map[string]bool) (applied int) {
	c.t.Helper()
	audit, err := c.store.Audit()
	if err != nil {
		c.t.Fatal(err)
	}
	seen := make(map[string]int)
	for i, a := range audit {
		seen[a.OpID]++
		if a.Seq != uint64(i+1) {
			c.t.Fatalf("audit[%d] has seq %d: applied out of order", i, a.Seq)
		}
		if !a.Accepted {
			c.t.Fatalf("audit[%d] rejected: %v", i, a.Codes)
		}
	}
	lost, twice := 0, 0
	for id := range acked {
		if seen[id] == 0 {
			lost++
		}
	}
	for _, n := range seen {
		if n > 1 {
			twice++
		}
	}
	if lost > 0 || twice > 0 {
		c.t.Fatalf("%d acknowledged operations lost, %d applied twice (of %d acknowledged, %d applied)", lost, twice, len(acked), len(audit))
	}
	return len(audit)
}

// TestHelperTotem is the totem process the harness kills: it runs the
// outbox and the uplink and enqueues operations, printing each id once its
// commit is durable. It is not a test of its own.
func TestHelperTotem(t *testing.T) {
	if os.Getenv("FAULTS_HELPER") == "" {
		t.Skip("helper process")
	}
	box, err := outbox.Open(os.Getenv("FAULTS_OUTBOX"), nil)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(3)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tlsCfg, err := pki.Client{CAFile: os.Getenv("FAULTS_CA")}.Config(os.Getenv("FAULTS_URL"))
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(3)
	}
	up := uplink.New(uplink.Options{Totem: totemID, URL: os.Getenv("FAULTS_URL"), TLS: tlsCfg, Username: totemID,
		Password: os.Getenv("FAULTS_PASSWORD"), Outbox: box, BackoffMin: 20 * time.Millisecond,
		BackoffMax: 200 * time.Millisecond, ResendAfter: time.Second,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	go up.Run(ctx)
	w := bufio.NewWriter(os.Stdout)
	if os.Getenv("FAULTS_HELPER") == "drain" {
		for i := 0; ; i++ {
			q, err := box.Stats()
			if err == nil && q.Depth == 0 {
				cancel()
				fmt.Println("DRAINED")
				os.Exit(0)
			}
			if i%50 == 0 { // every second: what is left, for a failure's log
				fmt.Fprintf(os.Stderr, "drain: %+v %v connected=%v\n", q, err, up.Connected())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	p := synctest.ConsentPayload()
	for i := 0; i < 100000; i++ {
		e, err := box.Enqueue(cms.KindConsent, p, time.Now(), time.Time{})
		if err != nil {
			fmt.Fprintln(w, "ERR", err)
			w.Flush()
			os.Exit(3)
		}
		fmt.Fprintln(w, "ACK", e.ID)
		w.Flush()
		if i%4 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	os.Exit(0)
}

// tailBuffer keeps the last 16 KiB written to it.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - 16<<10; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// runTotem starts the helper process; kill, when positive, SIGKILLs it
// after that long. It returns the ids it acknowledged.
func runTotem(t *testing.T, c *central, box, mode string, kill time.Duration) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperTotem$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FAULTS_HELPER="+mode, "FAULTS_OUTBOX="+box, "FAULTS_URL="+c.url(), "FAULTS_CA="+c.caFile(),
		"FAULTS_PASSWORD="+c.totem.Password)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr tailBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var timer *time.Timer
	if kill > 0 {
		timer = time.AfterFunc(kill, func() { cmd.Process.Signal(syscall.SIGKILL) })
		defer timer.Stop()
	} else {
		timer = time.AfterFunc(60*time.Second, func() { cmd.Process.Signal(syscall.SIGKILL) })
		defer timer.Stop()
	}
	var ids []string
	sc := bufio.NewScanner(out)
	drained := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "ACK "):
			ids = append(ids, strings.TrimPrefix(line, "ACK "))
		case line == "DRAINED":
			drained = true
		case strings.HasPrefix(line, "ERR"):
			t.Errorf("totem: %s", line)
		}
	}
	cmd.Wait()
	if mode == "drain" && !drained {
		t.Fatalf("the totem never drained its outbox; its log ends:\n%s", stderr.String())
	}
	return ids
}

// TestKill9UnderLoad kills the totem with SIGKILL at random moments while
// it enqueues and sends, again and again, on each broker, with one hub
// instance or two sharing $share/totemhub; a hub instance restarts
// between some cycles. Nothing acknowledged is lost, nothing is applied
// twice, the totem's operations are applied in order.
func TestKill9UnderLoad(t *testing.T) {
	for _, kind := range brokers {
		for _, hubs := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/hubs=%d", kind, hubs), func(t *testing.T) { kill9(t, kind, hubs) })
		}
	}
}

func kill9(t *testing.T, kind string, hubs int) {
	cycles := 12
	if testing.Short() {
		cycles = 3
	}
	c := newCentral(t, kind)
	for range hubs {
		c.startHub()
	}
	// What each instance applied, counted when it stops.
	var perHub []int64
	stop := func(r *hubRun) {
		c.StopHub(r)
		perHub = append(perHub, r.Stats().Applied.Load())
	}
	box := filepath.Join(t.TempDir(), "outbox.db")
	acked := make(map[string]bool)
	restarts := 0
	for i := 0; i < cycles; i++ {
		ids := runTotem(t, c, box, "load", time.Duration(100+rand.IntN(400))*time.Millisecond)
		for _, id := range ids {
			acked[id] = true
		}
		if i%4 == 3 { // the oldest hub instance restarts too
			stop(c.oldest())
			c.startHub()
			restarts++
		}
	}
	runTotem(t, c, box, "drain", 0)
	for c.Hub() != nil {
		stop(c.Hub())
	}
	applied := c.check(acked)
	took := 0
	for _, n := range perHub {
		if n > 0 {
			took++
		}
	}
	t.Logf("%s, %d hub instance(s), %d kill -9 cycles, %d hub restarts: %d operations acknowledged, %d applied "+
		"(per instance %v), 0 lost, 0 applied twice, in order", kind, hubs, cycles, restarts, len(acked), applied, perHub)
	if len(acked) == 0 {
		t.Fatal("no operation was acknowledged: the harness tested nothing")
	}
	if hubs > 1 && took < 2 {
		t.Fatalf("only %d hub instance applied anything (%v): the shared subscription did not split the load", took, perHub)
	}
}

// dieAfterApply is a backend that, once armed, lets the hub apply a batch
// and then stops the hub before it can answer.
type dieAfterApply struct {
	*refcms.Store
	mu    sync.Mutex
	armed bool
	kill  func()
	hits  int
}

func (d *dieAfterApply) ApplyBatch(ctx context.Context, ops []cms.Op) ([]cms.Outcome, error) {
	outs, err := d.Store.ApplyBatch(ctx, ops)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.armed && err == nil {
		d.armed = false
		d.hits++
		d.kill() // the results of this batch are never published
	}
	return outs, err
}

// proxy is a TCP proxy the test can cut: every connection is closed and new
// ones refused until it is restored.
type proxy struct {
	l      net.Listener
	target func() string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]bool
}

func newProxy(t *testing.T, target func() string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target, conns: make(map[net.Conn]bool)}
	go p.serve()
	t.Cleanup(func() { l.Close(); p.cut() })
	return p
}

func (p *proxy) serve() {
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.target())
		if err != nil {
			p.mu.Unlock()
			in.Close()
			continue
		}
		p.conns[in], p.conns[out] = true, true
		p.mu.Unlock()
		go func() { io.Copy(out, in); out.Close(); in.Close() }()
		go func() { io.Copy(in, out); out.Close(); in.Close() }()
	}
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	p.conns = make(map[net.Conn]bool)
}

func (p *proxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// TestLinkCutBrokerRestartHubDeath runs a totem in this process through a
// TCP proxy while the link is cut and restored, the broker restarts (the
// hub stays up and reconnects), and the hub dies between applying a batch
// and answering it; on each broker.
func TestLinkCutBrokerRestartHubDeath(t *testing.T) {
	for _, kind := range brokers {
		t.Run(kind, func(t *testing.T) { linkCut(t, kind, 1500) })
	}
}

func linkCut(t *testing.T, kind string, ops int) {
	c := newCentral(t, kind)
	d := &dieAfterApply{Store: c.store}
	c.be = d
	c.startHub()
	px := newProxy(t, c.brokerAddr)
	box, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	uctx, ucancel := context.WithCancel(ctx)
	up := uplink.New(uplink.Options{Totem: totemID, URL: c.scheme() + px.l.Addr().String(), TLS: c.tls(), Username: totemID,
		Password: c.totem.Password, Outbox: box, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		ResendAfter: time.Second})
	updone := make(chan error, 1)
	go func() { updone <- up.Run(uctx) }()

	acked := make(map[string]bool)
	var amu sync.Mutex
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		p := synctest.ConsentPayload()
		for i := 0; i < ops && ctx.Err() == nil; i++ {
			e, err := box.Enqueue(cms.KindConsent, p, time.Now(), time.Time{})
			if err != nil {
				t.Error(err)
				return
			}
			amu.Lock()
			acked[e.ID] = true
			amu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	faults := []struct {
		name string
		do   func()
	}{
		{"link cut 300ms", func() { px.cut(); time.Sleep(300 * time.Millisecond); px.restore() }},
		{"hub dies between apply and answer", func() {
			r := c.Hub() // this instance, not the one started after it
			d.mu.Lock()
			d.armed, d.kill = true, r.Cancel
			d.mu.Unlock()
			time.Sleep(300 * time.Millisecond)
			c.StopHub(r)
			c.startHub()
		}},
		{"broker restart", c.restartBroker},
		{"link cut 1s", func() { px.cut(); time.Sleep(time.Second); px.restore() }},
	}
	for _, f := range faults {
		time.Sleep(time.Duration(150+rand.IntN(250)) * time.Millisecond)
		f.do()
		t.Logf("fault: %s", f.name)
	}
	<-prodDone
	synctest.AwaitDrained(t, ctx, box, "")
	ucancel()
	<-updone
	amu.Lock()
	defer amu.Unlock()
	applied := c.check(acked)
	d.mu.Lock()
	hits := d.hits
	d.mu.Unlock()
	if hits == 0 {
		t.Fatal("the hub never died between apply and answer: that fault was not exercised")
	}
	t.Logf("%s: %d acknowledged, %d applied, hub deaths between apply and answer: %d; 0 lost, 0 applied twice, in order",
		kind, len(acked), applied, hits)
}
