package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/aslcns/totem/cms/cmsstore"
	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/pgshare"
)

// openCMS opens the reference CMS: on bbolt in state_dir, or with
// [store] url on PostgreSQL (migrated by `totemhub migrate`; a wrong URL
// or password, a server out of reach, a schema this hub does not know
// are an error that says which); the PostgreSQL store itself is returned
// too (nil on bbolt) for the state all hub processes share: the console
// commands' nonces (sharedNonces), the fleet registry (sync/pgshare). pg,
// when not nil, is that store already open. The console's accounts stay
// in state_dir (sync/pgshare says what else, and why). Closing the CMS
// closes the PostgreSQL store.
func openCMS(ctx context.Context, cfg *config.Totemhub, pg *pgstore.Store, opts *refcms.Options) (*refcms.Store, *pgstore.Store, error) {
	if cfg.Store.URL == "" {
		s, err := refcms.Open(filepath.Join(cfg.StateDir, "cms.db"), opts)
		return s, nil, err
	}
	if pg == nil {
		var err error
		if pg, err = openStore(ctx, cfg); err != nil {
			return nil, nil, err
		}
	}
	s, err := refcms.New(pg.CMS(), opts)
	if err != nil {
		pg.Close()
		return nil, nil, fmt.Errorf("totemhub: %w", err)
	}
	return s, pg, nil
}

// openStore opens the PostgreSQL store of [store] url.
func openStore(ctx context.Context, cfg *config.Totemhub) (*pgstore.Store, error) {
	pg, err := pgstore.Open(ctx, cfg.Store.URL, pgstore.Options{PoolSize: cfg.Store.PoolSize,
		StatementTimeout: cfg.Store.StatementTimeout.Duration})
	if err != nil {
		return nil, fmt.Errorf("totemhub: %w", err)
	}
	return pg, nil
}

// migrate is `totemhub migrate`: it creates or upgrades the PostgreSQL
// schema of [store] url; with --from-bbolt, it then moves a stopped bbolt
// hub's CMS (fromBolt, its cms.db) into the database, which must hold no
// operation yet, and the fleet registry beside it (migrateFleet): the records, every operation with its protocol number
// and outcome, the ledger, the numbering series, the audit and the send
// log, in one transaction. The PostgreSQL hub then answers the totems'
// copies of those operations as the same duplicates and goes on with
// their sequences and the numbers.
func migrate(ctx context.Context, cfg *config.Totemhub, fromBolt string, stdout io.Writer) error {
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
	if fromBolt == "" {
		return nil
	}
	pg, err := pgstore.Open(ctx, cfg.Store.URL, pgstore.Options{StatementTimeout: cfg.Store.StatementTimeout.Duration})
	if err != nil {
		return fmt.Errorf("totemhub migrate: %w", err)
	}
	defer pg.Close()
	var n refcms.Copied
	err = pg.Load(ctx, func(l cmsstore.Loader) error {
		var err error
		n, err = refcms.CopyBolt(fromBolt, l)
		return err
	})
	if err != nil {
		return fmt.Errorf("totemhub migrate --from-bbolt: %w", err)
	}
	fmt.Fprintf(stdout, "moved %s: %d operations of %d totems, %d audit records, %d send log entries, %d cards\n",
		fromBolt, n.Ops, n.Totems, n.Audit, n.SendLog, n.Cards)
	return migrateFleet(ctx, pg, filepath.Dir(fromBolt), stdout)
}

// migrateFleet moves the fleet registry of the stopped bbolt hub whose
// state_dir is dir (fleet.db: the broker users, their locks, the
// enrollment codes; presence.db: every totem's entry) into the database,
// whose registry must be empty, in one transaction. A state_dir without
// them moves nothing.
func migrateFleet(ctx context.Context, pg *pgstore.Store, dir string, stdout io.Writer) error {
	regPath, presPath := filepath.Join(dir, "fleet.db"), filepath.Join(dir, "presence.db")
	var entries []pgstore.FleetEntry
	if _, err := os.Stat(presPath); err == nil {
		all, err := hub.ReadFleetFile(presPath)
		if err != nil {
			return fmt.Errorf("totemhub migrate --from-bbolt: %w", err)
		}
		for _, ts := range all {
			e, err := pgshare.Entry(ts)
			if err != nil {
				return fmt.Errorf("totemhub migrate --from-bbolt: %w", err)
			}
			entries = append(entries, e)
		}
	}
	_, regErr := os.Stat(regPath)
	if regErr != nil && len(entries) == 0 {
		fmt.Fprintf(stdout, "no fleet registry in %s: none moved\n", dir)
		return nil
	}
	counts := map[string]int{}
	err := pg.LoadFleet(ctx, func(tx *pgstore.RegistryTx) error {
		if regErr != nil {
			return nil
		}
		return broker.ReadRegistryFile(regPath, func(bucket, key string, v []byte) error {
			counts[bucket]++
			return tx.Put(bucket, key, v)
		})
	}, entries)
	if err != nil {
		return fmt.Errorf("totemhub migrate --from-bbolt: the fleet registry (the CMS is moved: move the registry "+
			"by hand or start again on an empty database): %w", err)
	}
	fmt.Fprintf(stdout, "moved the fleet registry of %s: %d broker users, %d locks, %d enrollment codes, %d totems' presence\n",
		dir, counts[pgstore.FleetUsers], counts[pgstore.FleetLocks], counts[pgstore.FleetEnroll], len(entries))
	return nil
}
