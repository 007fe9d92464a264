package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/cms/pgstore/pgtest"
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

// With [store] url set the hub refuses to start (and to provision) and
// says why; it creates no state.
func TestStoreURLRefused(t *testing.T) {
	cfg := storeConfig(t, "postgres://hub:s3cret@db.invalid/totem")
	for _, args := range [][]string{{"--config", cfg}, {"--config", cfg, "provision", "demo-02"}} {
		var out, errw bytes.Buffer
		err := run(context.Background(), args, nil, &out, &errw)
		if !errors.Is(err, errStoreNotWired) || !strings.Contains(err.Error(), "migrate` only") {
			t.Errorf("%v: %v", args, err)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "hub")); !os.IsNotExist(err) {
		t.Errorf("state dir created: %v", err)
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
