// Command benchfleet measures a regional reconnect storm in one run and
// prints one table, then the figures as key=value lines (make bench-fleet).
//
// N simulated totems run the real outbox and uplink in this process, each
// with its own store and broker credentials, against a real totemhub
// process (embedded broker) that provisioned them. Each totem has its
// backlog queued before any connects; then all connect at once. Measured:
// aggregate operations per second until the last totem drained, each
// totem's time to drain (slowest and median), what the hub says it did
// when it stops (applied, duplicates, gap refusals, acknowledged drops),
// its peak RSS and its CPU time per operation (/proc/PID). The hub's CMS is
// then read back: every operation applied once, in order.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
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
	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/pgstore/pgserver"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/uplink"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench-fleet:", err)
		os.Exit(1)
	}
}

type config struct {
	hub     string // totemhub binary
	mosq    int    // fleet size of the mosquitto run; 0: none
	acl     string // deploy/mosquitto/acl
	dir     string
	sizes   []int
	queued  int
	timeout time.Duration
	// rawEvery: every rawEvery-th totem of an embedded storm is a raw
	// one (raw.go), speaking only docs/protocol.md; 0: none.
	rawEvery int
	// steady state (idle.go)
	idle       int           // fleet size; 0: none
	idleTele   time.Duration // the totems' telemetry interval in that run
	idleWindow time.Duration // how long hub CPU is measured
	// scale-out on PostgreSQL (pg.go)
	pg        int   // fleet size; 0: none
	pgHubs    []int // hub process counts
	pgNoFsync bool
	pgPart    bool // [store] partition in the hubs' config
}

