package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
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
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/uplink"
)

const totemID = "t-fault"

func payload() []byte {
	b, _ := json.Marshal(cms.ConsentRequest{
		Card:     cms.CardRef{Serial: "6090012345678000", CF: "RSSMRA80A01H501U", Expiry: "2030-12-31"},
		Policy:   "fse-2020",
		Consents: []cms.Consent{{Code: "consultazione", Given: true}, {Code: "opposizione_pregresso"}},
		Channel:  cms.SelfService,
	})
	return b
}

// central is the hub side, in the test process.
type central struct {
	t      *testing.T
	addr   string
	users  *broker.Users
	srv    *broker.Server
	store  *refcms.Store
	hubMe  creds.File
	totem  creds.File
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan error
	be     cms.Backend
}

func newCentral(t *testing.T) *central {
	t.Helper()
	c := &central{t: t}
	c.hubMe, _ = creds.Generate("totemhub", creds.RoleHub)
	c.totem, _ = creds.Generate(totemID, creds.RoleTotem)
	c.users = broker.NewUsers(nil)
	c.users.Add(c.hubMe)
	c.users.Add(c.totem)
	var err error
	if c.store, err = refcms.Open(filepath.Join(t.TempDir(), "cms.db"), &refcms.Options{Seed: cms.DemoCards()}); err != nil {
		t.Fatal(err)
	}
	c.be = c.store
	c.startBroker("127.0.0.1:0")
	t.Cleanup(func() {
		c.stopHub()
		c.stopBroker()
		c.store.Close()
	})
	return c
}

func (c *central) startBroker(listen string) {
	c.t.Helper()
	var err error
	for i := 0; ; i++ {
		c.srv, err = broker.Start(broker.Options{Listen: listen, Auth: c.users})
		if err == nil {
			break
		}
		if i > 50 { // the old listener's port may take a moment to free
			c.t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.mu.Lock()
	c.addr = c.srv.Addr()
	c.mu.Unlock()
}

func (c *central) brokerAddr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addr
}

func (c *central) stopBroker() {
	if c.srv != nil {
		c.srv.Close()
		c.srv = nil
	}
}

func (c *central) url() string { return "mqtt://" + c.brokerAddr() }

func (c *central) startHub() {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := hub.New(hub.Options{URL: c.url(), ClientID: "hub-" + fmt.Sprint(rand.IntN(1e6)), Username: c.hubMe.Username,
		Password: c.hubMe.Password, Backend: c.be})
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	actx, acancel := context.WithTimeout(ctx, 5*time.Second)
	defer acancel()
	if err := h.AwaitConnection(actx); err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.cancel, c.done = cancel, done
	c.mu.Unlock()
}

func (c *central) stopHub() {
	c.mu.Lock()
	cancel, done := c.cancel, c.done
	c.cancel = nil
	c.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
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
	up := uplink.New(uplink.Options{Totem: totemID, URL: os.Getenv("FAULTS_URL"), Username: totemID,
		Password: os.Getenv("FAULTS_PASSWORD"), Outbox: box, BackoffMin: 20 * time.Millisecond,
		BackoffMax: 200 * time.Millisecond, ResendAfter: time.Second})
	go up.Run(ctx)
	w := bufio.NewWriter(os.Stdout)
	if os.Getenv("FAULTS_HELPER") == "drain" {
		for {
			if q, err := box.Stats(); err == nil && q.Depth == 0 {
				cancel()
				fmt.Println("DRAINED")
				os.Exit(0)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	p := payload()
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

// runTotem starts the helper process; kill, when positive, SIGKILLs it
// after that long. It returns the ids it acknowledged.
func runTotem(t *testing.T, c *central, box, mode string, kill time.Duration) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperTotem$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FAULTS_HELPER="+mode, "FAULTS_OUTBOX="+box, "FAULTS_URL="+c.url(),
		"FAULTS_PASSWORD="+c.totem.Password)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
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
		t.Fatal("the totem never drained its outbox")
	}
	return ids
}

// TestKill9UnderLoad kills the totem with SIGKILL at random moments while
// it enqueues and sends, again and again; the hub also restarts between
// some cycles. Nothing acknowledged is lost, nothing is applied twice.
func TestKill9UnderLoad(t *testing.T) {
	cycles := 12
	if testing.Short() {
		cycles = 3
	}
	c := newCentral(t)
	c.startHub()
	box := filepath.Join(t.TempDir(), "outbox.db")
	acked := make(map[string]bool)
	for i := 0; i < cycles; i++ {
		ids := runTotem(t, c, box, "load", time.Duration(100+rand.IntN(400))*time.Millisecond)
		for _, id := range ids {
			acked[id] = true
		}
		if i%4 == 3 { // the hub restarts too
			c.stopHub()
			c.startHub()
		}
	}
	runTotem(t, c, box, "drain", 0)
	applied := c.check(acked)
	t.Logf("%d kill -9 cycles: %d operations acknowledged, %d applied, 0 lost, 0 applied twice", cycles, len(acked), applied)
	if len(acked) == 0 {
		t.Fatal("no operation was acknowledged: the harness tested nothing")
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
// TCP proxy while the link is cut and restored, the broker restarts, and
// the hub dies between applying a batch and answering it.
func TestLinkCutBrokerRestartHubDeath(t *testing.T) {
	c := newCentral(t)
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
	up := uplink.New(uplink.Options{Totem: totemID, URL: "mqtt://" + px.l.Addr().String(), Username: totemID,
		Password: c.totem.Password, Outbox: box, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		ResendAfter: time.Second})
	updone := make(chan error, 1)
	go func() { updone <- up.Run(uctx) }()

	acked := make(map[string]bool)
	var amu sync.Mutex
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		p := payload()
		for i := 0; i < 1500 && ctx.Err() == nil; i++ {
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
			c.mu.Lock()
			kill := c.cancel // this instance, not the one started after it
			c.mu.Unlock()
			d.mu.Lock()
			d.armed, d.kill = true, kill
			d.mu.Unlock()
			time.Sleep(300 * time.Millisecond)
			c.stopHub()
			c.startHub()
		}},
		{"broker restart", func() {
			c.stopHub()
			addr := c.brokerAddr()
			c.stopBroker()
			time.Sleep(200 * time.Millisecond)
			c.startBroker(addr)
			c.startHub()
		}},
		{"link cut 1s", func() { px.cut(); time.Sleep(time.Second); px.restore() }},
	}
	for _, f := range faults {
		time.Sleep(time.Duration(150+rand.IntN(250)) * time.Millisecond)
		f.do()
		t.Logf("fault: %s", f.name)
	}
	<-prodDone
	for {
		q, err := box.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if q.Depth == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("backlog stuck at %+v", q)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	t.Logf("%d acknowledged, %d applied, hub deaths between apply and answer: %d; 0 lost, 0 applied twice", len(acked), applied, hits)
}
