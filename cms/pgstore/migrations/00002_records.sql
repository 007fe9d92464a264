-- The CMS's records the rules of cms/refcms keep (cmsstore.Tx), one
-- table each. A record is its JSON (as bbolt keeps it), beside the
-- columns it is found by.

-- +goose Up

CREATE TABLE cards (
	serial text PRIMARY KEY,
	team   text NOT NULL, -- cms.TEAM(serial): a card typed by its TEAM code
	cf     text NOT NULL,
	card   json NOT NULL  -- cms.Card
);
CREATE INDEX cards_team ON cards (team);
CREATE INDEX cards_cf ON cards (cf);

-- The consent record in force (cur) and the one it replaced (prev, one
-- level deep, for a cancellation). op_id and protocol are cur's.
CREATE TABLE consents (
	serial   text PRIMARY KEY,
	cur      json NOT NULL, -- cmsstore.ConsentRecord
	prev     json,
	op_id    text NOT NULL,
	protocol text NOT NULL
);
CREATE INDEX consents_op ON consents (op_id, protocol);

-- A card's accepted operations, in order of n.
CREATE SEQUENCE history_n;
CREATE TABLE history (
	serial text NOT NULL,
	n      bigint NOT NULL DEFAULT nextval('history_n'),
	event  json NOT NULL, -- cms.HistoryEvent
	PRIMARY KEY (serial, n)
);

-- The notification sink (the second halves of PIN and PUK).
CREATE TABLE notifications (
	n      bigserial PRIMARY KEY,
	serial text NOT NULL,
	record json NOT NULL -- cmsstore.Notification
);
CREATE INDEX notifications_serial ON notifications (serial);

-- Reader payments by receipt reference: a receipt buys one reader.
CREATE TABLE payments (
	ref      text PRIMARY KEY,
	op_id    text NOT NULL,
	protocol text NOT NULL,
	record   json NOT NULL -- cmsstore.PaymentRecord
);
CREATE INDEX payments_op ON payments (op_id, protocol);

CREATE TABLE reissue (
	serial text PRIMARY KEY,
	record json NOT NULL -- cmsstore.ReissueRecord
);

-- Wrong CIPs in a row.
CREATE TABLE cipfail (
	serial text PRIMARY KEY,
	n      integer NOT NULL CHECK (n > 0)
);

CREATE TABLE fse (
	cf     text PRIMARY KEY,
	state  text NOT NULL,
	record json NOT NULL -- cmsstore.FSERecord
);
CREATE INDEX fse_state ON fse (state);

-- Helpdesk tickets, numbered by the counter 'tickets'.
CREATE TABLE tickets (
	n      bigint PRIMARY KEY,
	record json NOT NULL -- cmsstore.Ticket
);

-- Cancelled reader requests whose fee may be refunded once.
CREATE TABLE refunds (
	totem  text NOT NULL,
	ref    text NOT NULL,
	record json NOT NULL, -- cmsstore.RefundRecord
	PRIMARY KEY (totem, ref)
);

-- The CMS's own settings: "secret", the key PIN, PUK and CIP derive from.
CREATE TABLE meta (
	name  text PRIMARY KEY,
	value bytea NOT NULL
);

-- Queries (the Storico) are numbered in a series of their own; tickets
-- too. Gapless, like protocol numbers.
INSERT INTO counters (name, value) VALUES ('queries', 0), ('tickets', 0);

GRANT SELECT, INSERT, UPDATE, DELETE ON cards, consents, history, notifications, payments, reissue,
	cipfail, fse, tickets, refunds, meta TO totem_hub;
GRANT USAGE, SELECT ON SEQUENCE history_n, notifications_n_seq TO totem_hub;

-- +goose Down
DELETE FROM counters WHERE name IN ('queries', 'tickets');
DROP TABLE meta, refunds, tickets, fse, cipfail, reissue, payments, notifications, history, consents, cards;
DROP SEQUENCE history_n;