// cpuProfile, when set (-cpuprofile), is where each drain writes a CPU
// profile of this process (the totems' outboxes and uplinks): the first
// to the name given, the next with .2, .3… appended.
// The hubs started meanwhile serve their profiles (TOTEM_PPROF), and
// each storm fetches profileSeconds of each hub's CPU profile from its
// start, to the same name with .hubN appended.
var (
	cpuProfile     string
	profileSeconds int
	profiles       int
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if c.dir == "" {
		d, err := os.MkdirTemp("", "totem-bench-fleet-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		c.dir = d
	}
	var results []result
	for _, n := range c.sizes {
		fmt.Fprintf(stderr, "bench-fleet: %d totems x %d queued, embedded broker\n", n, c.queued)
		r, err := storm(ctx, c, filepath.Join(c.dir, fmt.Sprintf("fleet-%d", n)), n, stderr)
		if err != nil {
			return fmt.Errorf("%d totems: %w", n, err)
		}
		results = append(results, r)
	}
	mr, err := mosqRun(ctx, c, stderr)
	if err != nil {
		return err
	}
	prs, err := pgRuns(ctx, c, stderr)
	if err != nil {
		return err
	}
	ir, err := idleStep(ctx, c, stderr)
	if err != nil {
		return err
	}
	report(stdout, c, results, mr)
	pgReport(stdout, c, prs)
	if ir != nil {
		ir.report(stdout, c)
	}
	return nil
}

// parseConfig reads the command line.
func parseConfig(args []string, stderr io.Writer) (config, error) {
	fl := flag.NewFlagSet("bench-fleet", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var c config
	var sizes string
	fl.StringVar(&c.hub, "hub", "bin/totemhub", "the totemhub binary")
	fl.StringVar(&c.dir, "dir", "", "directory for the stores (default: a temp dir, removed at the end)")
	fl.StringVar(&sizes, "sizes", "100,300,1000", "fleet sizes, comma-separated")
	fl.IntVar(&c.queued, "queued", 30, "operations queued at each totem")
	fl.DurationVar(&c.timeout, "timeout", 5*time.Minute, "bound of each storm")
	fl.IntVar(&c.rawEvery, "raw-every", 10, "every N-th totem of the embedded storms is a client of docs/protocol.md only, not the uplink; 0: none")
	fl.IntVar(&c.mosq, "mosquitto", 1000, "fleet size of the run on Debian mosquitto with 2 hub instances; 0: none")
	fl.StringVar(&c.acl, "acl", "deploy/mosquitto/acl", "mosquitto ACL file")
	fl.IntVar(&c.idle, "idle", 1000, "fleet size of the steady-state run (connected, telemetry only); 0: none")
	fl.DurationVar(&c.idleTele, "idle-telemetry", 2*time.Second, "telemetry interval of the steady-state run (figures are scaled to 30 s)")
	fl.DurationVar(&c.idleWindow, "idle-window", 30*time.Second, "how long the steady-state run measures the hub's CPU")
	fl.IntVar(&c.pg, "pg", 1000, "fleet size of the runs on mosquitto + PostgreSQL (a private server, needs postgresql installed) with -pg-hubs totemhub processes; 0: none")
	pgHubs := fl.String("pg-hubs", "1,3", "hub process counts of the PostgreSQL runs, comma-separated")
	fl.BoolVar(&c.pgNoFsync, "pg-nofsync", false, "run the private PostgreSQL with fsync=off")
	fl.IntVar(&profileSeconds, "profile-seconds", 8, "with -cpuprofile: seconds of each hub's CPU profile, from the storm's start")
	fl.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of this process (the totems) during each storm to this file (.2, .3… for the next storms)")
	fl.BoolVar(&c.pgPart, "pg-partition", true, "set [store] partition in the PostgreSQL runs' hubs: each applies only the totems of its leased buckets (-pg-partition=false: the shared subscription)")
	if err := fl.Parse(args); err != nil {
		return c, err
	}
	for f := range strings.SplitSeq(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 || n > 9999 {
			return c, fmt.Errorf("bad size %q", f)
		}
		c.sizes = append(c.sizes, n)
	}
	for f := range strings.SplitSeq(*pgHubs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 || n > 16 {
			return c, fmt.Errorf("bad hub count %q", f)
		}
		c.pgHubs = append(c.pgHubs, n)
	}
	if c.queued <= 0 {
		return c, errors.New("queued must be positive")
	}
	if c.idle > 0 && c.idleTele < time.Second {
		return c, errors.New("idle-telemetry must be at least 1s (the hub's minimum)")
	}
	return c, nil
}

// mosqRun is the storm on Debian mosquitto with 2 hub instances, nil
// when it is not asked for or mosquitto is not installed.
func mosqRun(ctx context.Context, c config, stderr io.Writer) (*result, error) {
	if c.mosq <= 0 {
		return nil, nil
	}
	if _, err := exec.LookPath("mosquitto"); err != nil {
		fmt.Fprintln(stderr, "bench-fleet: mosquitto not installed: no mosquitto run (apt-get install mosquitto)")
		return nil, nil
	}
	fmt.Fprintf(stderr, "bench-fleet: %d totems x %d queued, mosquitto, 2 hub instances\n", c.mosq, c.queued)
	r, err := mosqStorm(ctx, c, filepath.Join(c.dir, fmt.Sprintf("mosquitto-%d", c.mosq)), c.mosq)
	if err != nil {
		return nil, fmt.Errorf("mosquitto, %d totems: %w", c.mosq, err)
	}
	return &r, nil
}

// pgRuns are the storms on mosquitto + PostgreSQL, none when they are not
// asked for or mosquitto or PostgreSQL is not installed.
func pgRuns(ctx context.Context, c config, stderr io.Writer) ([]pgResult, error) {
	if c.pg <= 0 {
		return nil, nil
	}
	if _, err := exec.LookPath("mosquitto"); err != nil {
		fmt.Fprintln(stderr, "bench-fleet: mosquitto not installed: no PostgreSQL runs (apt-get install mosquitto)")
		return nil, nil
	}
	prs, err := pgStorms(ctx, c, c.dir, c.pg, c.pgHubs, stderr)
	if errors.Is(err, pgserver.ErrMissing) {
		fmt.Fprintln(stderr, "bench-fleet: no PostgreSQL runs:", err)
		return nil, nil
	}
	return prs, err
}

// idleStep is the steady-state run, nil when it is not asked for.
func idleStep(ctx context.Context, c config, stderr io.Writer) (*idleResult, error) {
	if c.idle <= 0 {
		return nil, nil
	}
	fmt.Fprintf(stderr, "bench-fleet: %d totems connected, telemetry every %s, embedded broker\n", c.idle, c.idleTele)
	r, err := idleRun(ctx, c, filepath.Join(c.dir, fmt.Sprintf("idle-%d", c.idle)), c.idle)
	if err != nil {
		return nil, fmt.Errorf("steady state, %d totems: %w", c.idle, err)
	}
	return &r, nil
}

// result is one storm's figures.
type result struct {
	broker              string // embedded, or mosquitto-2hubs
	totems, ops         int
	opsPerSec           float64
	slowest, median     time.Duration
	applied, dups, gaps int64
	dropped, full       int64
	rssMB, cpuUsPerOp   float64
	resends             int64 // operations the uplinks sent more than once
	raw                 int   // totems of them that spoke docs/protocol.md only
}

func report(w io.Writer, c config, rs []result, mr *result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "broker\ttotems\tqueued\tops/s\tslowest s\tmedian s\tslowest/median\traw totems\tacked drops\tduplicates\tgap refusals\tresent\thub peak RSS MB\thub CPU µs/op")
	if mr != nil {
		rs = append(rs, *mr)
	}
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t%d\t%d\t%d\t%d\t%.1f\t%.1f\n", r.broker, r.totems, c.queued, r.opsPerSec,
			r.slowest.Seconds(), r.median.Seconds(), r.slowest.Seconds()/max(r.median.Seconds(), 1e-9), r.raw, r.dropped, r.dups,
			r.gaps, r.resends, r.rssMB, r.cpuUsPerOp)
	}
	tw.Flush()
	fmt.Fprintln(w, "(mosquitto-2hubs: the 2 hub instances run in this process and share one CMS: no hub RSS or CPU)")
	fmt.Fprintln(w)
	for _, r := range rs {
		k := strconv.Itoa(r.totems)
		if r.broker != "embedded" {
			figures(w, k+"_mosquitto_2hubs", append(r.speed(), figure{"drops", "%d", r.dropped}, figure{"gaps", "%d", r.gaps})...)
			continue
		}
		figures(w, k, append(r.speed(),
			figure{"drops", "%d", r.dropped},
			figure{"raw_totems", "%d", r.raw},
			figure{"duplicates", "%d", r.dups},
			figure{"gaps", "%d", r.gaps},
			figure{"hub_rss_mb", "%.1f", r.rssMB},
			figure{"hub_cpu_us_per_op", "%.1f", r.cpuUsPerOp})...)
	}
}

