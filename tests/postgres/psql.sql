-- psql against `strata serve --pg-listen`: tables, a source and a view, errors, \d.
CREATE TABLE users (id BIGINT PRIMARY KEY, age INT, name VARCHAR(20), score DOUBLE, active BOOLEAN, seen TIMESTAMP);
INSERT INTO users VALUES (1, 30, 'Ann', 1.5, true, TIMESTAMP '2024-01-02 03:04:05'), (2, NULL, 'Bob', NULL, false, NULL);
SELECT * FROM users ORDER BY id;
UPDATE users SET age = 31 WHERE id = 1;
SELECT name, age FROM users WHERE age > 30;
CREATE SOURCE bids (auction BIGINT, price DOUBLE);
CREATE MATERIALIZED VIEW totals AS SELECT auction, COUNT(*) AS n, SUM(price) AS total FROM bids GROUP BY auction;
INSERT INTO bids VALUES (1, 2.5), (1, 3.5), (2, 1.0);
SELECT * FROM totals ORDER BY auction;
\d
\dt
\dm
DESCRIBE users;
SELECT * FROM nope;
INSERT INTO users VALUES (1, 1, 'dup', 0, true, NULL);
\d users
\d totals
\d+ bids
SHOW server_version;
BEGIN;
INSERT INTO users (id, name) VALUES (3, 'Cy');
ROLLBACK;
SELECT COUNT(*) AS users FROM users;
SELEC oops;
