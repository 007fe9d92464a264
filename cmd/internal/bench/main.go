// Command bench measures the sync stack in one run and prints one table,
// then the figures as key=value lines (make bench).
//
// Everything runs in this process on loopback: the totem's outbox and
// uplink, the embedded broker, the hub and the reference CMS. The anchor is
// paho.golang's autopaho with its queue/file, on the same broker, draining
// the same envelopes into a subscriber of the same shared subscription.
// CPU time (getrusage, user+sys) and bytes written (/proc/self/io) cover the
// whole process; commits are bbolt write transactions, each two fdatasyncs.
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/aslcns/totem/cmd/internal/benchkit"
	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/cms/pgstore/pgserver"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/uplink"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/autopaho/queue/file"
	"github.com/eclipse/paho.golang/paho"
	"github.com/jackc/pgx/v5"
	bolt "go.etcd.io/bbolt"
)

func main() {
	cli.TuneGC() // as the programs do
	benchkit.Main("bench", run)
}

// config is what the flags set.
type config struct {
	dir        string
	serial     int   // enqueues by one producer
	parallel   int   // enqueues by 16 producers, in all
	backlogs   []int // drain backlogs
	anchor     int   // backlog drained by both us and autopaho's file queue
	timeout    time.Duration
	profile    string
	memprofile string
	pg         string // a PostgreSQL server for the drain on PostgreSQL ("" = none)
	pgN        int    // its backlog
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, backlogs, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if c.memprofile != "" {
		defer func() {
			if f, err := os.Create(c.memprofile); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	if c.backlogs, err = benchkit.Counts(backlogs, "backlog", 0); err != nil {
		return err
	}
	dir, cleanup, err := benchkit.WorkDir(c.dir, "totem-bench-")
	if err != nil {
		return err
	}
	defer cleanup()
	c.dir = dir
	stopPG, err := pgServer(ctx, &c, stderr)
	if err != nil {
		return err
	}
	defer stopPG()
	t := &table{}
	gc := debug.SetGCPercent(-1) // reads it (and stops the collector: put it back)
	debug.SetGCPercent(gc)
	fmt.Fprintf(stderr, "bench: stores in %s, GOMAXPROCS %d, GOGC %d, memory limit %d MiB\n", c.dir,
		runtime.GOMAXPROCS(0), gc, debug.SetMemoryLimit(-1)>>20)
	if err := enqueueRows(ctx, c, t, stderr); err != nil {
		return err
	}
	drains, sizes, err := drainRows(ctx, c, t, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bench: autopaho queue/file, backlog %d\n", c.anchor)
	a, err := anchorRun(ctx, filepath.Join(c.dir, "autopaho"), c.anchor, c.timeout)
	if err != nil {
		return fmt.Errorf("autopaho anchor: %w", err)
	}
	what := fmt.Sprintf("autopaho queue/file drain, backlog %d (anchor)", c.anchor)
	t.add(what, "ops/s", a.opsPerSec, "QoS1 publish → shared-subscription subscriber, nothing applied")
	t.add(what, "CPU µs/op", a.cpuPerOp, "")
	t.kv("autopaho_file_drain_ops_s", a.opsPerSec)
	derivedRows(c, t, drains, sizes, a)
	t.print(stdout)
	return nil
}

// parseFlags reads the command line; backlogs is the list as given.
func parseFlags(args []string, stderr io.Writer) (c config, backlogs string, err error) {
	fl := cli.Flags("bench", stderr)
	fl.StringVar(&c.dir, "dir", "", "directory for the stores (default: a temp dir, removed at the end)")
	fl.IntVar(&c.serial, "serial", 2000, "enqueues by one producer (and bare bbolt updates)")
	fl.IntVar(&c.parallel, "parallel", 16000, "enqueues by 16 producers, in all")
	fl.StringVar(&backlogs, "backlogs", "1000,10000,100000", "drain backlogs, comma-separated")
	fl.IntVar(&c.anchor, "anchor", 5000, "backlog drained by both us and autopaho queue/file")
	fl.DurationVar(&c.timeout, "timeout", 4*time.Minute, "bound of each drain")
	fl.StringVar(&c.pg, "pg", cmp.Or(os.Getenv("TOTEM_BENCH_PG"), pgPrivate), "a PostgreSQL server (postgres://… as a role that may CREATE DATABASE; "+
		"default $TOTEM_BENCH_PG, else "+pgPrivate+": a server of the bench's own, when postgresql is installed; none: no PostgreSQL row): "+
		"adds the drain on PostgreSQL, in a database of its own dropped at the end")
	fl.IntVar(&c.pgN, "pg-backlog", 10000, "backlog of the drain on PostgreSQL (compared with bbolt's at the same backlog)")
	fl.StringVar(&c.profile, "cpuprofile", "", "write a CPU profile of the drains to this file")
	fl.StringVar(&c.memprofile, "memprofile", "", "write an allocation profile of the whole run to this file")
	return c, backlogs, fl.Parse(args)
}

// pgPrivate is -pg's value for a PostgreSQL server of the bench's own.
const pgPrivate = "private"

// pgServer resolves -pg: "none" is no PostgreSQL row; "private" starts a
// server of the bench's own in c.dir (cms/pgstore/pgserver, as
// bench-fleet does), or, without postgresql installed, says so and drops
// the row; a URL is used as given. It returns what stops the server.
func pgServer(ctx context.Context, c *config, stderr io.Writer) (stop func(), err error) {
	switch c.pg {
	case "none":
		c.pg = ""
		return func() {}, nil
	case pgPrivate:
	default:
		return func() {}, nil
	}
	c.pg = ""
	srv, err := pgserver.Start(ctx, pgserver.Options{})
	if errors.Is(err, pgserver.ErrMissing) {
		fmt.Fprintln(stderr, "bench: no PostgreSQL row:", err)
		return func() {}, nil
	} else if err != nil {
		return nil, fmt.Errorf("bench: PostgreSQL: %w", err)
	}
	c.pg = srv.URL("postgres")
	return func() {
		if err := srv.Stop(); err != nil {
			fmt.Fprintln(stderr, "bench: stop PostgreSQL:", err)
		}
	}, nil
}

// enqueueRows measures the durable enqueue (one producer, then 16) and
// its anchor, bare bbolt updates.
func enqueueRows(ctx context.Context, c config, t *table, stderr io.Writer) error {
	for _, producers := range []int{1, 16} {
		n := c.serial
		if producers > 1 {
			n = c.parallel
		}
		fmt.Fprintf(stderr, "bench: enqueue, %d producer(s), %d ops\n", producers, n)
		r, err := enqueueRun(ctx, filepath.Join(c.dir, fmt.Sprintf("enqueue-%d.db", producers)), producers, n)
		if err != nil {
			return err
		}
		what := fmt.Sprintf("durable enqueue, %d producer(s), %d ops, 512 B", producers, n)
		t.add(what, "p50 ms", r.p50, "")
		t.add(what, "p99 ms", r.p99, "")
		t.add(what, "ops/s", r.opsPerSec, "")
		t.add(what, "ops per commit", r.opsPerCommit, "")
		t.add(what, "CPU µs/op", r.cpuPerOp, "")
		t.add(what, "bytes written/op", r.bytesPerOp, "write_bytes around the enqueues only")
		t.kv(fmt.Sprintf("enqueue_p50_ms_%d", producers), r.p50)
		t.kv(fmt.Sprintf("enqueue_p99_ms_%d", producers), r.p99)
		if producers == 16 {
			t.kv("bytes_per_op", r.bytesPerOp)
		}
	}
	fmt.Fprintf(stderr, "bench: bare bbolt update, %d ops\n", c.serial)
	b, err := boltRun(filepath.Join(c.dir, "bare.db"), c.serial)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("bare bbolt Update, 1 producer, %d ops, 512 B (anchor)", c.serial)
	t.add(what, "p50 ms", b.p50, "")
	t.add(what, "p99 ms", b.p99, "one commit per op")
	t.add(what, "ops/s", b.opsPerSec, "")
	t.add(what, "bytes written/op", b.bytesPerOp, "")
	t.kv("bbolt_update_p99_ms", b.p99)
	return nil
}

// drainRows measures the end-to-end drain of every backlog (and the
// anchor's), under the CPU profile if one is asked for; it returns the
// results by backlog and the backlogs in order.
func drainRows(ctx context.Context, c config, t *table, stderr io.Writer) (map[int]drainResult, []int, error) {
	drains := map[int]drainResult{}
	sizes := slices.Clone(c.backlogs)
	if !slices.Contains(sizes, c.anchor) {
		sizes = append(sizes, c.anchor)
	}
	if c.pg != "" && !slices.Contains(sizes, c.pgN) {
		sizes = append(sizes, c.pgN)
	}
	slices.Sort(sizes)
	if c.profile != "" {
		f, err := os.Create(c.profile)
		if err != nil {
			return nil, nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, nil, err
		}
	}
	for i, n := range sizes {
		fmt.Fprintf(stderr, "bench: drain, backlog %d\n", n)
		dir := filepath.Join(c.dir, fmt.Sprintf("drain-%d", i))
		r, err := drainRun(ctx, dir, n, c.timeout, boltCMS(dir))
		if err != nil {
			return nil, nil, fmt.Errorf("drain %d: %w", n, err)
		}
		drains[n] = r
		what := fmt.Sprintf("drain end to end, backlog %d", n)
		t.add(what, "ops/s", r.opsPerSec, "applied by the hub and answered (outbox done)")
		t.add(what, "CPU µs/op", r.cpuPerOp, "whole process: totem, broker, hub, CMS")
		t.add(what, "ms to connect / to first result", r.connectMs, fmt.Sprintf("first result after %.1f ms (window fill)", r.firstMs))
		t.add(what, "totem commits/op", r.totemCommits, "outbox: MarkSent + Record")
		t.add(what, "hub commits/op", r.hubCommits, "CMS ApplyBatch")
		t.add(what, "bytes written/op", r.bytesPerOp, "drain only: outbox sent/done + CMS")
		t.add(what, "prefill bytes written/op", r.prefillBytes, "enqueue by 64 producers")
		t.add(what, "resends", float64(r.duplicates), "duplicates answered from the CMS record")
		if k := shortCount(n); slices.Contains(c.backlogs, n) || n == c.anchor {
			t.kv("drain_ops_s_"+k, r.opsPerSec)
			t.kv("drain_cpu_us_per_op_"+k, r.cpuPerOp)
		}
	}
	if c.profile != "" {
		pprof.StopCPUProfile()
	}
	if c.pg != "" {
		if err := pgRows(ctx, c, t, drains, stderr); err != nil {
			return nil, nil, err
		}
	}
	return drains, sizes, nil
}

// pgRows is the same drain, the CMS on PostgreSQL (cms/pgstore), in the
// same run: the figure to hold is ≥ 50 % of bbolt's.
func pgRows(ctx context.Context, c config, t *table, drains map[int]drainResult, stderr io.Writer) error {
	fmt.Fprintf(stderr, "bench: drain on PostgreSQL, backlog %d\n", c.pgN)
	r, err := drainRun(ctx, filepath.Join(c.dir, "drain-pg"), c.pgN, c.timeout, pgCMS(c.pg))
	if err != nil {
		return fmt.Errorf("drain on PostgreSQL %d: %w", c.pgN, err)
	}
	what := fmt.Sprintf("drain end to end, CMS on PostgreSQL, backlog %d", c.pgN)
	t.add(what, "ops/s", r.opsPerSec, "applied by the hub and answered (outbox done)")
	t.add(what, "CPU µs/op", r.cpuPerOp, "this process only: the server's CPU is not counted")
	t.add(what, "hub commits/op", r.hubCommits, "CMS ApplyBatch")
	pct := r.opsPerSec / drains[c.pgN].opsPerSec * 100
	t.add(fmt.Sprintf("PostgreSQL / bbolt drain at backlog %d", c.pgN), "%", pct, "must be ≥ 50")
	t.kv("drain_ops_s_"+shortCount(c.pgN)+"_pg", r.opsPerSec)
	t.kv("drain_pg_vs_bbolt_pct", pct)
	return nil
}

// derivedRows adds the figures the measurements give together: ours
// against autopaho's, the spread across backlogs, a whole life's writes.
func derivedRows(c config, t *table, drains map[int]drainResult, sizes []int, a anchorResult) {
	ours := drains[c.anchor].opsPerSec
	ratio := ours / a.opsPerSec
	t.add(fmt.Sprintf("ours / autopaho at backlog %d", c.anchor), "×", ratio, "must be ≥ 20")
	t.kv("drain_vs_autopaho_x", ratio)
	lo, hi := drains[sizes[0]].opsPerSec, drains[sizes[0]].opsPerSec
	for _, n := range sizes {
		lo, hi = min(lo, drains[n].opsPerSec), max(hi, drains[n].opsPerSec)
	}
	spread := (hi - lo) / hi * 100
	t.add(fmt.Sprintf("drain spread %d…%d", sizes[0], sizes[len(sizes)-1]), "% (max-min)/max", spread, "must be ≤ 20")
	t.kv("drain_spread_pct", spread)
	mid := c.backlogs[len(c.backlogs)/2]
	lifecycle := drains[mid]
	t.add(fmt.Sprintf("whole life, backlog %d", mid), "bytes written/op", lifecycle.prefillBytes+lifecycle.bytesPerOp,
		"prefill (64 producers) + drain: totem outbox and hub CMS together")
	t.kv("bytes_per_op_lifecycle", lifecycle.prefillBytes+lifecycle.bytesPerOp)
}

// table collects rows and key=value figures.
type table struct {
	rows [][4]string
	kvs  [][2]string
}

func (t *table) add(what, metric string, v float64, note string) {
	t.rows = append(t.rows, [4]string{what, metric, format(v), note})
}

func (t *table) kv(k string, v float64) { t.kvs = append(t.kvs, [2]string{k, format(v)}) }

func (t *table) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measurement\tmetric\tvalue\tnote")
	fmt.Fprintln(tw, "-----------\t------\t-----\t----")
	for _, r := range t.rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r[0], r[1], r[2], r[3])
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, kv := range t.kvs {
		fmt.Fprintf(w, "%s=%s\n", kv[0], kv[1])
	}
}

func format(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

func shortCount(n int) string {
	if n%1000 == 0 {
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

// meter reads the process's CPU time and bytes written.
type meter struct {
	cpu   time.Duration
	bytes int64
	at    time.Time
}

func now() meter {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return meter{cpu: cpu, bytes: writeBytes(), at: time.Now()}
}

// writeBytes is write_bytes from /proc/self/io: what this process sent to
// the block layer. -1 where unavailable.
func writeBytes() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

// since returns elapsed seconds, CPU µs per op and bytes per op.
func (m meter) since(ops int) (secs, cpuPerOp, bytesPerOp float64) {
	e := now()
	secs = e.at.Sub(m.at).Seconds()
	cpuPerOp = float64((e.cpu - m.cpu).Microseconds()) / float64(ops)
	bytesPerOp = -1
	if m.bytes >= 0 && e.bytes >= 0 {
		bytesPerOp = float64(e.bytes-m.bytes) / float64(ops)
	}
	return
}

type latResult struct {
	p50, p99, opsPerSec, opsPerCommit, cpuPerOp, bytesPerOp float64
}

func percentiles(lat []time.Duration) (p50, p99 float64) {
	slices.Sort(lat)
	pct := func(p float64) float64 {
		d := lat[min(len(lat)-1, int(p*float64(len(lat))))]
		return float64(d.Microseconds()) / 1000
	}
	return pct(0.50), pct(0.99)
}

// payload512 is a 512-byte JSON object, as the outbox accepts: {"p":"ppp…"}.
var payload512 = append(append([]byte(`{"p":"`), bytes.Repeat([]byte("p"), 512-len(`{"p":""}`))...), `"}`...)

// enqueueRun enqueues n operations from producers goroutines into a new
// outbox and measures each Enqueue.
func enqueueRun(ctx context.Context, path string, producers, n int) (latResult, error) {
	o, err := outbox.Open(path, nil)
	if err != nil {
		return latResult{}, err
	}
	defer o.Close()
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	created := time.Now()
	c0 := o.Commits()
	m := now()
	var wg sync.WaitGroup
	for range producers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				t := time.Now()
				if _, err := o.Enqueue(cms.KindConsent, payload512, created, time.Time{}); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				lat[i] = time.Since(t)
			}
		})
	}
	wg.Wait()
	secs, cpu, bytesOp := m.since(n)
	if err := firstErr.Load(); err != nil {
		return latResult{}, *err
	}
	if err := ctx.Err(); err != nil {
		return latResult{}, err
	}
	r := latResult{opsPerSec: float64(n) / secs, cpuPerOp: cpu, bytesPerOp: bytesOp,
		opsPerCommit: float64(n) / float64(o.Commits()-c0)}
	r.p50, r.p99 = percentiles(lat)
	return r, nil
}