// figure is one key=value line of the bench's output: fleet_NAME, then
// the run's suffix, its value printed with verb.
type figure struct {
	name  string
	verb  string
	value any
}

// figures writes a run's figures, each key ending in _suffix (no suffix
// when it is empty).
func figures(w io.Writer, suffix string, fs ...figure) {
	if suffix != "" {
		suffix = "_" + suffix
	}
	for _, f := range fs {
		fmt.Fprintf(w, "fleet_%s%s="+f.verb+"\n", f.name, suffix, f.value)
	}
}

// speed is a run's throughput and its slowest and median totem, the
// first figures of every run.
func (r result) speed() []figure {
	return []figure{
		{"ops_s", "%.0f", r.opsPerSec},
		{"slowest_s", "%.2f", r.slowest.Seconds()},
		{"median_s", "%.2f", r.median.Seconds()},
	}
}

// loadCreds reads the credentials of the totems names, enrolled in dir.
func loadCreds(dir string, names []string) ([]creds.File, error) {
	ids := make([]creds.File, len(names))
	for i, name := range names {
		var err error
		if ids[i], err = creds.Load(filepath.Join(dir, "creds", name+".json")); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// freePort returns a loopback port nobody listens on now.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// hubProc is a running totemhub.
type hubProc struct {
	pprof string // its TOTEM_PPROF address (-cpuprofile), or ""
	cmd   *exec.Cmd
	log   *os.File
	path  string // its log
	done  chan error
}

// startHub writes a configuration provisioning the totems and starts
// totemhub with it; it returns once every totem's credentials are written
// and the broker accepts connections.
func startHub(ctx context.Context, bin, dir, addr string, totems []string, telemetry time.Duration) (*hubProc, error) {
	quoted := make([]string, len(totems))
	for i, t := range totems {
		quoted[i] = strconv.Quote(t)
	}
	cfg := fmt.Sprintf(`state_dir = %q
[broker]
listen = %q
tls_listen = ""
[fleet]
credentials_dir = %q
provision = [%s]
console = ""
telemetry_interval = %q
[http]
listen = ""
[log]
level = "info"
format = "json"
`, filepath.Join(dir, "hub"), addr, filepath.Join(dir, "creds"), strings.Join(quoted, ","), telemetry.String())
	h, err := launchHub(bin, dir, cfg)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for _, t := range totems {
		for {
			if _, err := os.Stat(filepath.Join(dir, "creds", t+".json")); err == nil {
				break
			}
			if err := h.pause(ctx); err != nil {
				return nil, err
			}
			if time.Now().After(deadline) {
				h.stop()
				return nil, errors.New("totemhub did not provision the totems in 2 minutes")
			}
		}
	}
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			h.stop()
			return nil, errors.New("totemhub's broker does not accept connections")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The ingest subscribes right after its broker starts.
	time.Sleep(500 * time.Millisecond)
	return h, nil
}

// stop ends totemhub (SIGTERM, then SIGKILL after 20 s) and waits for it.
// hubOnFreePort makes dir and starts there a totemhub provisioning
// totems, its broker on a free loopback port; it returns the hub and
// that port's address.
func hubOnFreePort(ctx context.Context, bin, dir string, totems []string, telemetry time.Duration) (*hubProc, string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	addr, err := freePort()
	if err != nil {
		return nil, "", err
	}
	hp, err := startHub(ctx, bin, dir, addr, totems, telemetry)
	return hp, addr, err
}

// fleetFiles fills the totems' outboxes in dir with queued operations
// each and reads their credentials; the caller closes the outboxes.
func fleetFiles(dir string, names []string, queued int) ([]*outbox.Outbox, []creds.File, error) {
	boxes, err := backlogs(dir, names, queued)
	if err != nil {
		return nil, nil, err
	}
	ids, err := loadCreds(dir, names)
	if err != nil {
		closeAll(boxes)
		return nil, nil, err
	}
	return boxes, ids, nil
}

// launchHub writes cfg as dir's totemhub.toml and starts totemhub with it
// and args, its output to dir's hub.log.
func launchHub(bin, dir, cfg string, args ...string) (*hubProc, error) {
	cfgPath := filepath.Join(dir, "totemhub.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "hub.log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{"--config", cfgPath}, args...)...)
	cmd.Stdout, cmd.Stderr = lf, lf
	var pprofAddr string
	if cpuProfile != "" {
		if pprofAddr, err = freePort(); err != nil {
			lf.Close()
			return nil, err
		}
		cmd.Env = append(os.Environ(), "TOTEM_PPROF="+pprofAddr)
	}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	h := &hubProc{pprof: pprofAddr, cmd: cmd, log: lf, path: logPath, done: make(chan error, 1)}
	go func() { h.done <- cmd.Wait() }()
	return h, nil
}

// pause waits 20 ms for a starting hub; the error says it exited (its
// log closed) or ctx ended (the hub stopped).
func (h *hubProc) pause(ctx context.Context) error {
	select {
	case err := <-h.done:
		h.done <- err
		h.log.Close()
		return fmt.Errorf("totemhub exited: %v (log %s)", err, h.path)
	case <-ctx.Done():
		h.stop()
		return ctx.Err()
	case <-time.After(20 * time.Millisecond):
	}
	return nil
}

func (h *hubProc) stop() error {
	h.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-h.done:
	case <-time.After(20 * time.Second):
		h.dumpGoroutines()
		h.cmd.Process.Kill()
		err = <-h.done
	}
	h.log.Close()
	return err
}

