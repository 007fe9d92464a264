-- The rest of the fleet registry, shared by every totemhub process: what
-- a hub on bbolt keeps in fleet.db (the broker users' failure counts and
-- locks, the enrollment codes' hashes and verifiers) and presence.db
-- (every totem ever seen or provisioned, its presence, backlog and
-- devices). fleet_users (00001) holds the users themselves.

-- +goose Up

-- A broker user's failed authentications in a row and its lock
-- (sync/broker.Lock, as JSON). locked mirrors the record's "locked", for
-- an external broker's authentication view (deploy/emqx).
CREATE TABLE fleet_locks (
	username text PRIMARY KEY,
	locked   boolean NOT NULL DEFAULT false,
	record   jsonb NOT NULL
);

-- A totem's enrollment code (sync/broker.Enrollment, as JSON): its hash
-- and its verifier, never the code; one per totem.
CREATE TABLE fleet_enroll (
	totem  text PRIMARY KEY,
	record jsonb NOT NULL
);

-- The fleet registry's entries (sync/hub.TotemStatus): entry is all but
-- the last operation's answer, last that answer (LastOp and the clock
-- flag of its stamp). Every hub hears every totem's presence and
-- telemetry, but only the hub that applied an operation knows its answer,
-- so the two halves are merged apart: entry is replaced by a write whose
-- seen (its last_seen) is not older, last by one whose last_seq is not
-- lower. changed is the database's clock at the last write: the hubs
-- read the rows changed since their last look.
CREATE TABLE fleet_totems (
	totem    text PRIMARY KEY,
	entry    jsonb NOT NULL,
	seen     timestamptz,
	last     jsonb,
	last_seq bigint NOT NULL DEFAULT 0,
	changed  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX fleet_totems_changed ON fleet_totems (changed);

GRANT SELECT, INSERT, UPDATE, DELETE ON fleet_locks, fleet_enroll, fleet_totems TO totem_hub;

-- +goose Down
DROP TABLE fleet_totems, fleet_enroll, fleet_locks;
