package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/cms/pgstore/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"
)

func migrate(ctx context.Context, url string) error {
	_, err := pgstore.Migrate(ctx, url)
	if err != nil {
		return err
	}
	// The test effect's table: what the CMS rules would write.
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, `CREATE TABLE effects (totem text, seq bigint, protocol text, PRIMARY KEY (totem, seq));
		GRANT SELECT, INSERT ON effects TO totem_hub`)
	return err
}

func TestMain(m *testing.M) {
	code := pgtest.Main(m, pgtest.Options{Migrate: migrate})
	if err := goleak.Find(); err != nil && code == 0 {
		fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
		code = 1
	}
	os.Exit(code)
}

// effect is the rules of the tests: it records the operation in effects
// (in the applying transaction), refuses kind "bad" and answers kind
// "online" with data.
func effect(ctx context.Context, tx *pgstore.Tx, op cms.Op, protocol string) (pgstore.Applied, error) {
	tx.Queue(`INSERT INTO effects (totem, seq, protocol) VALUES ($1, $2, $3)`, op.Totem, int64(op.Seq), protocol)
	switch op.Kind {
	case "bad":
		return pgstore.Applied{Rejects: []cms.Reject{{Code: cms.CodeBadPayload, Message: "no"}}}, nil
	case "online":
		return pgstore.Applied{Serial: "S1", Data: map[string]string{"pin_half": "1234"}}, nil
	}
	return pgstore.Applied{Serial: "S1"}, nil
}