// dumpGoroutines writes, when the hub serves its profiles (-cpuprofile),
// its goroutines next to its log: it did not stop on SIGTERM.
func (h *hubProc) dumpGoroutines() {
	if h.pprof == "" {
		return
	}
	resp, err := http.Get("http://" + h.pprof + "/debug/pprof/goroutine?debug=2")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	name := strings.TrimSuffix(h.path, ".log") + ".goroutines"
	if f, err := os.Create(name); err == nil {
		io.Copy(f, resp.Body)
		f.Close()
		fmt.Fprintln(os.Stderr, "bench-fleet: totemhub did not stop on SIGTERM: its goroutines in", name)
	}
}

// procStat reads a process's CPU time (user+sys) and resident set.
func procStat(pid int) (cpu time.Duration, rssKB int64) {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i > 0 {
			f := strings.Fields(s[i+2:])
			if len(f) > 13 {
				u, _ := strconv.ParseInt(f[11], 10, 64)
				k, _ := strconv.ParseInt(f[12], 10, 64)
				cpu = time.Duration(u+k) * 10 * time.Millisecond // USER_HZ is 100 on Linux
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				rssKB, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			}
		}
	}
	return cpu, rssKB
}

// ingestStats reads the hub's "ingest stopped" line from its JSON log.
func ingestStats(path string) (map[string]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil || m["msg"] != "ingest stopped" {
			continue
		}
		out := map[string]float64{}
		for k, v := range m {
			if n, ok := v.(float64); ok {
				out[k] = n
			}
		}
		return out, nil
	}
	return nil, errors.New("no \"ingest stopped\" line in the hub's log " + path)
}

