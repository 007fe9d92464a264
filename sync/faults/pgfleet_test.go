package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/cms/pgstore/pgtest"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/pgshare"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/aslcns/totem/sync/uplink"
	"github.com/jackc/pgx/v5"
)

// TestPGFleetStorm is the scale-out deployment under faults: a private
// PostgreSQL and a private mosquitto, 3 real totemhub processes (the
// built binary, --broker, one [store] url) sharing the ingest through
// $share/totemhub, and totems (real outbox + uplink) with a backlog that
// keep enqueuing. Meanwhile a random hub is killed with SIGKILL every
// couple of seconds and started again, and PostgreSQL is stopped like a
// crash (pg_ctl stop -m immediate) and started again mid-storm. The hubs
// log every operation they apply (debug): the harness asserts that two
// different hub processes applied consecutive sequence numbers of one
// totem within a few milliseconds of each other (the shared subscription
// handed them out together). At the end, in SQL: every totem's applied
// sequence is 1..n once each, and every operation a totem recorded as
// final is in the ops table with the same sequence, protocol number and
// outcome.
func TestPGFleetStorm(t *testing.T) {
	totems, queued, extra, phase := 12, 20, 60, 9*time.Second
	if testing.Short() {
		totems, queued, extra, phase = 6, 10, 30, 6*time.Second
	}
	pgStorm(t, totems, queued, extra, phase, false)
}

// TestPGFleetStormPartitioned is TestPGFleetStorm with [store] partition
// = true: each hub applies only the totems of the buckets it leases, a
// killed hub's buckets are free when its session ends and the others
// take them over, PostgreSQL's crash ends every lease. Every totem's
// applied sequence is still 1..n once each, every final result in the
// ops table.
func TestPGFleetStormPartitioned(t *testing.T) {
	totems, queued, extra, phase := 12, 20, 60, 9*time.Second
	if testing.Short() {
		totems, queued, extra, phase = 6, 10, 30, 6*time.Second
	}
	pgStorm(t, totems, queued, extra, phase, true)
}

// pgHub is one totemhub process of the harness.
type pgHub struct {
	n    int // index: its state_dir and config
	gen  int // how many times it was started
	cmd  *exec.Cmd
	done chan struct{}
	logs []string // one file per start
}

type pgFleet struct {
	t      *testing.T
	bin    string
	dir    string
	url    string // the broker's
	dbURL  string
	hubMe  creds.File
	caFile string
	mu     sync.Mutex
	hubs   []*pgHub
	exits  int  // hubs that exited by themselves
	part   bool // [store] partition
}

func buildTotemhub(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", dir+"/", "github.com/aslcns/totem/cmd/totemhub").CombinedOutput()
	if err != nil {
		t.Fatalf("build totemhub: %v\n%s", err, out)
	}
	return filepath.Join(dir, "totemhub")
}