func open(t testing.TB, url string) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(context.Background(), url, pgstore.Options{PoolSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func op(totem string, seq uint64, kind string) cms.Op {
	return cms.Op{ID: fmt.Sprintf("%s-id-%d", totem, seq), Totem: totem, Seq: seq, Kind: kind}
}

func query[T any](t testing.TB, url, sql string, args ...any) T {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var v T
	if err := c.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func TestApplyBatch(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	s := open(t, url)
	stamped := op("a", 1, "x")
	stamped.Stamp = &cms.Stamp{Boot: "b1", Mono: 42, Synced: true}
	outs, err := s.ApplyBatch(ctx, []cms.Op{stamped, op("a", 2, "bad"), op("b", 1, "online"), op("a", 3, "x")}, effect)
	if err != nil {
		t.Fatal(err)
	}
	if !outs[0].Accepted || outs[1].Accepted || len(outs[1].Rejects) != 1 || !outs[2].Accepted || string(outs[2].Data) != `{"pin_half":"1234"}` {
		t.Fatalf("outcomes %+v", outs)
	}
	// Protocol numbers: YYMMDD + nine digits, one after the other, a
	// rejected operation numbered too.
	for i, o := range outs {
		if len(o.Protocol) != 15 || !strings.HasSuffix(o.Protocol, fmt.Sprintf("%09d", i+1)) {
			t.Errorf("op %d protocol %q", i, o.Protocol)
		}
	}
	// Duplicates (the stored outcome, data too), a gap, a reused number,
	// an id used again at the next number, in one batch.
	reused := op("a", 4, "x")
	reused.ID = "a-id-1"
	outs2, err := s.ApplyBatch(ctx, []cms.Op{op("a", 2, "bad"), op("b", 1, "online"), op("a", 6, "x"),
		{ID: "other", Totem: "a", Seq: 3, Kind: "x"}, reused, op("a", 5, "x")}, effect)
	if err != nil {
		t.Fatal(err)
	}
	if d := outs2[0]; !d.Duplicate || d.Protocol != outs[1].Protocol || d.Accepted || d.Rejects[0].Code != cms.CodeBadPayload {
		t.Errorf("duplicate of a rejected op: %+v", d)
	}
	if d := outs2[1]; !d.Duplicate || d.Protocol != outs[2].Protocol || string(d.Data) != `{"pin_half":"1234"}` {
		t.Errorf("duplicate of an online op: %+v", d)
	}
	if g := outs2[2]; !g.OutOfOrder || g.Expect != 4 {
		t.Errorf("gap: %+v", g)
	}
	if r := outs2[3]; r.Accepted || r.Rejects[0].Code != cms.CodeSeqReused || r.Protocol != "" {
		t.Errorf("reused number: %+v", r)
	}
	if r := outs2[4]; r.Accepted || r.Rejects[0].Code != cms.CodeSeqReused || r.Protocol != "" {
		t.Errorf("reused id at the next number: %+v", r)
	}
	if o := outs2[5]; !o.Accepted || !strings.HasSuffix(o.Protocol, "000000005") {
		t.Errorf("next op after the consumed number: %+v", o)
	}
	if m := query[int64](t, url, `SELECT (stamp->>'mono_ms')::bigint FROM audit WHERE totem = 'a' AND seq = 1`); m != 42 {
		t.Errorf("audit stamp mono %d", m)
	}
	if c := query[[]string](t, url, `SELECT codes FROM ops WHERE totem = 'a' AND seq = 2`); len(c) != 1 || c[0] != cms.CodeBadPayload {
		t.Errorf("ops codes %v", c)
	}
	if n, _ := s.LastSeq(ctx, "a"); n != 5 {
		t.Errorf("last seq of a = %d, want 5", n)
	}
	if n := query[int64](t, url, `SELECT count(*) FROM effects`); n != 5 {
		t.Errorf("%d effects, want 5 (duplicates and refusals change nothing)", n)
	}
	audit, err := s.Audit(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, a := range audit {
		seqs = append(seqs, a.Seq)
	}
	if fmt.Sprint(seqs) != "[1 2 3 4 5]" || audit[3].Codes[0] != cms.CodeSeqReused || audit[1].Accepted {
		t.Errorf("audit of a: %+v", audit)
	}
	// The gap wrote nothing; the duplicates and the SEQ_REUSED refusal
	// are in the send log, and a repeat counts on its entry.
	if _, err := s.ApplyBatch(ctx, []cms.Op{op("a", 2, "bad")}, effect); err != nil {
		t.Fatal(err)
	}
	if n := query[int64](t, url, `SELECT repeats FROM sendlog WHERE totem = 'a' AND class = 'd' AND seq = 2`); n != 1 {
		t.Errorf("repeats = %d", n)
	}
	if n := query[int64](t, url, `SELECT count(*) FROM sendlog`); n != 3 {
		t.Errorf("%d send log entries, want 3", n)
	}
	if err := s.LogRefused(ctx, []cms.Transmission{{Totem: "a", Seq: 9, OpID: "z", Kind: "x", At: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if n := query[int64](t, url, `SELECT count(*) FROM sendlog WHERE class = 'g'`); n != 1 {
		t.Errorf("%d refusals logged", n)
	}
}

// An op id is scoped to its totem: another totem using it applies its
// own operation.
// A query (the Storico) is numbered in its own series, "C" and the same
// digits, and spends no protocol number (cmsstore.Series), like bbolt.
func TestQueriesSeries(t *testing.T) {
	ctx := context.Background()
	s := open(t, pgtest.DB(t))
	outs, err := s.ApplyBatch(ctx, []cms.Op{op("a", 1, cms.KindHistory), op("a", 2, "x"), op("a", 3, cms.KindHistory)}, effect)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"C%s000000001", "%s000000001", "C%s000000002"} {
		if p := outs[i].Protocol; p != fmt.Sprintf(want, outs[i].At.UTC().Format("060102")) {
			t.Errorf("op %d protocol %q, want %q", i, p, want)
		}
	}
}

func TestIDsPerTotem(t *testing.T) {
	ctx := context.Background()
	s := open(t, pgtest.DB(t))
	a, b := op("a", 1, "x"), op("b", 1, "x")
	b.ID = a.ID
	outs, err := s.ApplyBatch(ctx, []cms.Op{a, b}, effect)
	if err != nil {
		t.Fatal(err)
	}
	if outs[1].Duplicate || !outs[1].Accepted || outs[0].Protocol == outs[1].Protocol {
		t.Fatalf("%+v", outs)
	}
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	url, err := pgtest.Shared(t).NewEmptyDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pgstore.Open(ctx, url, pgstore.Options{}); !errors.Is(err, pgstore.ErrSchema) || !strings.Contains(err.Error(), "totemhub migrate") {
		t.Fatalf("open before migrating: %v", err)
	}
	from, err := pgstore.Migrate(ctx, url)
	if err != nil || from != -1 {
		t.Fatalf("migrate a fresh database: from %d, %v", from, err)
	}
	from, err = pgstore.Migrate(ctx, url)
	if err != nil || from != pgstore.Version() {
		t.Fatalf("migrate again: from %d, %v", from, err)
	}
	s := open(t, url)
	if _, err := s.Apply(ctx, op("a", 1, "x"), nil); err != nil {
		t.Fatal(err)
	}
}

func TestRefuseNewerSchema(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `INSERT INTO goose_db_version (version_id, is_applied) VALUES (999, true)`); err != nil {
		t.Fatal(err)
	}
	_, err = pgstore.Open(ctx, url, pgstore.Options{})
	if !errors.Is(err, pgstore.ErrSchema) || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("open: %v", err)
	}
	if _, err := pgstore.Migrate(ctx, url); !errors.Is(err, pgstore.ErrSchema) || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("migrate: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Shared(t)
	good := pgtest.DB(t)
	u, _ := url.Parse(good)
	db := strings.TrimPrefix(u.Path, "/")
	if err := srv.Exec(ctx, db, `CREATE ROLE `+pgtest.PasswordRole+` LOGIN PASSWORD 'right-secret' IN ROLE totem_hub`); err != nil &&
		!strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	open(t, srv.URLAs(db, pgtest.PasswordRole, "right-secret")) // the right password
	q := url.Values{"host": {srv.Dir}, "port": {fmt.Sprint(srv.Port)}}
	cases := []struct {
		name, url, want string
		unavailable     bool
	}{
		{"not a URL", "mysql://u:pw-secret@h/db", "not a postgres:// URL", false},
		{"bad option", "postgres://u:pw-secret@h/db?sslmode=sometimes", "sslmode", false},
		{"wrong password", srv.URLAs(db, pgtest.PasswordRole, "wrong-secret"), "authentication failed", false},
		{"no database", srv.URLAs("nosuchdb", "postgres", ""), `"nosuchdb" does not exist`, false},
		{"no server (socket)", "postgres://postgres:pw-secret@/db?host=/nonexistent&port=5", "cannot reach", true},
		{"no server (TCP)", "postgres://postgres:pw-secret@127.0.0.1:1/db?connect_timeout=2&sslmode=disable", "cannot reach", true},
		{"no role", "postgres://nobody:pw-secret@/" + db + "?" + q.Encode(), `"nobody" does not exist`, false},
	}
	for _, c := range cases {
		_, err := pgstore.Open(ctx, c.url, pgstore.Options{})
		if err == nil {
			t.Errorf("%s: opened", c.name)
			continue
		}
		msg := err.Error()
		t.Logf("%s: %s", c.name, msg)
		if !strings.Contains(msg, c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if strings.Contains(msg, "secret") {
			t.Errorf("%s: the password is in the error: %v", c.name, err)
		}
		if errors.Is(err, pgstore.ErrUnavailable) != c.unavailable {
			t.Errorf("%s: unavailable = %v: %v", c.name, !c.unavailable, err)
		}
		if _, err := pgstore.Migrate(ctx, c.url); err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: migrate: %v", c.name, err)
		}
	}
}

// The hub's role appends to the audit and can neither change nor remove
// a record; the owner is refused too (trigger).
func TestAuditAppendOnly(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Shared(t)
	url := pgtest.DB(t)
	db := strings.TrimPrefix(mustParse(t, url).Path, "/")
	if err := srv.Exec(ctx, db, `DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hubtest') THEN
		CREATE ROLE hubtest LOGIN IN ROLE totem_hub; END IF; END $$`); err != nil {
		t.Fatal(err)
	}
	s := open(t, srv.URLAs(db, "hubtest", ""))
	if _, err := s.ApplyBatch(ctx, []cms.Op{op("a", 1, "x"), op("a", 2, "x")}, effect); err != nil {
		t.Fatalf("the hub's role applies: %v", err)
	}
	for _, sql := range []string{`UPDATE audit SET accepted = false`, `DELETE FROM audit`, `TRUNCATE audit`} {
		_, err := s.Pool().Exec(ctx, sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("hub role: %s: %v, want permission denied", sql, err)
		}
		if err := srv.Exec(ctx, db, sql); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("owner: %s: %v, want append-only", sql, err)
		}
	}
	if n := query[int64](t, url, `SELECT count(*) FROM audit WHERE accepted`); n != 2 {
		t.Errorf("%d audit records left accepted", n)
	}
}

func mustParse(t testing.TB, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestFleetAndNonces(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	s1, s2 := open(t, url), open(t, url)
	now := time.Now().UTC().Truncate(time.Microsecond)
	u := pgstore.User{Username: "demo-01", Role: "totem", Hash: "h", Created: now, Expires: now.Add(time.Hour)}
	if err := s1.PutUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s2.User(ctx, "demo-01")
	if err != nil || !ok || got != u {
		t.Fatalf("user from the other hub: %+v %v %v", got, ok, err)
	}
	if err := s2.DeleteUser(ctx, "demo-01"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s1.User(ctx, "demo-01"); ok {
		t.Error("deleted user found")
	}
	// Two hubs handed the same command: one admits it.
	res := make(chan bool, 2)
	for _, s := range []*pgstore.Store{s1, s2} {
		go func() {
			ok, err := s.AdmitNonce(ctx, "console", "cmd-1", now.Add(time.Minute))
			if err != nil {
				t.Error(err)
			}
			res <- ok
		}()
	}
	if a, b := <-res, <-res; a == b {
		t.Errorf("admitted %v and %v", a, b)
	}
}

// A statement running past statement_timeout is cancelled: the batch is
// rolled back and the error is ErrUnavailable (the totems send again).
func TestStatementTimeout(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	s, err := pgstore.Open(ctx, url, pgstore.Options{PoolSize: 2, StatementTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	slow := func(ctx context.Context, tx *pgstore.Tx, o cms.Op, protocol string) (pgstore.Applied, error) {
		if _, err := effect(ctx, tx, o, protocol); err != nil {
			return pgstore.Applied{}, err
		}
		_, err := tx.Exec(ctx, `SELECT pg_sleep(5)`)
		return pgstore.Applied{}, err
	}
	_, err = s.ApplyBatch(ctx, []cms.Op{op("a", 1, "x"), op("a", 2, "x")}, slow)
	if !errors.Is(err, pgstore.ErrUnavailable) || !strings.Contains(err.Error(), "57014") {
		t.Fatalf("slow batch: %v", err)
	}
	if n := query[int64](t, url, `SELECT count(*) FROM effects`); n != 0 {
		t.Errorf("%d effects of a rolled-back batch", n)
	}
	outs, err := s.ApplyBatch(ctx, []cms.Op{op("a", 1, "x")}, effect)
	if err != nil || !outs[0].Accepted || outs[0].Duplicate || !strings.HasSuffix(outs[0].Protocol, "000000001") {
		t.Fatalf("after the timeout: %+v %v", outs, err)
	}
}