// names returns n totem ids.
func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("ft-%04d", i)
	}
	return out
}

// backlogs opens every totem's store and queues its backlog, before any
// connects.
func backlogs(dir string, names []string, queued int) ([]*outbox.Outbox, error) {
	boxes := make([]*outbox.Outbox, len(names))
	payload := benchkit.ConsentPayload()
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	sem := make(chan struct{}, 64)
	for i, name := range names {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			tdir := filepath.Join(dir, "totems", name)
			err := os.MkdirAll(tdir, 0o700)
			var b *outbox.Outbox
			if err == nil {
				b, err = outbox.Open(filepath.Join(tdir, "outbox.db"), nil)
			}
			if err == nil {
				boxes[i] = b
				for range queued {
					if _, err = b.Enqueue(cms.KindConsent, payload, time.Now(), time.Time{}); err != nil {
						break
					}
				}
			}
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
			}
		})
	}
	wg.Wait()
	if err := firstErr.Load(); err != nil {
		closeAll(boxes)
		return nil, *err
	}
	return boxes, nil
}

func closeAll(boxes []*outbox.Outbox) {
	for _, b := range boxes {
		if b != nil {
			b.Close()
		}
	}
}

// drain starts every totem's uplink at once against url and waits until
// each got a final result for its whole backlog; sample runs every 50 ms
// meanwhile. It returns each totem's time to drain, sorted, and the time
// until the last drained.
//
// Totem i is a raw one (raw.go) when raw(i): it sends the same
// operations as its outbox holds, built from the document; raw may be
// nil. The operations the raw totems sent more than once are added to
// *rawResent.
func drain(ctx context.Context, url string, names []string, ids []creds.File, boxes []*outbox.Outbox, queued int,
	timeout time.Duration, sample func(), raw func(int) bool, rawResent *int64) ([]time.Duration, time.Duration, error) {
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stopProfile, err := startProfile()
	if err != nil {
		return nil, 0, err
	}
	defer stopProfile()
	tr := newTracker(len(names), queued)
	var ups sync.WaitGroup
	var raws []*rawTotem
	for i := range names {
		final := func(seq uint64) { tr.final(i, seq) }
		if raw != nil && raw(i) {
			rt, err := newRawTotem(names[i], ids[i].Username, ids[i].Password, hostPort(url), queued, benchkit.ConsentPayload(), final)
			if err != nil {
				return nil, 0, err
			}
			raws = append(raws, rt)
			ups.Go(func() { rt.run(sctx) })
			continue
		}
		up := uplink.New(uplink.Options{Totem: names[i], URL: url, Username: ids[i].Username,
			Password: ids[i].Password, Outbox: boxes[i], TelemetryInterval: time.Hour,
			OnResult: func(e outbox.Entry) {
				if e.Done {
					final(e.Seq)
				}
			}})
		ups.Go(func() { up.Run(sctx) })
	}
	defer func() {
		for _, rt := range raws { // none unless raw, which the caller gives with rawResent
			rt.mu.Lock()
			*rawResent += rt.resent
			rt.mu.Unlock()
		}
	}()
	defer ups.Wait()
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tr.done:
			return tr.times(), time.Since(tr.start), nil
		case <-sctx.Done():
			return nil, 0, fmt.Errorf("%d totems not drained: %w", tr.left.Load(), sctx.Err())
		case <-tick.C:
			if sample != nil {
				sample()
			}
		}
	}
}

