package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/cms/pgstore/pgserver"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/pgshare"
	"github.com/jackc/pgx/v5"
)

// The scale-out storm: k totemhub processes (the built binary, --broker)
// on Debian's mosquitto, sharing the ingest through $share/totemhub and
// one PostgreSQL (a private server this run starts: initdb + pg_ctl on a
// unix socket, cms/pgstore/pgserver; fsync on unless -pg-nofsync). Each
// hub count gets a fresh database from the migrated template. Measured as
// the other storms, plus the hubs' and PostgreSQL's CPU per operation;
// the ops and audit tables are then read back: lost and applied-twice
// counted, and both must be 0.

// pgResult is one PostgreSQL storm's figures.
type pgResult struct {
	result
	hubs           int
	lost, twice    int64
	pgCPUUsPerOp   float64
	hubsCPUUsPerOp float64 // all hub processes together
	mosqCPUUsPerOp float64
	selfCPUUsPerOp float64 // this process: the totems' outboxes and uplinks
	busy           float64 // the machine's CPUs busy during the storm, 0-1
	gapsPerHub     []int64
	appliedPerHub  []int64
}

// pgStorms starts the private PostgreSQL and runs the storm of n totems
// once per hub count.
func pgStorms(ctx context.Context, c config, dir string, n int, hubCounts []int, stderr io.Writer) ([]pgResult, error) {
	srv, err := pgserver.Start(ctx, pgserver.Options{NoFsync: c.pgNoFsync, Migrate: func(ctx context.Context, url string) error {
		_, err := pgstore.Migrate(ctx, url)
		return err
	}})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := srv.Stop(); err != nil {
			fmt.Fprintln(stderr, "bench-fleet: stop PostgreSQL:", err)
		}
	}()
	var out []pgResult
	for _, k := range hubCounts {
		fmt.Fprintf(stderr, "bench-fleet: %d totems x %d queued, mosquitto, %d totemhub process(es) on PostgreSQL\n", n, c.queued, k)
		r, err := pgStorm(ctx, c, srv, filepath.Join(dir, fmt.Sprintf("pg-%d-%dhubs", n, k)), n, k)
		if err != nil {
			return nil, fmt.Errorf("PostgreSQL, %d hubs, %d totems: %w", k, n, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func pgStorm(ctx context.Context, c config, srv *pgserver.Server, dir string, n, k int) (pgResult, error) {
	r := pgResult{result: result{broker: fmt.Sprintf("mosquitto-pg-%dhub", k), totems: n, ops: n * c.queued}, hubs: k}
	dbURL, names, ids, credFile, err := pgFleet(ctx, srv, dir, n)
	if err != nil {
		return r, err
	}
	url, stopMosq, mosqPid, err := startMosquittoPid(ctx, c, dir)
	if err != nil {
		return r, err
	}
	defer stopMosq()
	var hubs []*hubProc
	defer func() {
		for _, h := range hubs {
			if h != nil {
				h.stop()
			}
		}
	}()
	for i := range k {
		h, err := startPGHub(ctx, c.hub, filepath.Join(dir, fmt.Sprintf("hub%d", i)), url, credFile, dbURL, c.pgPart)
		if err != nil {
			return r, err
		}
		hubs = append(hubs, h)
	}
	time.Sleep(300 * time.Millisecond) // the shared subscriptions
	if c.pgPart && k > 1 {
		time.Sleep(3 * time.Second) // the hubs' shares: a rebalance a second
	}
	boxes, err := backlogs(dir, names, c.queued)
	if err != nil {
		return r, err
	}
	defer closeAll(boxes)
	m0 := readPGMeter(srv, mosqPid, hubs)
	profiled := profileHubs(hubs)
	defer profiled()
	var peakKB int64
	times, elapsed, err := drain(ctx, url, names, ids, boxes, c.queued, c.timeout, func() {
		for _, h := range hubs {
			if _, kb := procStat(h.cmd.Process.Pid); kb > peakKB {
				peakKB = kb
			}
		}
	}, nil, nil)
	if err != nil {
		return r, err
	}
	readPGMeter(srv, mosqPid, hubs).since(m0, &r)
	r.slowest, r.median = times[n-1], times[n/2]
	r.opsPerSec = float64(r.ops) / elapsed.Seconds()
	r.rssMB = float64(peakKB) / 1024
	if r.resends, err = resent(boxes, c.queued); err != nil {
		return r, err
	}
	if err := stopPGHubs(hubs, &r); err != nil {
		return r, err
	}
	if r.lost, r.twice, err = pgVerify(ctx, dbURL, names, c.queued); err != nil {
		return r, err
	}
	if r.lost != 0 || r.twice != 0 {
		return r, fmt.Errorf("%d operations lost, %d applied twice", r.lost, r.twice)
	}
	return r, nil
}

// pgFleet makes a storm's fleet in dir: a database of its own on srv, n
// totems as mosquitto users and in the registry there, and the hubs'
// credentials file.
func pgFleet(ctx context.Context, srv *pgserver.Server, dir string, n int) (dbURL string, totems []string, ids []creds.File, credFile string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, nil, "", err
	}
	if dbURL, err = srv.NewDB(ctx); err != nil {
		return "", nil, nil, "", err
	}
	totems = names(n)
	hubMe, ids, err := mosqUsers(ctx, dir, totems)
	if err != nil {
		return "", nil, nil, "", err
	}
	if err := registerTotems(ctx, dbURL, ids); err != nil {
		return "", nil, nil, "", err
	}
	credFile = filepath.Join(dir, "hub.json")
	return dbURL, totems, ids, credFile, creds.Save(credFile, hubMe)
}

// registerTotems puts the totems in the fleet registry on PostgreSQL, as
// `totemhub provision` through a hub does (sync/pgshare's registry): a
// partitioned hub subscribes to the operations of the totems it knows
// from there. mosquitto checks their secrets from its password file.
func registerTotems(ctx context.Context, dbURL string, ids []creds.File) error {
	pg, err := pgstore.Open(ctx, dbURL, pgstore.Options{PoolSize: 2})
	if err != nil {
		return err
	}
	defer pg.Close()
	reg := pgshare.Registry(pg)
	now := time.Now().UTC()
	for _, id := range ids {
		hash, err := creds.Hash(id.Password)
		if err != nil {
			return err
		}
		if err := reg.Put(broker.User{Username: id.Username, Role: creds.RoleTotem, Hash: hash, Created: now}); err != nil {
			return err
		}
	}
	return nil
}

// pgMeter is the CPU spent so far by PostgreSQL, mosquitto, the hub
// processes and this one, and by the whole machine.
type pgMeter struct {
	pg, mq, hubs, self time.Duration
	busy, all          int64
}

func readPGMeter(srv *pgserver.Server, mosqPid int, hubs []*hubProc) pgMeter {
	m := pgMeter{pg: pgCPU(srv)}
	m.mq, _ = procStat(mosqPid)
	for _, h := range hubs {
		cpu, _ := procStat(h.cmd.Process.Pid)
		m.hubs += cpu
	}
	m.self, _ = procStat(os.Getpid())
	m.busy, m.all = machineCPU()
	return m
}

// since sets r's CPU figures per operation from m0 to m.
func (m pgMeter) since(m0 pgMeter, r *pgResult) {
	ops := float64(r.ops)
	r.hubsCPUUsPerOp = float64((m.hubs - m0.hubs).Microseconds()) / ops
	r.cpuUsPerOp = r.hubsCPUUsPerOp
	r.pgCPUUsPerOp = float64((m.pg - m0.pg).Microseconds()) / ops
	r.mosqCPUUsPerOp = float64((m.mq - m0.mq).Microseconds()) / ops
	r.selfCPUUsPerOp = float64((m.self - m0.self).Microseconds()) / ops
	if m.all > m0.all {
		r.busy = float64(m.busy-m0.busy) / float64(m.all-m0.all)
	}
}

// stopPGHubs stops every hub process and adds what their logs say they
// applied, refused and dropped to r.
func stopPGHubs(hubs []*hubProc, r *pgResult) error {
	for i, h := range hubs {
		hubs[i] = nil
		if err := h.stop(); err != nil {
			return fmt.Errorf("totemhub %d: %v (log %s)", i, err, h.path)
		}
		st, err := ingestStats(h.path)
		if err != nil {
			return err
		}
		r.applied += int64(st["applied"])
		r.appliedPerHub = append(r.appliedPerHub, int64(st["applied"]))
		r.gapsPerHub = append(r.gapsPerHub, int64(st["gaps"]))
		r.dups += int64(st["duplicates"])
		r.gaps += int64(st["gaps"])
		r.dropped += int64(st["dropped"])
	}
	return nil
}

// pgVerify reads the ops and audit tables back: each totem's operations
// 1…queued applied once each. lost counts the numbers without an applied
// row, twice the numbers applied (audited) more than once.
func pgVerify(ctx context.Context, dbURL string, names []string, queued int) (lost, twice int64, err error) {
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, 0, err
	}
	defer db.Close(context.Background())
	var applied int64
	if err := db.QueryRow(ctx, `SELECT count(DISTINCT (totem, seq)) FROM ops WHERE totem = ANY($1) AND seq BETWEEN 1 AND $2`,
		names, queued).Scan(&applied); err != nil {
		return 0, 0, err
	}
	if err := db.QueryRow(ctx, `SELECT coalesce(sum(c - 1), 0) FROM (SELECT count(*) AS c FROM audit WHERE totem = ANY($1)
		GROUP BY totem, seq HAVING count(*) > 1) d`, names).Scan(&twice); err != nil {
		return 0, 0, err
	}
	var rows, audited int64
	if err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM ops), (SELECT count(*) FROM audit WHERE totem = ANY($1))`, names).
		Scan(&rows, &audited); err != nil {
		return 0, 0, err
	}
	want := int64(len(names) * queued)
	if rows != want || audited != want+twice {
		return want - applied, twice, fmt.Errorf("ops table has %d rows, audit %d, want %d", rows, audited, want)
	}
	return want - applied, twice, nil
}

// pgCPU is the CPU time of the PostgreSQL server: the postmaster's, its
// reaped children's, and its live children's (backends, walwriter…).
func pgCPU(srv *pgserver.Server) time.Duration {
	b, err := os.ReadFile(filepath.Join(srv.Dir, "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	pm, _ := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	total := procCPU(pm, true)
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range dirs {
		s, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(s), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(s)[i+2:])
		if len(f) > 1 && f[1] == strconv.Itoa(pm) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			total += procCPU(pid, false)
		}
	}
	return total
}

// procCPU reads utime+stime of pid, and with children the CPU of its
// reaped children too.
func procCPU(pid int, children bool) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 15 {
		return 0
	}
	var t int64
	fields := []int{11, 12}
	if children {
		fields = append(fields, 13, 14)
	}
	for _, k := range fields {
		v, _ := strconv.ParseInt(f[k], 10, 64)
		t += v
	}
	return time.Duration(t) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// machineCPU reads the busy and total jiffies of all CPUs (/proc/stat).
func machineCPU() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// startPGHub starts one totemhub on the external broker url with the
// PostgreSQL store and waits until its ingest subscribed.
func startPGHub(ctx context.Context, bin, dir, url, credFile, dbURL string, partition bool) (*hubProc, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`state_dir = %q
[broker]
credentials_file = %q
tls_listen = ""
[fleet]
console = ""
provision = []
credentials_dir = %q
[http]
listen = ""
[store]
url = %q
partition = %t
[log]
level = "info"
format = "json"
`, filepath.Join(dir, "state"), credFile, filepath.Join(dir, "creds"), dbURL, partition)
	h, err := launchHub(bin, dir, cfg, "--broker", url)
	if err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(time.Minute); ; {
		if b, _ := os.ReadFile(h.path); strings.Contains(string(b), `"ingest subscribed"`) {
			return h, nil
		}
		if err := h.pause(ctx); err != nil {
			return nil, err
		}
		if time.Now().After(deadline) {
			h.stop()
			return nil, errors.New("totemhub's ingest did not subscribe in a minute; see " + h.path)
		}
	}
}

// pgReport prints the PostgreSQL rows: a table, then key=value lines.
func pgReport(w io.Writer, c config, rs []pgResult) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintln(w)
	fsync := "on"
	if c.pgNoFsync {
		fsync = "off"
	}
	part := ""
	if c.pgPart {
		part = ", partition = true"
	}
	fmt.Fprintf(w, "mosquitto + PostgreSQL (private server, fsync %s), totemhub processes with --broker and one [store] url%s:\n", fsync, part)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "hubs\ttotems\tqueued\tops/s\tslowest s\tmedian s\tlost\ttwice\tacked drops\tduplicates\tgap refusals\tresent\tapplied per hub\thubs CPU µs/op\tPostgreSQL CPU µs/op\tmosquitto CPU µs/op\ttotems (bench) CPU µs/op\tmachine busy %\thub peak RSS MB")
	for _, r := range rs {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%.0f\t%.2f\t%.2f\t%d\t%d\t%d\t%d\t%d\t%d\t%v\t%.1f\t%.1f\t%.1f\t%.1f\t%.0f\t%.1f\n", r.hubs, r.totems, c.queued,
			r.opsPerSec, r.slowest.Seconds(), r.median.Seconds(), r.lost, r.twice, r.dropped, r.dups, r.gaps, r.resends,
			r.appliedPerHub, r.hubsCPUUsPerOp, r.pgCPUUsPerOp, r.mosqCPUUsPerOp, r.selfCPUUsPerOp, 100*r.busy, r.rssMB)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, r := range rs {
		suffix := fmt.Sprintf("%d_pg_%dhub", r.totems, r.hubs)
		if r.hubs > 1 {
			suffix += "s"
		}
		figures(w, suffix, append(r.speed(),
			figure{"lost", "%d", r.lost},
			figure{"twice", "%d", r.twice},
			figure{"drops", "%d", r.dropped},
			figure{"gaps", "%d", r.gaps},
			figure{"hub_cpu_us_per_op", "%.1f", r.hubsCPUUsPerOp},
			figure{"pg_cpu_us_per_op", "%.1f", r.pgCPUUsPerOp},
			figure{"mosquitto_cpu_us_per_op", "%.1f", r.mosqCPUUsPerOp},
			figure{"totems_cpu_us_per_op", "%.1f", r.selfCPUUsPerOp},
			figure{"machine_busy_pct", "%.0f", 100 * r.busy})...)
	}
}