// boltRun is the anchor of enqueue: one bare bbolt Update per message.
func boltRun(path string, n int) (latResult, error) {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return latResult{}, err
	}
	defer db.Close()
	q := []byte("q")
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(q); return err }); err != nil {
		return latResult{}, err
	}
	lat := make([]time.Duration, n)
	m := now()
	for i := range n {
		t := time.Now()
		err := db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(q).Put(binary.BigEndian.AppendUint64(nil, uint64(i)), payload512)
		})
		if err != nil {
			return latResult{}, err
		}
		lat[i] = time.Since(t)
	}
	secs, cpu, bytesOp := m.since(n)
	r := latResult{opsPerSec: float64(n) / secs, cpuPerOp: cpu, bytesPerOp: bytesOp, opsPerCommit: 1}
	r.p50, r.p99 = percentiles(lat)
	return r, nil
}

// world is a broker with a hub user and one totem user per name.
type world struct {
	srv    *broker.Server
	hubMe  creds.File
	totems map[string]creds.File
}

func newWorld(totems ...string) (*world, error) {
	w := &world{totems: map[string]creds.File{}}
	var err error
	if w.hubMe, err = creds.Generate("totemhub", creds.RoleHub); err != nil {
		return nil, err
	}
	users := broker.NewUsers(nil)
	if err := users.Add(w.hubMe); err != nil {
		return nil, err
	}
	for _, t := range totems {
		c, err := creds.Generate(t, creds.RoleTotem)
		if err != nil {
			return nil, err
		}
		if err := users.Add(c); err != nil {
			return nil, err
		}
		w.totems[t] = c
	}
	w.srv, err = broker.Start(broker.Options{Listen: "127.0.0.1:0", Auth: users})
	return w, err
}

