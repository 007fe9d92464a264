package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/cms/pgstore/pgtest"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/jackc/pgx/v5"
)

// A whole totemhub on PostgreSQL loses its database in the middle of a
// totem's stream (pg_ctl stop -m immediate): it keeps its broker
// connection, answers the totem's operations transport "refused" (none
// final, none lost: the outbox keeps them), /readyz says 503 and why
// while the broker check stays ok; when PostgreSQL is back it recovers by
// itself: /readyz 200 and every operation applied exactly once, in the
// totem's order.
func TestHubLosesPostgreSQL(t *testing.T) {
	const before, during = 30, 30
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, dbURL := migratedDB(t, ctx, pgtest.Options{}) // fsync on: it is stopped like a crash
	dir := t.TempDir()
	h := startTestHub(t, ctx, hubConf{dir: dir, dbURL: dbURL, provision: []string{"t-pg"}})
	logs := h.logs
	get := func(path string) (int, string) { t.Helper(); return h.getStatus(t, path) }
	metric := func(name string) int {
		t.Helper()
		_, body := get("metrics")
		m := regexp.MustCompile(`(?m)^` + name + ` (\d+)$`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("/metrics has no %s", name)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	waitFor := func(what string, cond func() bool) { t.Helper(); until(t, ctx, what, cond, h) }

	id := loadCreds(t, filepath.Join(dir, "creds", "t-pg.json"))
	box := consentBox(t, filepath.Join(dir, "t-pg.db"), 0)
	var ids []string
	enqueue := func(n int) { ids = append(ids, enqueueConsents(t, box, n)...) }
	depth := func() int {
		q, err := box.Stats()
		if err != nil {
			t.Fatal(err)
		}
		return int(q.Depth)
	}
	enqueue(before)
	stopUplink := startUplink(t, ctx, id, h.addr, box, "", "")
	waitFor("the first operations applied", func() bool { return depth() == 0 })
	if code, body := get("readyz"); code != 200 || body != "broker: ok\nstore: ok\n" {
		t.Fatalf("/readyz before: %d %q", code, body)
	}

	// The database goes away like a crash; the totem goes on working.
	if err := srv.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	downAt, refusedBefore := time.Now(), metric("totemhub_ops_store_refusals_total")
	enqueue(during)
	waitFor("operations answered refused", func() bool { return metric("totemhub_ops_store_refusals_total") >= during })
	for i, opID := range ids[before:] {
		e, err := box.Get(opID)
		if err != nil {
			t.Fatal(err)
		}
		if e.Done || (i == 0 && (e.Result == nil || e.Result.Transport.Status != protocol.TransportRefused)) {
			t.Fatalf("operation %d while the database is down: done %v, result %+v", before+i+1, e.Done, e.Result)
		}
	}
	if n := depth(); n != during {
		t.Fatalf("%d operations pending while the database is down, want %d", n, during)
	}
	var code int
	var body string
	waitFor("/readyz not ready", func() bool { code, body = get("readyz"); return code == http.StatusServiceUnavailable })
	if !strings.Contains(body, "broker: ok\n") || !strings.Contains(body, "store: ") || strings.Contains(body, "store: ok") {
		t.Fatalf("/readyz with the database down: %d %q", code, body)
	}
	t.Logf("/readyz with the database down: %q", body)

	// The figure the worker's pause keeps down: refusals a second while
	// the totem resends at once.
	t.Logf("%d refusals in %v with the database down", metric("totemhub_ops_store_refusals_total")-refusedBefore,
		time.Since(downAt).Round(time.Millisecond))

	// Back: nothing to restart.
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor("the backlog applied", func() bool { return depth() == 0 })
	waitFor("/readyz ready again", func() bool { code, body = get("readyz"); return code == 200 })
	// The fleet registry on the same database: its writes were refused
	// while it was down (logged once), kept, and written once it is back.
	waitFor("the fleet registry written again", func() bool {
		return strings.Contains(logs.String(), `msg="fleet registry written and read again"`)
	})
	if n := strings.Count(logs.String(), `msg="fleet registry not written or read: retrying every second"`); n != 1 {
		t.Errorf("the fleet registry's outage logged %d times, want once", n)
	}
	stopUplink()
	h.stop()
	if n := strings.Count(logs.String(), `msg="ingest subscribed"`); n != 1 {
		t.Fatalf("the hub subscribed %d times: its broker connection did not stay up", n)
	}

	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, `SELECT seq, op_id, protocol FROM ops WHERE totem = $1 ORDER BY seq`, id.Username)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	last := ""
	for rows.Next() {
		var seq int
		var op, prot string
		if err := rows.Scan(&seq, &op, &prot); err != nil {
			t.Fatal(err)
		}
		if n >= len(ids) || seq != n+1 || op != ids[n] || prot <= last {
			t.Fatalf("applied #%d: seq %d op %s protocol %s after %s", n+1, seq, op, prot, last)
		}
		last = prot
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != before+during {
		t.Fatalf("%d operations applied, want %d", n, before+during)
	}
	var lastSeq int
	var status string
	if err := c.QueryRow(ctx, `SELECT last_seq, entry->>'status' FROM fleet_totems WHERE totem = $1`, id.Username).
		Scan(&lastSeq, &status); err != nil || lastSeq != before+during || status == "" {
		t.Fatalf("the fleet registry's entry of the totem: last_seq %d status %q, %v; want %d", lastSeq, status, err, before+during)
	}
}

// With [store] url every hub process's record of console commands is the
// database's (no commands.db in state_dir): a command one admitted, the
// other refuses as replayed. On bbolt each keeps its own.
func TestHubsShareCommandRecord(t *testing.T) {
	ctx := context.Background()
	_, dbURL := migratedDB(t, ctx, pgtest.Options{NoFsync: true})
	admit := func(pg bool) [2]error {
		var errs [2]error
		now := time.Now()
		for i := range errs {
			s := &server{cfg: &config.Totemhub{StateDir: t.TempDir()}, log: slog.New(slog.DiscardHandler)}
			defer s.undo.Run()
			if pg {
				p, err := pgstore.Open(ctx, dbURL, pgstore.Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				s.pg = p
			}
			_, rec, err := s.consoleVerifier()
			if err != nil {
				t.Fatal(err)
			}
			errs[i] = rec.Admit("ops-1", "0123456789abcdef", now, now.Add(time.Minute))
			if _, err := os.Stat(filepath.Join(s.cfg.StateDir, "commands.db")); pg != os.IsNotExist(err) {
				t.Errorf("store on PostgreSQL %v: commands.db in state_dir: %v", pg, err)
			}
		}
		return errs
	}
	var r *cmdsig.Refusal
	if errs := admit(true); errs[0] != nil || !errors.As(errs[1], &r) || r.Code != cmdsig.CodeReplayed {
		t.Fatalf("two hubs on one database: %v, %v; want nil, replayed", errs[0], errs[1])
	}
	if errs := admit(false); errs[0] != nil || errs[1] != nil {
		t.Fatalf("two hubs on bbolt: %v, %v", errs[0], errs[1])
	}
}
