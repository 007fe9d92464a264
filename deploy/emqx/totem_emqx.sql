-- EMQX's built-in PostgreSQL authentication and authorization reading the hub's
-- registry (cms/pgstore migrations: fleet_users). Apply after `totemhub migrate`,
-- as the database owner; EMQX logs in as emqx_reader (create it with a password:
-- CREATE ROLE emqx_reader LOGIN PASSWORD '…'; GRANT totem_emqx TO emqx_reader;).
-- Checked here against PostgreSQL 15 by deploy/emqx_test.go; EMQX itself is not
-- installable on this machine and is not tested (README.md beside this file).

DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'totem_emqx') THEN
		CREATE ROLE totem_emqx NOLOGIN;
	END IF;
END
$$;

-- The hub stores "sha256$<salt hex>$<digest hex>", digest = SHA-256(salt bytes ||
-- secret) (sync/creds). EMQX's sha256 with salt_position = prefix computes
-- SHA-256(salt || password) and compares the lower-case hex digest: the salt must
-- reach EMQX as the raw bytes, hence bytea, not the hex text of the hash.
-- Users past their expiry are left out (EMQX then refuses them as unknown: the
-- "expired" reason string of the embedded broker has no EMQX counterpart).
-- Users the hub locked (fleet_locks, migration 00003: eight wrong secrets at an
-- embedded broker, or ops' lock) are left out too.
-- The enroll user's secret is public (sync/enroll): one fixed row.
CREATE OR REPLACE VIEW emqx_authn AS
SELECT username,
       split_part(hash, '$', 3)               AS password_hash,
       decode(split_part(hash, '$', 2), 'hex') AS salt,
       false                                  AS is_superuser
  FROM fleet_users
 WHERE split_part(hash, '$', 1) = 'sha256'
   AND (expires IS NULL OR expires > now())
   AND NOT EXISTS (SELECT 1 FROM fleet_locks l WHERE l.username = fleet_users.username AND l.locked)
UNION ALL
SELECT 'enroll', encode(sha256('\x00'::bytea || convert_to('enroll', 'UTF8')), 'hex'), '\x00'::bytea, false;

-- The ACL of sync/broker (allowed) per role, in EMQX's authorization rows.
-- ${username} is EMQX's placeholder; "eq " matches a wildcard filter literally.
-- Rows are returned by prio: the first rule that matches decides.
CREATE TABLE IF NOT EXISTS emqx_acl_rules (
	role       text NOT NULL,
	prio       int  NOT NULL,
	permission text NOT NULL CHECK (permission IN ('allow', 'deny')),
	action     text NOT NULL CHECK (action IN ('publish', 'subscribe', 'all')),
	topic      text NOT NULL,
	retain     int,  -- 0: not retained (EMQX ≥ 5.1); NULL: either
	PRIMARY KEY (role, prio)
);
DELETE FROM emqx_acl_rules;
INSERT INTO emqx_acl_rules (role, prio, permission, action, topic, retain) VALUES
	-- A totem: its own subtree only.
	('totem', 10, 'allow', 'publish', 'totem/v1/${username}/op', 0),
	('totem', 11, 'allow', 'publish', 'totem/v1/${username}/state', NULL),
	('totem', 12, 'allow', 'publish', 'totem/v1/${username}/telemetry', NULL),
	('totem', 13, 'allow', 'publish', 'totem/v1/${username}/event', 0),
	('totem', 14, 'allow', 'publish', 'totem/v1/${username}/sync', 0),
	('totem', 15, 'allow', 'publish', 'totem/v1/${username}/rotate', 0),
	('totem', 16, 'allow', 'publish', 'totem/v1/${username}/update_req', 0),
	('totem', 17, 'allow', 'publish', 'totem/v1/${username}/reply/+', 0),
	('totem', 20, 'allow', 'subscribe', 'totem/v1/${username}/result', NULL),
	('totem', 21, 'allow', 'subscribe', 'totem/v1/${username}/cmd', NULL),
	('totem', 22, 'allow', 'subscribe', 'totem/v1/${username}/policy', NULL),
	('totem', 23, 'allow', 'subscribe', 'totem/v1/${username}/ledger', NULL),
	('totem', 24, 'allow', 'subscribe', 'totem/v1/${username}/rotated', NULL),
	('totem', 25, 'allow', 'subscribe', 'totem/v1/${username}/update', NULL),
	('totem', 26, 'allow', 'subscribe', 'totem/v1/${username}/technicians', NULL),
	-- A hub (the shared subscriptions are checked without $share/GROUP/).
	('hub', 10, 'allow', 'subscribe', 'eq totem/v1/+/op', NULL),
	('hub', 11, 'allow', 'subscribe', 'eq totem/v1/+/state', NULL),
	('hub', 12, 'allow', 'subscribe', 'eq totem/v1/+/telemetry', NULL),
	('hub', 13, 'allow', 'subscribe', 'eq totem/v1/+/event', NULL),
	('hub', 14, 'allow', 'subscribe', 'eq totem/v1/+/sync', NULL),
	('hub', 15, 'allow', 'subscribe', 'eq totem/v1/+/rotate', NULL),
	('hub', 16, 'allow', 'subscribe', 'eq totem/v1/+/update_req', NULL),
	('hub', 17, 'allow', 'subscribe', 'eq totemhub/v1/cmd', NULL),
	('hub', 18, 'allow', 'subscribe', 'eq totemhub/v1/enroll/+', NULL),
	('hub', 19, 'allow', 'subscribe', 'eq totemhub/v1/upload/+', NULL),
	('hub', 30, 'allow', 'publish', 'totem/v1/+/result', 0),
	('hub', 31, 'allow', 'publish', 'totem/v1/+/policy', NULL),
	('hub', 32, 'allow', 'publish', 'totem/v1/+/ledger', 0),
	('hub', 33, 'allow', 'publish', 'totem/v1/+/rotated', 0),
	('hub', 34, 'allow', 'publish', 'totem/v1/+/update', 0),
	('hub', 35, 'allow', 'publish', 'totem/v1/+/technicians', NULL),
	('hub', 36, 'allow', 'publish', 'totemhub/v1/reply/+', 0),
	('hub', 37, 'allow', 'publish', 'totemhub/v1/enroll/+/reply', 0),
	-- A console: presence, health, events, its own replies; commands out.
	('console', 10, 'allow', 'subscribe', 'totem/v1/+/state', NULL),
	('console', 11, 'allow', 'subscribe', 'totem/v1/+/telemetry', NULL),
	('console', 12, 'allow', 'subscribe', 'totem/v1/+/event', NULL),
	('console', 13, 'allow', 'subscribe', 'totem/v1/+/reply/${username}', NULL),
	('console', 14, 'allow', 'subscribe', 'totemhub/v1/reply/${username}', NULL),
	('console', 20, 'allow', 'publish', 'totem/v1/+/cmd', 0),
	('console', 21, 'allow', 'publish', 'totemhub/v1/cmd', 0),
	('console', 22, 'allow', 'publish', 'totemhub/v1/upload/${username}', 0),
	-- The enroll user: a request, and the reply of a request id it knows; the
	-- '+' filter (every reply, with credentials in them) refused first.
	('enroll', 1, 'deny', 'subscribe', 'eq totemhub/v1/enroll/+/reply', NULL),
	('enroll', 10, 'allow', 'publish', 'totemhub/v1/enroll/+', 0),
	('enroll', 11, 'allow', 'subscribe', 'totemhub/v1/enroll/+/reply', NULL);

-- What EMQX's authorization query reads: the rules of the user's role.
CREATE OR REPLACE VIEW emqx_authz AS
SELECT u.username, r.prio, r.permission, r.action, r.topic, r.retain
  FROM fleet_users u JOIN emqx_acl_rules r ON r.role = u.role
UNION ALL
SELECT 'enroll', r.prio, r.permission, r.action, r.topic, r.retain
  FROM emqx_acl_rules r WHERE r.role = 'enroll';

GRANT SELECT ON emqx_authn, emqx_authz TO totem_emqx;