type drainResult struct {
	opsPerSec, cpuPerOp, bytesPerOp, prefillBytes float64
	totemCommits, hubCommits                      float64
	connectMs, firstMs                            float64 // from the uplink's start
	duplicates                                    int64
}

// prefill enqueues n operations from 64 producers.
func prefill(ctx context.Context, o *outbox.Outbox, n int, p []byte) error {
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	created := time.Now()
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for int(next.Add(1)) <= n && ctx.Err() == nil {
				if _, err := o.Enqueue(cms.KindConsent, p, created, time.Time{}); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := firstErr.Load(); err != nil {
		return *err
	}
	return ctx.Err()
}

// drainRun measures the end-to-end drain of a backlog of n operations:
// outbox → uplink → broker → hub → CMS applied → result → outbox done. It
// checks that each was applied once and in order.
func drainRun(ctx context.Context, dir string, n int, timeout time.Duration, openCMS func(context.Context) (*refcms.Store, func(), error)) (drainResult, error) {
	const totem = "t-bench"
	var rig drainRig
	defer rig.undo.Run()
	if err := rig.open(ctx, dir, totem, openCMS); err != nil {
		return drainResult{}, err
	}
	box := rig.box
	var r drainResult
	m := now()
	if err := prefill(ctx, box, n, benchkit.ConsentPayload()); err != nil {
		return r, err
	}
	_, _, r.prefillBytes = m.since(n)

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hctx, hcancel := context.WithCancel(ctx)
	defer hcancel()
	done := make(chan error, 2)
	h := hub.New(hub.Options{URL: rig.w.srv.URL(), ClientID: "hub-0", Username: rig.w.hubMe.Username, Password: rig.w.hubMe.Password, Backend: rig.store})
	go func() { done <- h.Run(hctx) }()
	if err := h.AwaitConnection(ctx); err != nil {
		hcancel()
		<-done
		return r, err
	}
	// The subscription is made on its own goroutine after the connection.
	time.Sleep(200 * time.Millisecond)

	c0, b0 := box.Commits(), h.Stats().Batches.Load()
	m = now()
	tc := rig.w.totems[totem]
	up := uplink.New(uplink.Options{Totem: totem, URL: rig.w.srv.URL(), Username: tc.Username, Password: tc.Password, Outbox: box})
	go func() { done <- up.Run(hctx) }()
	connected, first, stuck := awaitDrained(ctx, box, up, n, m.at)
	secs, cpu, bytesOp := m.since(n)
	r.connectMs, r.firstMs = float64(connected.Microseconds())/1000, float64(first.Microseconds())/1000
	r.opsPerSec, r.cpuPerOp, r.bytesPerOp = float64(n)/secs, cpu, bytesOp
	r.totemCommits = float64(box.Commits()-c0) / float64(n)
	r.hubCommits = float64(h.Stats().Batches.Load()-b0) / float64(n)
	r.duplicates = h.Stats().Duplicates.Load()
	hcancel()
	<-done
	<-done
	if stuck != nil {
		return r, stuck
	}
	return r, verify(rig.store, totem, n)
}

// drainRig is what a drain runs on, in its directory: a broker with the
// hub's user and the totem's, the CMS and the totem's outbox.
type drainRig struct {
	w     *world
	store *refcms.Store
	box   *outbox.Outbox
	undo  cli.Undo
}

func (rig *drainRig) open(ctx context.Context, dir, totem string, openCMS func(context.Context) (*refcms.Store, func(), error)) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	w, err := newWorld(totem)
	if err != nil {
		return err
	}
	rig.w = w
	rig.undo.Push(func() { w.srv.Close() })
	store, closeCMS, err := openCMS(ctx)
	if err != nil {
		return err
	}
	rig.store = store
	rig.undo.Push(closeCMS)
	if rig.box, err = outbox.Open(filepath.Join(dir, "outbox.db"), nil); err != nil {
		return err
	}
	rig.undo.Push(func() { rig.box.Close() })
	return nil
}

