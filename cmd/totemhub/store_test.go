package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/cms/pgstore/pgtest"
	"github.com/jackc/pgx/v5"
)

func storeConfig(t *testing.T, url string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "totemhub.toml")
	doc := fmt.Sprintf("state_dir = %q\n[store]\nurl = %q\n[broker]\ntls_listen = \"\"\n[http]\nlisten = \"\"\n",
		filepath.Join(dir, "hub"), url)
	if err := os.WriteFile(cfg, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// syncBuffer is a bytes.Buffer the hub's logger and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// With [store] url set the hub serves with its CMS on PostgreSQL (the
// demo cards and the key of the codes in the database, no cms.db in
// state_dir); on a database not migrated it refuses to start and says
// what to do.
func TestServesOnPostgreSQL(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Private(t, pgtest.Options{})
	url, err := srv.NewEmptyDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "totemhub.toml")
	doc := fmt.Sprintf("state_dir = %q\n[store]\nurl = %q\n[broker]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"\"\n"+
		"[fleet]\ncredentials_dir = %q\nprovision = []\nconsole = \"\"\n[http]\nlisten = \"\"\n",
		filepath.Join(dir, "hub"), url, filepath.Join(dir, "creds"))
	if err := os.WriteFile(cfg, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errw bytes.Buffer
	if err := run(ctx, []string{"--config", cfg}, nil, &out, &errw); !errors.Is(err, pgstore.ErrSchema) ||
		!strings.Contains(err.Error(), "totemhub migrate") {
		t.Fatalf("on a database not migrated: %v", err)
	}
	if err := run(ctx, []string{"--config", cfg, "migrate"}, nil, &out, &errw); err != nil {
		t.Fatal(err)
	}
	hctx, stop := context.WithCancel(ctx)
	defer stop()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(hctx, []string{"--config", cfg}, nil, &out, &logs) }()
	for i := 0; !strings.Contains(logs.String(), "totemhub running"); i++ {
		select {
		case err := <-done:
			t.Fatalf("the hub stopped: %v\n%s", err, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if i == 1200 {
			t.Fatalf("the hub did not start in 60 s:\n%s", logs.String())
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
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
	if _, err := os.Stat(filepath.Join(dir, "hub", "cms.db")); !os.IsNotExist(err) {
		t.Errorf("cms.db in state_dir: %v", err)
	}
}

func TestMigrateCommand(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Private(t, pgtest.Options{})
	url, err := srv.NewEmptyDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
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