// config writes hub n's configuration.
func (f *pgFleet) config(n int) string {
	dir := filepath.Join(f.dir, fmt.Sprintf("hub%d", n))
	os.MkdirAll(dir, 0o700)
	doc := fmt.Sprintf(`state_dir = %q
[broker]
credentials_file = %q
ca_file = %q
tls_listen = ""
[fleet]
console = ""
provision = []
credentials_dir = %q
[http]
listen = ""
[store]
url = %q
pool_size = 8
statement_timeout = "10s"
partition = %t
[log]
level = "debug"
format = "json"
`, filepath.Join(dir, "state"), filepath.Join(f.dir, "hub.json"), f.caFile, filepath.Join(dir, "creds"), f.dbURL, f.part)
	p := filepath.Join(dir, "totemhub.toml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// start starts hub h (again) and waits, bounded, until its ingest has
// subscribed; a start that fails (PostgreSQL down) is tried again.
func (f *pgFleet) start(h *pgHub) {
	f.t.Helper()
	for try := 0; ; try++ {
		h.gen++
		conf := f.config(h.n)
		logPath := filepath.Join(f.dir, fmt.Sprintf("hub%d", h.n), fmt.Sprintf("log-%d.json", h.gen))
		lf, err := os.Create(logPath)
		if err != nil {
			f.t.Fatal(err)
		}
		cmd := exec.Command(f.bin, "--config", conf, "--broker", f.url)
		cmd.Stdout, cmd.Stderr = lf, lf
		if err := cmd.Start(); err != nil {
			f.t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); lf.Close(); close(done) }()
		f.mu.Lock()
		h.cmd, h.done, h.logs = cmd, done, append(h.logs, logPath)
		f.mu.Unlock()
		if f.subscribed(logPath, done) {
			return
		}
		if try == 100 { // PostgreSQL may be down and recovering for seconds
			b, _ := os.ReadFile(logPath)
			f.t.Fatalf("hub %d did not start: %s", h.n, tail(b))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// subscribed waits, bounded, for "ingest subscribed" in the log; false
// if the process exited first.
func (f *pgFleet) subscribed(path string, done chan struct{}) bool {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), `"ingest subscribed"`) {
			return true
		}
		select {
		case <-done:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

// kill9 kills hub h with SIGKILL and waits for it.
func (f *pgFleet) kill9(h *pgHub) {
	h.cmd.Process.Signal(syscall.SIGKILL)
	<-h.done
}

// stopAll ends every hub with SIGTERM (SIGKILL after 20 s).
func (f *pgFleet) stopAll() {
	for _, h := range f.hubs {
		if h.cmd == nil {
			continue
		}
		h.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.done:
		case <-time.After(20 * time.Second):
			f.kill9(h)
		}
	}
}

func tail(b []byte) string {
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}

func pgStorm(t *testing.T, totems, queued, extra int, phase time.Duration, partition bool) {
	synctest.NeedMosquittoPasswd(t)
	srv := pgtest.Private(t, pgtest.Options{Migrate: func(ctx context.Context, url string) error {
		_, err := pgstore.Migrate(ctx, url)
		return err
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dbURL, err := srv.NewDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := &pgFleet{t: t, bin: buildTotemhub(t), dir: t.TempDir(), dbURL: dbURL, part: partition}
	f.hubMe, _ = creds.Generate("totemhub", creds.RoleHub)
	if err := creds.Save(filepath.Join(f.dir, "hub.json"), f.hubMe); err != nil {
		t.Fatal(err)
	}
	var ids []creds.File
	for i := range totems {
		c, _ := creds.Generate(fmt.Sprintf("t-pg-%02d", i), creds.RoleTotem)
		ids = append(ids, c)
	}
	// In the fleet registry, as `totemhub provision` would: partitioned
	// hubs subscribe to the operations of the totems they know.
	pg, err := pgstore.Open(ctx, dbURL, pgstore.Options{PoolSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	reg := pgshare.Registry(pg)
	for _, id := range ids {
		hash, _ := creds.Hash(id.Password)
		if err := reg.Put(broker.User{Username: id.Username, Role: creds.RoleTotem, Hash: hash, Created: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
	}
	pg.Close()
	mq := newMosq(t, append([]creds.File{f.hubMe}, ids...)...)
	mq.start()
	c := &central{t: t, kind: mosquitto, mq: mq}
	f.url, f.caFile = c.url(), mq.caFile
	for i := range 3 {
		f.hubs = append(f.hubs, &pgHub{n: i})
	}
	defer func() {
		f.stopAll()
		if t.Failed() {
			for _, h := range f.hubs {
				if len(h.logs) > 0 {
					b, _ := os.ReadFile(h.logs[len(h.logs)-1])
					t.Logf("hub %d's last log:\n%s", h.n, tail(b))
				}
			}
		}
	}()
	for _, h := range f.hubs {
		f.start(h)
	}
	time.Sleep(300 * time.Millisecond) // the shared subscriptions

	p := synctest.ConsentPayload()
	boxes := make([]*outbox.Outbox, totems)
	for i := range ids {
		boxes[i] = synctest.QueuedOutbox(t, queued)
	}
	uctx, ucancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ucancel()
	for i, id := range ids {
		up := uplink.New(uplink.Options{Totem: id.Username, URL: c.url(), TLS: c.tls(), Username: id.Username, Password: id.Password,
			Outbox: boxes[i], ResendAfter: time.Second, BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
			TelemetryInterval: time.Hour})
		wg.Go(func() { up.Run(uctx) })
	}
	// Every totem keeps enqueuing during the fault phase: extra more,
	// spread over it.
	every := int(phase.Milliseconds()) / extra
	var enq sync.WaitGroup
	var enqErr atomic.Pointer[error]
	for _, box := range boxes {
		enq.Go(func() {
			for range extra {
				if uctx.Err() != nil {
					return
				}
				if _, err := box.Enqueue(cms.KindConsent, p, time.Now(), time.Time{}); err != nil {
					enqErr.CompareAndSwap(nil, &err)
					return
				}
				time.Sleep(time.Duration(every/2+rand.IntN(every)) * time.Millisecond)
			}
		})
	}
	// The faults: a random hub killed and restarted every 1-2 s;
	// PostgreSQL killed once, after the first hub kill, down for 1 s.
	start := time.Now()
	kills, pgKills := 0, 0
	// PostgreSQL crashes a third into the phase, concurrently with the
	// hub kills, and is down for 1 s (then its recovery).
	pgDone := make(chan error, 1)
	pgTimer := time.AfterFunc(phase/3, func() {
		if err := srv.Kill(ctx); err != nil {
			pgDone <- err
			return
		}
		t.Logf("%v: PostgreSQL stopped (-m immediate)", time.Since(start).Round(time.Millisecond))
		time.Sleep(time.Second)
		err := srv.Restart(ctx)
		t.Logf("%v: PostgreSQL started again", time.Since(start).Round(time.Millisecond))
		pgDone <- err
	})
	defer pgTimer.Stop()
	for time.Since(start) < phase && ctx.Err() == nil {
		time.Sleep(time.Duration(1000+rand.IntN(1000)) * time.Millisecond)
		h := f.hubs[rand.IntN(len(f.hubs))]
		f.kill9(h)
		kills++
		t.Logf("%v: hub %d killed (SIGKILL)", time.Since(start).Round(time.Millisecond), h.n)
		f.start(h)
		// A hub that exited by itself (it should not) is started again,
		// and counted.
		for _, o := range f.hubs {
			select {
			case <-o.done:
				f.exits++
				t.Logf("hub %d had exited by itself", o.n)
				f.start(o)
			default:
			}
		}
	}
	if err := <-pgDone; err != nil {
		t.Fatal(err)
	}
	pgKills++
	enq.Wait()
	if e := enqErr.Load(); e != nil {
		t.Fatal(*e)
	}
	for i, box := range boxes {
		synctest.AwaitDrained(t, ctx, box, ids[i].Username)
	}
	ucancel()
	wg.Wait()
	f.stopAll()
	n := queued + extra
	final := pgCheck(t, ctx, dbURL, ids, boxes, n)
	pairs, perHub := handedTogether(t, f)
	t.Logf("3 hubs, %d totems x %d ops, %d kill -9 of a hub, %d PostgreSQL crash, %d hub exits: %d final results match the ops table; "+
		"applied per hub process %v; consecutive seqs of one totem applied by two hubs within 20 ms: %d",
		totems, n, kills, pgKills, f.exits, final, perHub, pairs)
	if kills == 0 || pgKills == 0 {
		t.Fatalf("faults not exercised: %d hub kills, %d PostgreSQL crashes", kills, pgKills)
	}
	if pairs == 0 && !partition { // partitioned: only at a hand-over
		t.Fatal("no two hubs applied consecutive sequence numbers of one totem at the same moment")
	}
}

// pgCheck reads the ops table: every totem's applied sequence is 1..n
// once each, and every final result a totem recorded is there with the
// same op id, protocol number and outcome. It returns how many finals
// it compared.
func pgCheck(t *testing.T, ctx context.Context, dbURL string, ids []creds.File, boxes []*outbox.Outbox, n int) int {
	t.Helper()
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	// Sequence 1..n once each, per totem, in SQL: count, distinct, bounds.
	rows, err := db.Query(ctx, `SELECT totem, count(*), count(DISTINCT seq), min(seq), max(seq), count(DISTINCT op_id)
		FROM ops GROUP BY totem ORDER BY totem`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for rows.Next() {
		var totem string
		var cnt, distinct, lo, hi, opIDs int64
		if err := rows.Scan(&totem, &cnt, &distinct, &lo, &hi, &opIDs); err != nil {
			t.Fatal(err)
		}
		got[totem] = true
		if cnt != int64(n) || distinct != int64(n) || lo != 1 || hi != int64(n) || opIDs != int64(n) {
			t.Errorf("%s: %d rows, %d distinct seqs in [%d, %d], %d op ids; want 1..%d once each", totem, cnt, distinct, lo, hi, opIDs, n)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// The ledger agrees.
	var badLedger int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM ledger l WHERE l.last_seq <> (SELECT coalesce(max(seq), 0) FROM ops o WHERE o.totem = l.totem)`).Scan(&badLedger); err != nil {
		t.Fatal(err)
	}
	if badLedger != 0 {
		t.Errorf("%d ledger rows disagree with the ops table", badLedger)
	}
	compared := 0
	for i, id := range ids {
		if !got[id.Username] {
			t.Errorf("%s: nothing applied", id.Username)
			continue
		}
		entries, err := boxes[i].Recent(n + 10)
		if err != nil {
			t.Fatal(err)
		}
		finals := 0
		for _, e := range entries {
			if !e.Done || e.Result == nil {
				continue
			}
			finals++
			var seq int64
			var proto string
			var accepted bool
			err := db.QueryRow(ctx, `SELECT seq, protocol, accepted FROM ops WHERE totem = $1 AND op_id = $2`, id.Username, e.ID).
				Scan(&seq, &proto, &accepted)
			if err != nil {
				t.Errorf("%s seq %d: final at the totem, not in the ops table: %v", id.Username, e.Seq, err)
				continue
			}
			want := e.Result.Processing.Status == protocol.ProcessingAccepted
			if uint64(seq) != e.Seq || proto != e.Result.Transport.Protocol || accepted != want || proto == "" {
				t.Errorf("%s: the totem has seq %d protocol %q %s; the ops table seq %d protocol %q accepted %v",
					id.Username, e.Seq, e.Result.Transport.Protocol, e.Result.Processing.Status, seq, proto, accepted)
			}
			compared++
		}
		if finals != n {
			t.Errorf("%s: %d final results at the totem, want %d", id.Username, finals, n)
		}
	}
	return compared
}

// applied is one "op applied" line of a hub's log.
type applied struct {
	hub, seq int
	at       time.Time
}

// handedTogether reads every hub's logs and counts the pairs (k, k+1)
// of one totem applied by two different hub processes within 20 ms; it
// also returns how many operations each hub process applied.
func handedTogether(t *testing.T, f *pgFleet) (int, []int) {
	t.Helper()
	by := map[string][]applied{}
	perHub := make([]int, len(f.hubs))
	for _, h := range f.hubs {
		for _, path := range h.logs {
			fh, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(fh)
			sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
			for sc.Scan() {
				var m struct {
					Msg       string    `json:"msg"`
					Time      time.Time `json:"time"`
					Totem     string    `json:"totem"`
					Seq       int       `json:"seq"`
					Duplicate bool      `json:"duplicate"`
				}
				if !strings.Contains(sc.Text(), `"op applied"`) || json.Unmarshal(sc.Bytes(), &m) != nil || m.Duplicate {
					continue
				}
				by[m.Totem] = append(by[m.Totem], applied{hub: h.n, seq: m.Seq, at: m.Time})
				perHub[h.n]++
			}
			fh.Close()
		}
	}
	pairs := 0
	for _, as := range by {
		sort.Slice(as, func(i, j int) bool { return as[i].seq < as[j].seq })
		for i := 1; i < len(as); i++ {
			a, b := as[i-1], as[i]
			if b.seq == a.seq+1 && a.hub != b.hub && b.at.Sub(a.at).Abs() < 20*time.Millisecond {
				pairs++
			}
		}
	}
	return pairs, perHub
}
