package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/config"
)

// errStoreNotWired is the refusal to serve (or provision) with [store]
// url set: the PostgreSQL store has its schema in this version, not yet
// the hub's ingest, and silently running on bbolt instead would split a
// fleet's state between the two.
var errStoreNotWired = errors.New("totemhub: [store] url is set, but the PostgreSQL store is for `totemhub migrate` only in this version: the hub runs on bbolt in state_dir (leave url empty)")

// migrate is `totemhub migrate`: it creates or upgrades the PostgreSQL
// schema of [store] url.
func migrate(ctx context.Context, cfg *config.Totemhub, stdout io.Writer) error {
	if cfg.Store.URL == "" {
		return errors.New("totemhub migrate: [store] url is empty: the bbolt store in state_dir needs no migration")
	}
	from, err := pgstore.Migrate(ctx, cfg.Store.URL)
	if err != nil {
		return fmt.Errorf("totemhub migrate: %w", err)
	}
	switch to := pgstore.Version(); {
	case from == to:
		fmt.Fprintf(stdout, "PostgreSQL schema already at version %d\n", to)
	case from < 0:
		fmt.Fprintf(stdout, "PostgreSQL schema created at version %d\n", to)
	default:
		fmt.Fprintf(stdout, "PostgreSQL schema migrated from version %d to %d\n", from, to)
	}
	return nil
}