// startProfile starts the CPU profile of a drain when -cpuprofile asks
// for one; the function returned stops it.
func startProfile() (func(), error) {
	if cpuProfile == "" {
		return func() {}, nil
	}
	profiles++
	name := cpuProfile
	if profiles > 1 {
		name += "." + strconv.Itoa(profiles)
	}
	f, err := os.Create(name)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// profileHubs fetches, when -cpuprofile asks, profileSeconds of each
// hub's CPU profile, from now; the function returned waits for them.
func profileHubs(hubs []*hubProc) func() {
	var wg sync.WaitGroup
	for i, h := range hubs {
		if h.pprof == "" {
			continue
		}
		name := fmt.Sprintf("%s.hub%d", cpuProfile, i)
		if profiles > 0 {
			name = fmt.Sprintf("%s.%d.hub%d", cpuProfile, profiles+1, i)
		}
		wg.Go(func() {
			resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", h.pprof, profileSeconds))
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench-fleet: hub profile:", err)
				return
			}
			defer resp.Body.Close()
			f, err := os.Create(name)
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench-fleet: hub profile:", err)
				return
			}
			defer f.Close()
			io.Copy(f, resp.Body)
		})
	}
	return wg.Wait
}

// tracker records when each totem had a final result for its whole
// backlog.
type tracker struct {
	queued  int
	start   time.Time
	finals  []atomic.Int64
	seen    [][]atomic.Bool // per totem, per sequence number: a final result came
	drained []atomic.Int64  // ns after start
	left    atomic.Int64
	done    chan struct{} // closed when every totem drained
}

func newTracker(n, queued int) *tracker {
	t := &tracker{queued: queued, start: time.Now(), finals: make([]atomic.Int64, n), seen: make([][]atomic.Bool, n),
		drained: make([]atomic.Int64, n), done: make(chan struct{})}
	for i := range t.seen {
		t.seen[i] = make([]atomic.Bool, queued)
	}
	t.left.Store(int64(n))
	return t
}

// final notes totem i's final result for seq; a duplicate answer is
// final too: each operation counts once.
func (t *tracker) final(i int, seq uint64) {
	if seq < 1 || seq > uint64(t.queued) || t.seen[i][seq-1].Swap(true) {
		return
	}
	if t.finals[i].Add(1) == int64(t.queued) {
		t.drained[i].Store(int64(time.Since(t.start)))
		if t.left.Add(-1) == 0 {
			close(t.done)
		}
	}
}

// times returns each totem's time to drain, sorted.
func (t *tracker) times() []time.Duration {
	out := make([]time.Duration, len(t.drained))
	for i := range t.drained {
		out[i] = time.Duration(t.drained[i].Load())
	}
	slices.Sort(out)
	return out
}

// resent counts the operations the uplinks sent more than once.
func resent(boxes []*outbox.Outbox, queued int) (int64, error) {
	var n int64
	for _, b := range boxes {
		rows, err := b.Recent(queued)
		if err != nil {
			return 0, err
		}
		for _, e := range rows {
			if e.Attempts > 1 {
				n++
			}
		}
	}
	return n, nil
}

// storm runs one fleet size against a totemhub process.
func storm(ctx context.Context, c config, dir string, n int, stderr io.Writer) (result, error) {
	r := result{broker: "embedded", totems: n, ops: n * c.queued}
	names := names(n)
	hp, addr, err := hubOnFreePort(ctx, c.hub, dir, names, 30*time.Second)
	if err != nil {
		return r, err
	}
	stopped := false
	defer func() {
		if !stopped {
			hp.stop()
		}
	}()
	boxes, ids, err := fleetFiles(dir, names, c.queued)
	if err != nil {
		return r, err
	}
	defer closeAll(boxes)
	pid := hp.cmd.Process.Pid
	cpu0, _ := procStat(pid)
	var peakKB int64
	var rawResent int64
	isRaw := func(i int) bool { return c.rawEvery > 0 && i%c.rawEvery == c.rawEvery-1 }
	profiled := profileHubs([]*hubProc{hp})
	defer profiled()
	times, elapsed, err := drain(ctx, "mqtt://"+addr, names, ids, boxes, c.queued, c.timeout, func() {
		if _, kb := procStat(pid); kb > peakKB {
			peakKB = kb
		}
	}, isRaw, &rawResent)
	cpu1, kb := procStat(pid)
	peakKB = max(peakKB, kb)
	stopped = true
	if err := hp.stop(); err != nil {
		fmt.Fprintf(stderr, "bench-fleet: totemhub exit: %v\n", err)
	}
	if err != nil {
		return r, err
	}
	r.slowest, r.median = times[n-1], times[n/2]
	r.opsPerSec = float64(r.ops) / elapsed.Seconds()
	r.rssMB = float64(peakKB) / 1024
	r.cpuUsPerOp = float64((cpu1 - cpu0).Microseconds()) / float64(r.ops)
	if r.resends, err = resent(boxes, c.queued); err != nil {
		return r, err
	}
	r.resends += rawResent
	for i := range names {
		if isRaw(i) {
			r.raw++
		}
	}
	st, err := ingestStats(hp.path)
	if err != nil {
		return r, err
	}
	r.applied, r.dups, r.gaps = int64(st["applied"]), int64(st["duplicates"]), int64(st["gaps"])
	r.dropped, r.full = int64(st["dropped"]), int64(st["queue_full"])
	return r, verify(filepath.Join(dir, "hub", "cms.db"), names, c.queued)
}

