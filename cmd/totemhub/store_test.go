package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/cms/pgstore/pgtest"
	"github.com/jackc/pgx/v5"
)

// storeConfig writes the configuration of a hub on the database url
// ("": none) and returns its path.
func storeConfig(t *testing.T, url string) string {
	t.Helper()
	c := hubConf{dir: t.TempDir(), dbURL: url, noHTTP: true}
	writeConf(t, c)
	return c.path()
}

// With [store] url set the hub serves with its CMS on PostgreSQL (the
// demo cards and the key of the codes in the database, no cms.db in
// state_dir); on a database not migrated it refuses to start and says
// what to do.
func TestServesOnPostgreSQL(t *testing.T) {
	ctx := context.Background()
	_, url := emptyDB(t, ctx, pgtest.Options{})
	conf := hubConf{dir: t.TempDir(), dbURL: url, noHTTP: true}
	writeConf(t, conf)
	cfg := conf.path()
	var out, errw bytes.Buffer
	if err := run(ctx, []string{"--config", cfg}, nil, &out, &errw); !errors.Is(err, pgstore.ErrSchema) ||
		!strings.Contains(err.Error(), "totemhub migrate") {
		t.Fatalf("on a database not migrated: %v", err)
	}
	if err := run(ctx, []string{"--config", cfg, "migrate"}, nil, &out, &errw); err != nil {
		t.Fatal(err)
	}
	startTestHub(t, ctx, conf).stop()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var cards, secrets int
	if err := c.QueryRow(ctx, `SELECT (SELECT count(*) FROM cards), (SELECT count(*) FROM meta WHERE name = 'secret')`).
		Scan(&cards, &secrets); err != nil || cards != len(cms.DemoCards()) || secrets != 1 {
		t.Fatalf("cards %d, secret %d in the database: %v", cards, secrets, err)
	}
	if _, err := os.Stat(filepath.Join(conf.state(), "cms.db")); !os.IsNotExist(err) {
		t.Errorf("cms.db in state_dir: %v", err)
	}
}

func TestMigrateCommand(t *testing.T) {
	ctx := context.Background()
	_, url := emptyDB(t, ctx, pgtest.Options{})
	cfg := storeConfig(t, url)
	for _, want := range []string{"created at version", "already at version"} {
		var out, errw bytes.Buffer
		if err := run(ctx, []string{"--config", cfg, "migrate"}, nil, &out, &errw); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), want) {
			t.Errorf("migrate said %q, want %q", out.String(), want)
		}
	}
	s, err := pgstore.Open(ctx, url, pgstore.Options{})
	if err != nil {
		t.Fatalf("open after migrate: %v", err)
	}
	s.Close()
	var out, errw bytes.Buffer
	err = run(ctx, []string{"--config", storeConfig(t, ""), "migrate"}, nil, &out, &errw)
	if err == nil || !strings.Contains(err.Error(), "url is empty") {
		t.Errorf("migrate with no url: %v", err)
	}
	err = run(ctx, []string{"--config", storeConfig(t, "postgres://hub:s3cret@/x?host=/nonexistent"), "migrate"}, nil, &out, &errw)
	if err == nil || !strings.Contains(err.Error(), "cannot reach") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("migrate with no server: %v", err)
	}
}