// awaitDrained polls the outbox until it is empty or ctx is done, and
// says how long after start the uplink connected and the first result
// came.
func awaitDrained(ctx context.Context, box *outbox.Outbox, up *uplink.Uplink, n int, start time.Time) (connected, first time.Duration, stuck error) {
	for {
		q, err := box.Stats()
		if err != nil {
			return connected, first, err
		}
		if connected == 0 && up.Connected() {
			connected = time.Since(start)
		}
		if first == 0 && q.Depth < n {
			first = time.Since(start)
		}
		if q.Depth == 0 {
			return connected, first, nil
		}
		if ctx.Err() != nil {
			return connected, first, fmt.Errorf("backlog stuck at %d: %w", q.Depth, ctx.Err())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// boltCMS opens the reference CMS on bbolt in dir (the hub's default).
func boltCMS(dir string) func(context.Context) (*refcms.Store, func(), error) {
	return func(context.Context) (*refcms.Store, func(), error) {
		s, err := refcms.Open(filepath.Join(dir, "cms.db"), &refcms.Options{Seed: cms.DemoCards()})
		if err != nil {
			return nil, nil, err
		}
		return s, func() { s.Close() }, nil
	}
}

// pgCMS opens the reference CMS on PostgreSQL, in a database of its own
// on the server at server, migrated, and dropped at the end.
func pgCMS(server string) func(context.Context) (*refcms.Store, func(), error) {
	return func(ctx context.Context) (*refcms.Store, func(), error) {
		c, err := pgx.Connect(ctx, server)
		if err != nil {
			return nil, nil, fmt.Errorf("bench: PostgreSQL: %w", err)
		}
		name := fmt.Sprintf("totem_bench_%d_%d", os.Getpid(), time.Now().UnixNano())
		if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			c.Close(ctx)
			return nil, nil, fmt.Errorf("bench: PostgreSQL: %w", err)
		}
		drop := func() {
			c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
		u, err := url.Parse(server)
		if err != nil {
			drop()
			return nil, nil, err
		}
		u.Path = "/" + name
		if _, err := pgstore.Migrate(ctx, u.String()); err != nil {
			drop()
			return nil, nil, err
		}
		pg, err := pgstore.Open(ctx, u.String(), pgstore.Options{})
		if err != nil {
			drop()
			return nil, nil, err
		}
		s, err := refcms.New(pg.CMS(), &refcms.Options{Seed: cms.DemoCards()})
		if err != nil {
			pg.Close()
			drop()
			return nil, nil, err
		}
		return s, func() { s.Close(); drop() }, nil
	}
}

// verify checks zero lost, zero twice, in order: the CMS audit holds the
// sequence numbers 1…n once each, in this order.
func verify(store *refcms.Store, totem string, n int) error {
	audit, err := store.Audit()
	if err != nil {
		return err
	}
	if len(audit) != n {
		return fmt.Errorf("applied %d of %d", len(audit), n)
	}
	for i, a := range audit {
		if a.Totem != totem || a.Seq != uint64(i+1) {
			return fmt.Errorf("audit %d is %s seq %d", i, a.Totem, a.Seq)
		}
	}
	if last, err := store.LastSeq(totem); err != nil || last != uint64(n) {
		return fmt.Errorf("ledger at %d (%v), want %d", last, err, n)
	}
	return nil
}

type anchorResult struct{ opsPerSec, cpuPerOp float64 }

// anchorRun drains n operation envelopes queued in autopaho's queue/file
// into a subscriber of the hub's shared subscription, on the same broker,
// at QoS 1.
func anchorRun(ctx context.Context, dir string, n int, timeout time.Duration) (anchorResult, error) {
	qdir := filepath.Join(dir, "queue")
	if err := os.MkdirAll(qdir, 0o700); err != nil {
		return anchorResult{}, err
	}
	const totem = "t-anchor"
	w, err := newWorld(totem)
	if err != nil {
		return anchorResult{}, err
	}
	defer w.srv.Close()
	q, err := queueOps(qdir, totem, n)
	if err != nil {
		return anchorResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	srv, err := url.Parse(w.srv.URL())
	if err != nil {
		return anchorResult{}, err
	}
	var got atomic.Int64
	all := make(chan struct{})
	sub, err := countingSubscriber(ctx, srv, w.hubMe, n, &got, all)
	if err != nil {
		return anchorResult{}, err
	}
	defer func() { cancel(); <-sub.Done() }()
	if err := sub.AwaitConnection(ctx); err != nil {
		return anchorResult{}, err
	}
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: protocol.SharedOpFilter, QoS: 1}}}); err != nil {
		return anchorResult{}, err
	}

	tc := w.totems[totem]
	m := now()
	pub, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{srv}, KeepAlive: 30, CleanStartOnInitialConnection: true,
		ConnectUsername: tc.Username, ConnectPassword: []byte(tc.Password), Queue: q,
		ClientConfig: paho.ClientConfig{ClientID: totem},
	})
	if err != nil {
		return anchorResult{}, err
	}
	defer func() { cancel(); <-pub.Done() }()
	select {
	case <-all:
	case <-ctx.Done():
		return anchorResult{}, fmt.Errorf("%d of %d received: %w", got.Load(), n, ctx.Err())
	}
	secs, cpu, _ := m.since(n)
	return anchorResult{opsPerSec: float64(n) / secs, cpuPerOp: cpu}, nil
}