// mosqStorm runs the storm on Debian's mosquitto (the ACL of
// deploy/mosquitto) with two hub instances sharing the ingest through
// $share/totemhub. They run in this process: two totemhub processes
// cannot share the embedded CMS's bbolt file (the PostgreSQL backend will
// let them), so here they share one refcms.Store.
func mosqStorm(ctx context.Context, c config, dir string, n int) (result, error) {
	r := result{broker: "mosquitto-2hubs", totems: n, ops: n * c.queued}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return r, err
	}
	names := names(n)
	hubMe, ids, err := mosqUsers(ctx, dir, names)
	if err != nil {
		return r, err
	}
	url, stop, err := startMosquitto(ctx, c, dir)
	if err != nil {
		return r, err
	}
	defer stop()
	store, err := refcms.Open(filepath.Join(dir, "cms.db"), &refcms.Options{Seed: cms.DemoCards()})
	if err != nil {
		return r, err
	}
	defer store.Close()
	hctx, hcancel := context.WithCancel(ctx)
	defer hcancel()
	var hubs []*hub.Hub
	var hw sync.WaitGroup
	defer hw.Wait()
	defer hcancel()
	hubIDs := []string{"totemhub-a", "totemhub-b"}
	if os.Getenv("FLEETHUBS") == "1" {
		hubIDs = hubIDs[:1]
	}
	for _, id := range hubIDs {
		h := hub.New(hub.Options{URL: url, ClientID: id, Username: hubMe.Username, Password: hubMe.Password, Backend: store})
		hubs = append(hubs, h)
		hw.Go(func() { h.Run(hctx) })
		if err := h.AwaitConnection(ctx); err != nil {
			return r, err
		}
	}
	time.Sleep(500 * time.Millisecond) // the subscriptions
	boxes, err := backlogs(dir, names, c.queued)
	if err != nil {
		return r, err
	}
	defer closeAll(boxes)
	times, elapsed, err := drain(ctx, url, names, ids, boxes, c.queued, c.timeout, nil, nil, nil)
	if err != nil {
		return r, err
	}
	r.slowest, r.median = times[n-1], times[n/2]
	r.opsPerSec = float64(r.ops) / elapsed.Seconds()
	for _, h := range hubs {
		st := h.Stats()
		r.applied += st.Applied.Load()
		r.dups += st.Duplicates.Load()
		r.gaps += st.Gaps.Load()
		r.dropped += st.Dropped.Load()
	}
	if r.resends, err = resent(boxes, c.queued); err != nil {
		return r, err
	}
	audit, err := store.Audit()
	if err != nil {
		return r, err
	}
	if err := verifyAudit(audit, names, c.queued); err != nil {
		if os.Getenv("FLEETDEBUG") != "" {
			debugFirst(boxes[0], names[0], audit, c.queued)
		}
		return r, err
	}
	return r, nil
}

