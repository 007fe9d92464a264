package refcms

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/cmsstore"
	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/cms/pgstore/pgtest"
	"github.com/jackc/pgx/v5"
)

// The rules suite runs on both stores: first on bbolt, then the test
// binary runs itself again with storeEnv=pg, on a private PostgreSQL
// (pgtest: one database per store path). Tests that reach bbolt's own
// records, or what only the bbolt store does yet, say so with
// bboltOnly.
const storeEnv = "REFCMS_TEST_STORE"

var onPG = os.Getenv(storeEnv) == "pg"

func TestMain(m *testing.M) {
	if onPG {
		os.Exit(pgtest.Main(m, pgtest.Options{NoFsync: true, Migrate: func(ctx context.Context, url string) error {
			_, err := pgstore.Migrate(ctx, url)
			return err
		}}))
	}
	code := m.Run()
	if f := flag.Lookup("test.fuzz"); code == 0 && os.Getenv(storeEnv) == "" && (f == nil || f.Value.String() == "") {
		code = runOnPG() // not while fuzzing: the fuzzer runs once
	}
	os.Exit(code)
}

// runOnPG runs this test binary again, with the same flags, on
// PostgreSQL.
func runOnPG() int {
	fmt.Println("refcms: the same tests on PostgreSQL (" + storeEnv + "=pg)")
	var args []string
	for _, a := range os.Args[1:] {
		if !strings.Contains(a, "profile") { // the first run writes the profiles
			args = append(args, a)
		}
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), storeEnv+"=pg")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// bboltOnly skips a test that runs only on the bbolt store.
func bboltOnly(t testing.TB, why string) {
	t.Helper()
	if onPG {
		t.Skip("bbolt only: " + why)
	}
}

var (
	pgMu   sync.Mutex
	pgDBs  = map[string]string{} // store path → database URL
	pgFree []string              // databases emptied, to use again
)

// pgDB returns an empty migrated database: one a finished test left,
// emptied, or a new one (CREATE DATABASE takes most of a second here;
// emptying one, milliseconds). It is emptied and given back when t ends.
func pgDB(t testing.TB) string {
	pgMu.Lock()
	defer pgMu.Unlock()
	var url string
	if n := len(pgFree); n > 0 {
		url, pgFree = pgFree[n-1], pgFree[:n-1]
	} else {
		url = pgtest.DB(t)
	}
	t.Cleanup(func() {
		if err := emptyDB(url); err != nil {
			t.Error(err)
			return
		}
		pgMu.Lock()
		pgFree = append(pgFree, url)
		pgMu.Unlock()
	})
	return url
}

// emptyDB deletes every row of the database at url but the schema's own
// (the goose table, the counters' names), sets the counters to zero and
// restarts the sequences: as good as new. The audit's trigger that keeps
// it append-only does not fire in replica mode (superuser only).
func emptyDB(url string) error {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, `SET session_replication_role = replica;
		DO $$
		DECLARE r record;
		BEGIN
			FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public'
				AND tablename NOT IN ('goose_db_version', 'counters') LOOP
				EXECUTE format('DELETE FROM %I', r.tablename);
			END LOOP;
			FOR r IN SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'
				AND sequencename NOT LIKE 'goose%' LOOP
				EXECUTE format('ALTER SEQUENCE %I RESTART', r.sequencename);
			END LOOP;
		END $$;
		UPDATE counters SET value = 0;`)
	return err
}

// openAt opens the store the test names by path: the bbolt file, or on
// PostgreSQL the database made for that path (the same one when the test
// opens it again).
func openAt(t testing.TB, path string, opts *Options) (*Store, error) {
	if !onPG {
		return Open(path, opts)
	}
	pgMu.Lock()
	url, ok := pgDBs[path]
	if !ok {
		pgMu.Unlock()
		url = pgDB(t)
		pgMu.Lock()
		pgDBs[path] = url
	}
	pgMu.Unlock()
	pg, err := pgstore.Open(context.Background(), url, pgstore.Options{PoolSize: 4})
	if err != nil {
		return nil, err
	}
	s, err := New(pg.CMS(), opts)
	if err != nil {
		pg.Close()
	}
	return s, err
}

