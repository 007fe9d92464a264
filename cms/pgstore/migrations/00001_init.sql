-- The hub's state, shared by every totemhub process (docs: package pgstore).

-- +goose Up

-- The hub's role: what every totemhub process logs in as (GRANT totem_hub
-- TO <login role>). It reads and writes everything except the audit, which
-- it may only append to. Roles are cluster-wide: created once.
-- +goose StatementBegin
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'totem_hub') THEN
		CREATE ROLE totem_hub NOLOGIN;
	END IF;
END
$$;
-- +goose StatementEnd

-- One row per totem: the last sequence number applied. Its row lock is
-- what serialises the operations of one totem across hub processes.
CREATE TABLE ledger (
	totem    text PRIMARY KEY,
	last_seq bigint NOT NULL CHECK (last_seq >= 0)
);

-- Every applied operation (a number consumed by a reused id has no row
-- here: its refusal is in the audit). Dedup is per totem.
CREATE TABLE ops (
	totem    text NOT NULL,
	op_id    text NOT NULL,
	seq      bigint NOT NULL CHECK (seq > 0),
	kind     text NOT NULL,
	protocol text NOT NULL,
	accepted boolean NOT NULL,
	codes    text[] NOT NULL DEFAULT '{}',
	rejects  jsonb,          -- [{code, message}] as answered
	data     bytea,          -- an accepted online operation's answer (JSON), byte for byte
	at       timestamptz NOT NULL,
	PRIMARY KEY (totem, op_id),
	UNIQUE (totem, seq)
);

-- Gapless counters updated inside the applying transaction: protocol
-- numbers are legal register numbers, a rollback must not skip one.
CREATE TABLE counters (
	name  text PRIMARY KEY,
	value bigint NOT NULL CHECK (value >= 0)
);
INSERT INTO counters (name, value) VALUES ('protocol', 0);

-- The send log's order: the audit and the send log draw their numbers
-- from one sequence, so one ORDER BY n is the hub's order of arrival.
-- Gaps (a rolled-back batch) are harmless: n only orders and pages.
CREATE SEQUENCE sendlog_n;

-- The audit trail: one record per sequence number settled (applied, or
-- consumed by a reused id). Append-only: the hub's role may not UPDATE,
-- DELETE or TRUNCATE it, and a trigger refuses those to every other
-- role but a superuser that drops it.
CREATE TABLE audit (
	n        bigint PRIMARY KEY DEFAULT nextval('sendlog_n'),
	at       timestamptz NOT NULL,
	totem    text NOT NULL,
	seq      bigint NOT NULL,
	op_id    text NOT NULL,
	kind     text NOT NULL,
	serial   text NOT NULL DEFAULT '',
	channel  text NOT NULL DEFAULT '',
	operator text NOT NULL DEFAULT '',
	protocol text NOT NULL DEFAULT '',
	accepted boolean NOT NULL,
	codes    text[] NOT NULL DEFAULT '{}',
	stamp    jsonb,
	ref      text NOT NULL DEFAULT ''
);
CREATE INDEX audit_totem_seq ON audit (totem, seq);

-- +goose StatementBegin
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
-- +goose StatementEnd
CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
	FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
	FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- The send log's entries that are not in the audit: duplicates (class
-- 'd'), SEQ_REUSED refusals ('r'), sequence gaps refused ('g'). A repeat
-- of the same transmission counts on its first entry.
CREATE TABLE sendlog (
	n       bigint PRIMARY KEY DEFAULT nextval('sendlog_n'),
	totem   text NOT NULL,
	class   text NOT NULL CHECK (class IN ('d', 'r', 'g')),
	op_id   text NOT NULL,
	seq     bigint NOT NULL,
	at      timestamptz NOT NULL,
	last    timestamptz,
	repeats bigint NOT NULL DEFAULT 0,
	entry   jsonb NOT NULL, -- cms.Transmission
	UNIQUE (totem, class, op_id, seq)
);
CREATE INDEX sendlog_at ON sendlog (at);

-- The fleet registry: the broker users (sync/broker.User), shared by
-- every hub process and read by an external broker's authentication.
CREATE TABLE fleet_users (
	username     text PRIMARY KEY,
	role         text NOT NULL,
	hash         text NOT NULL,
	created      timestamptz NOT NULL,
	expires      timestamptz,
	next         text NOT NULL DEFAULT '',
	next_expires timestamptz,
	rotated      timestamptz
);

-- Console command ids admitted (sync/cmdsig.Record): one admission per
-- (key, id) across all hub processes, until the command expires.
CREATE TABLE command_nonces (
	key     text NOT NULL,
	id      text NOT NULL,
	expires timestamptz NOT NULL,
	PRIMARY KEY (key, id)
);
CREATE INDEX command_nonces_expires ON command_nonces (expires);

GRANT SELECT, INSERT, UPDATE ON ledger, ops, counters TO totem_hub;
GRANT SELECT, INSERT ON audit TO totem_hub;
GRANT SELECT, INSERT, UPDATE, DELETE ON sendlog, fleet_users, command_nonces TO totem_hub;
GRANT USAGE, SELECT ON SEQUENCE sendlog_n TO totem_hub;
GRANT SELECT ON goose_db_version TO totem_hub; -- Open checks the version

-- +goose Down
DROP TABLE command_nonces, fleet_users, sendlog, audit, counters, ops, ledger;
DROP FUNCTION audit_append_only();
DROP SEQUENCE sendlog_n;
