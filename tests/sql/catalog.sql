-- The catalog: SHOW, DESCRIBE, DROP, names.
SHOW SOURCES;
SHOW TABLES;
SHOW VIEWS;

CREATE SOURCE clicks (user_id BIGINT NOT NULL, url VARCHAR(100), ts TIMESTAMP);
CREATE SOURCE audit (msg TEXT);
CREATE TABLE accounts (id BIGINT PRIMARY KEY, owner VARCHAR NOT NULL, balance DOUBLE);
CREATE TABLE zones (name VARCHAR, PRIMARY KEY (name));
CREATE MATERIALIZED VIEW clicks_per_user AS SELECT user_id, COUNT(*) AS n FROM clicks GROUP BY user_id;
CREATE MATERIALIZED VIEW clicks_per_url AS SELECT url, COUNT(*) AS n, MAX(ts) AS last FROM clicks GROUP BY url;

SHOW SOURCES;
SHOW TABLES;
SHOW VIEWS;
DESCRIBE clicks;
DESCRIBE accounts;
DESC zones;
DESCRIBE clicks_per_url;

-- Names are unique across sources, tables and views.
CREATE TABLE clicks (id BIGINT PRIMARY KEY);
CREATE SOURCE accounts (x BIGINT);
CREATE SOURCE clicks_per_user (x BIGINT);
CREATE MATERIALIZED VIEW zones AS SELECT user_id, COUNT(*) AS n FROM clicks GROUP BY user_id;

-- Unquoted names are case-insensitive; quoted names keep their case.
create source Mixed (Col BIGINT);
SHOW SOURCES;
DESCRIBE MIXED;
INSERT INTO mixed (COL) VALUES (1);
CREATE TABLE "Quoted" ("Key" BIGINT PRIMARY KEY);
INSERT INTO "Quoted" VALUES (1);
SELECT "Key" FROM "Quoted";
SELECT "Key" FROM quoted;
SELECT key FROM "Quoted";

-- Dropping a source that a view reads fails; drop the views first.
DROP SOURCE clicks;
DROP MATERIALIZED VIEW clicks_per_user;
DROP SOURCE clicks;
DROP VIEW clicks_per_url;
DROP SOURCE clicks;
SHOW SOURCES;
SHOW VIEWS;

-- Dropping unknown objects, IF EXISTS, and the wrong kind.
DROP SOURCE clicks;
DROP SOURCE IF EXISTS clicks;
DROP TABLE nope;
DROP TABLE IF EXISTS nope;
DROP MATERIALIZED VIEW IF EXISTS nope;
DROP TABLE audit;
DROP SOURCE accounts;
DROP TABLE accounts;
SHOW TABLES;

-- A dropped name can be reused, starting empty.
CREATE TABLE accounts (id BIGINT PRIMARY KEY, note VARCHAR);
INSERT INTO accounts VALUES (1, 'new');
SELECT id, note FROM accounts;
DESCRIBE accounts;

-- Unknown objects.
DESCRIBE nope;
SELECT x FROM nope;
INSERT INTO nope VALUES (1);
SHOW NOTHING;