// Two hub processes (two stores, two pools) on one PostgreSQL apply
// reader requests of four totems on one card at the same time: every
// request counts (no lost update of the card's counter), every protocol
// number is given once and none is skipped.
func TestTwoHubsOneCard(t *testing.T) {
	if !onPG {
		t.Skip("PostgreSQL only: two processes sharing one store")
	}
	path := filepath.Join(t.TempDir(), "cms.db")
	var hubs [2]*Store
	for i := range hubs {
		s, err := openAt(t, path, &Options{Seed: cms.DemoCards()})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		hubs[i] = s
	}
	const totems, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, totems)
	for k := range totems {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, totem := hubs[k%2], fmt.Sprintf("t%d", k)
			for seq := 1; seq <= each; seq++ {
				req := goodReader()
				req.Payment.Reference = fmt.Sprintf("PAG-%s-%03d", totem, seq)
				b, _ := json.Marshal(req)
				out, err := s.Apply(context.Background(), cms.Op{ID: fmt.Sprintf("%s-%d", totem, seq), Totem: totem,
					Seq: uint64(seq), Kind: cms.KindReader, Payload: b, Received: now})
				if err != nil || !out.Accepted {
					errs <- fmt.Errorf("%s seq %d: %+v, %v", totem, seq, out, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if c, err := hubs[0].Card(activeSerial); err != nil || c.Readers != totems*each {
		t.Fatalf("readers %d, want %d (%v)", c.Readers, totems*each, err)
	}
	audit, err := hubs[1].Audit()
	if err != nil || len(audit) != totems*each {
		t.Fatalf("audit %d records, %v", len(audit), err)
	}
	seen := map[string]bool{}
	for _, a := range audit {
		seen[a.Protocol] = true
	}
	for n := 1; n <= totems*each; n++ {
		if p := cmsstore.Number("", now, uint64(n)); !seen[p] {
			t.Fatalf("protocol %s missing (%d distinct)", p, len(seen))
		}
	}
}

// Consents given one after the other in one batch keep each the one
// before as the previous record, and a cancellation in the same batch
// puts that one back: as if applied one by one (PostgreSQL writes a
// batch's consents together).
func TestConsentsInOneBatch(t *testing.T) {
	e := newEnv(t, nil)
	e.mustAccept(cms.KindConsent, corrected(false)) // id 1
	ops := []cms.Op{
		e.op(cms.KindConsent, goodRequest()),                            // id 2
		e.op(cms.KindConsent, corrected(false)),                         // id 3
		e.op(cms.KindCancellation, cms.CancellationRequest{Ref: id(3)}), // id 4: back to id 2
		e.op(cms.KindConsent, corrected(true)),                          // id 5
		e.op(cms.KindConsent, corrected(false)),                         // id 6
	}
	outs, err := e.s.ApplyBatch(context.Background(), ops)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range outs {
		if !o.Accepted {
			t.Fatalf("op %d: %+v", i, o)
		}
	}
	r, err := e.s.Consents(activeSerial)
	if err != nil || r.OpID != id(6) || r.Consents[0].Given || r.Previous == nil || r.Previous.OpID != id(5) {
		t.Fatalf("consents %+v, %v", r, err)
	}
	outs, err = e.s.ApplyBatch(context.Background(), []cms.Op{
		e.op(cms.KindCancellation, cms.CancellationRequest{Ref: id(6)}), // id 7: back to id 5
		e.op(cms.KindConsent, goodRequest()),                            // id 8
	})
	if err != nil || !outs[0].Accepted || !outs[1].Accepted {
		t.Fatalf("%+v, %v", outs, err)
	}
	if r, err := e.s.Consents(activeSerial); err != nil || r.OpID != id(8) || r.Previous == nil || r.Previous.OpID != id(5) {
		t.Fatalf("consents %+v, %v", r, err)
	}
}