// queueOps queues n operation envelopes of totem, as QoS 1 PUBLISH
// packets, in a new autopaho queue/file in qdir.
func queueOps(qdir, totem string, n int) (*file.Queue, error) {
	q, err := file.New(qdir, "op", ".msg")
	if err != nil {
		return nil, err
	}
	p := benchkit.ConsentPayload()
	created := time.Now().UTC()
	topic := protocol.Topic(totem, protocol.LeafOp)
	for i := range n {
		seq := uint64(i + 1)
		var raw [16]byte
		binary.BigEndian.PutUint64(raw[8:], seq)
		env, err := protocol.Marshal(protocol.Op{V: protocol.Version, ID: fmt.Sprintf("%032x", raw), Totem: totem,
			Seq: seq, Kind: cms.KindConsent, Payload: p, Created: created})
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		if _, err := (&paho.Publish{QoS: 1, Topic: topic, Payload: env}).Packet().WriteTo(&b); err != nil {
			return nil, err
		}
		if err := q.Enqueue(&b); err != nil {
			return nil, err
		}
	}
	return q, nil
}

// countingSubscriber is the anchor's subscriber: like the hub's ingest, a
// client of the shared subscription; it only counts in got, and closes
// all once n came.
func countingSubscriber(ctx context.Context, srv *url.URL, me creds.File, n int, got *atomic.Int64, all chan struct{}) (*autopaho.ConnectionManager, error) {
	var once sync.Once
	return autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{srv}, KeepAlive: 30, CleanStartOnInitialConnection: true,
		ConnectUsername: me.Username, ConnectPassword: []byte(me.Password),
		ClientConfig: paho.ClientConfig{ClientID: "anchor-sub",
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(paho.PublishReceived) (bool, error) {
				if got.Add(1) >= int64(n) {
					once.Do(func() { close(all) })
				}
				return true, nil
			}}},
	})
}