// mosqUsers generates the hubs' and the totems' credentials and writes
// them as mosquitto's password file, dir/passwd.
func mosqUsers(ctx context.Context, dir string, names []string) (creds.File, []creds.File, error) {
	hubMe, err := creds.Generate("totemhub", creds.RoleHub)
	if err != nil {
		return hubMe, nil, err
	}
	ids := make([]creds.File, len(names))
	lines := []string{hubMe.Username + ":" + hubMe.Password}
	for i, name := range names {
		if ids[i], err = creds.Generate(name, creds.RoleTotem); err != nil {
			return hubMe, nil, err
		}
		lines = append(lines, name+":"+ids[i].Password)
	}
	passwd := filepath.Join(dir, "passwd")
	if err := os.WriteFile(passwd, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return hubMe, nil, err
	}
	if out, err := exec.CommandContext(ctx, "mosquitto_passwd", "-U", passwd).CombinedOutput(); err != nil {
		return hubMe, nil, fmt.Errorf("mosquitto_passwd: %v %s", err, out)
	}
	return hubMe, ids, nil
}

// startMosquitto starts mosquitto on a free loopback port with dir/passwd
// and c.acl and returns its URL once it listens, and how to stop it.
func startMosquitto(ctx context.Context, c config, dir string) (string, func(), error) {
	url, stop, _, err := startMosquittoPid(ctx, c, dir)
	return url, stop, err
}

// startMosquittoPid is startMosquitto, and mosquitto's pid.
func startMosquittoPid(ctx context.Context, c config, dir string) (string, func(), int, error) {
	acl, err := filepath.Abs(c.acl)
	if err != nil {
		return "", nil, 0, err
	}
	addr, err := freePort()
	if err != nil {
		return "", nil, 0, err
	}
	_, port, _ := net.SplitHostPort(addr)
	// max_queued_messages: what mosquitto holds for a client beyond its
	// in-flight window; its default (1 000) would drop for the hubs.
	conf := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous false\npassword_file %s\nacl_file %s\npersistence false\n"+
		"max_packet_size 262144\nmax_queued_messages 100000\n", port, filepath.Join(dir, "passwd"), acl)
	if os.Getuid() == 0 {
		conf += "user root\n" // as root mosquitto drops to its own user, which cannot read dir
	}
	confPath := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return "", nil, 0, err
	}
	logf, err := os.Create(filepath.Join(dir, "mosquitto.log"))
	if err != nil {
		return "", nil, 0, err
	}
	mq := exec.CommandContext(ctx, "mosquitto", "-c", confPath)
	mq.Stdout, mq.Stderr = logf, logf
	if err := mq.Start(); err != nil {
		logf.Close()
		return "", nil, 0, err
	}
	stop := func() { mq.Process.Kill(); mq.Wait(); logf.Close() }
	for i := 0; ; i++ {
		if cn, err := net.Dial("tcp", addr); err == nil {
			cn.Close()
			return "mqtt://" + addr, stop, mq.Process.Pid, nil
		}
		if i > 250 {
			stop()
			return "", nil, 0, errors.New("mosquitto does not listen; see " + logf.Name())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// debugFirst prints the first totem's outbox and audit (FLEETDEBUG).
func debugFirst(box *outbox.Outbox, name string, audit []refcms.AuditRecord, queued int) {
	rows, _ := box.Recent(queued)
	for _, e := range rows {
		fmt.Fprintf(os.Stderr, "DBG %s seq %d id %s attempts %d done %v res %+v\n", name, e.Seq, e.ID, e.Attempts, e.Done, e.Result)
	}
	for _, a := range audit {
		if a.Totem == name {
			fmt.Fprintf(os.Stderr, "DBG audit %d %s %s\n", a.Seq, a.OpID, a.Protocol)
		}
	}
}

// verify reads the hub's CMS back: each totem's operations 1…queued
// applied once each, in order.
func verify(path string, names []string, queued int) error {
	store, err := refcms.Open(path, &refcms.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	audit, err := store.Audit()
	if err != nil {
		return err
	}
	return verifyAudit(audit, names, queued)
}

func verifyAudit(audit []refcms.AuditRecord, names []string, queued int) error {
	last := make(map[string]uint64, len(names))
	for _, a := range audit {
		if a.Seq != last[a.Totem]+1 {
			return fmt.Errorf("%s: seq %d applied after %d", a.Totem, a.Seq, last[a.Totem])
		}
		last[a.Totem] = a.Seq
	}
	for _, t := range names {
		if last[t] != uint64(queued) {
			return fmt.Errorf("%s: %d of %d applied", t, last[t], queued)
		}
	}
	return nil
}
