// Package pgshare puts the fleet registry of a hub whose state is on
// PostgreSQL ([store] url) in the database every hub process shares
// (cms/pgstore, migration 00003): the broker users with their locks and
// enrollment codes (Registry: sync/broker.RegistryStore) and the fleet's
// presence (Presence: sync/hub.SharedFleetStore). cms/pgstore knows them
// as JSON records, since cms may not import sync; this package adapts.
//
// What stays in each hub's state_dir, and why: the hub's own keys and
// certificates (totemhub.key, the CA of the embedded broker, the ops
// listener's: secrets a deployment hands to each machine, never rows);
// the ops console's accounts and the technician set (users.json,
// technicians.json: TOTP secrets, provisioned per hub with `totemhub
// user`); the rollout jobs (updates/), whose progress is driven by the
// hub that runs them; the central audit of console commands (audit.db,
// per hub: each records what it executed); the record of secrets given
// to mosquitto's dynamic-security plugin (dynsec.db: the worst a hub
// without it does is give a secret again); and the credential events
// counted since the hub started (per process, like every counter).
package pgshare

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/hub"
)

// Timeout bounds one read or write of the registry (the pool's statement
// timeout applies too): the embedded broker authenticates a client on
// its connection's goroutine.
const Timeout = 10 * time.Second

// Registry returns the broker user registry kept in pg. Closing the
// registry leaves pg open.
func Registry(pg *pgstore.Store) *broker.Registry {
	return broker.NewRegistry(regStore{pg})
}

type regStore struct{ pg *pgstore.Store }

func (r regStore) View(fn func(broker.RegistryTx) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	return r.pg.RegistryView(ctx, func(tx *pgstore.RegistryTx) error { return fn(tx) })
}

func (r regStore) Update(key string, fn func(broker.RegistryTx) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	return r.pg.RegistryUpdate(ctx, key, func(tx *pgstore.RegistryTx) error { return fn(tx) })
}

func (regStore) Close() error { return nil }

// Presence returns the fleet registry's store kept in pg
// (hub.NewFleet). Closing it leaves pg open.
func Presence(pg *pgstore.Store) hub.SharedFleetStore { return presence{pg} }

type presence struct{ pg *pgstore.Store }

// lastJSON is the half of an entry only the hub that applied the
// operation knows.
type lastJSON struct {
	Last        *hub.LastOp `json:"last"`
	ClockSynced *bool       `json:"clock_synced,omitempty"`
}

// Entry splits ts into the two halves fleet_totems merges apart.
func Entry(ts hub.TotemStatus) (pgstore.FleetEntry, error) {
	e := pgstore.FleetEntry{Totem: ts.Totem, Seen: ts.LastSeen}
	if ts.Last != nil {
		b, err := json.Marshal(lastJSON{Last: ts.Last, ClockSynced: ts.ClockSynced})
		if err != nil {
			return e, err
		}
		e.Last, e.LastSeq = b, ts.Last.Seq
	}
	ts.Last, ts.ClockSynced = nil, nil
	ts.Alerts, ts.CredentialsExpire, ts.ReissueCounter = nil, time.Time{}, false // computed when listed
	b, err := json.Marshal(ts)
	e.Entry = b
	return e, err
}

func (p presence) Load() ([]hub.TotemStatus, error) {
	all, _, err := p.Changed(time.Time{})
	return all, err
}

func (p presence) Save(entries []hub.TotemStatus) error {
	rows := make([]pgstore.FleetEntry, 0, len(entries))
	for _, ts := range entries {
		e, err := Entry(ts)
		if err != nil {
			return fmt.Errorf("pgshare: %w", err)
		}
		rows = append(rows, e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	return p.pg.SaveFleet(ctx, rows)
}

func (p presence) Changed(since time.Time) ([]hub.TotemStatus, time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	rows, cursor, err := p.pg.FleetSince(ctx, since)
	if err != nil {
		return nil, since, err
	}
	out := make([]hub.TotemStatus, 0, len(rows))
	for _, r := range rows {
		var ts hub.TotemStatus
		if err := json.Unmarshal(r.Entry, &ts); err != nil || ts.Totem != r.Totem {
			continue // not a record this hub wrote: skipped, as bbolt's
		}
		if r.Last != nil {
			var l lastJSON
			if json.Unmarshal(r.Last, &l) == nil {
				ts.Last, ts.ClockSynced = l.Last, l.ClockSynced
			}
		}
		out = append(out, ts)
	}
	return out, cursor, nil
}

func (presence) Close() error { return nil }
