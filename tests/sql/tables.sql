-- Keyed tables: INSERT, duplicate keys, INSERT OR REPLACE, DELETE.
CREATE TABLE users (id BIGINT, name VARCHAR NOT NULL, age BIGINT, score DOUBLE, PRIMARY KEY (id));

INSERT INTO users VALUES (1, 'ann', 31, 9.5), (2, 'ben', NULL, 7.25), (3, 'cy', 45, NULL);
SELECT id, name, age, score FROM users ORDER BY id;

-- A duplicate key fails and the whole statement has no effect.
INSERT INTO users VALUES (4, 'dee', 20, 1.0), (2, 'bob', 50, 2.0);
SELECT id, name FROM users ORDER BY id;
-- A key repeated inside one statement is a duplicate too.
INSERT INTO users VALUES (5, 'eve', 1, 1.0), (5, 'eva', 2, 2.0);
SELECT COUNT(*) AS n FROM users;

-- INSERT OR REPLACE overwrites whole rows; the last of repeated keys wins.
INSERT OR REPLACE INTO users VALUES (2, 'bob', 50, 2.0), (4, 'dee', 20, 1.0), (4, 'dana', 21, 1.5);
SELECT id, name, age, score FROM users ORDER BY id;
-- Columns left out of an INSERT are NULL.
INSERT OR REPLACE INTO users (name, id) VALUES ('ANN', 1);
SELECT id, name, age, score FROM users WHERE id = 1;

-- The primary key is NOT NULL.
INSERT INTO users VALUES (NULL, 'nobody', 1, 1.0);
INSERT INTO users (name) VALUES ('nobody');
DESCRIBE users;

-- DELETE with a WHERE clause, NULLs do not match.
DELETE FROM users WHERE age > 40;
SELECT id, name, age FROM users ORDER BY id;
DELETE FROM users WHERE age < 100 AND score >= 1.5;
SELECT id, name, age, score FROM users ORDER BY id;
-- Nothing matches.
DELETE FROM users WHERE name = 'nobody';
SELECT COUNT(*) AS n FROM users;
-- A deleted key can be inserted again.
INSERT INTO users VALUES (3, 'cy', 46, 3.0);
SELECT id, name, age FROM users ORDER BY id;
-- DELETE without WHERE empties the table.
DELETE FROM users;
SELECT COUNT(*) AS n, MAX(id) AS top FROM users;
SELECT id FROM users;

-- Bad deletes.
DELETE FROM users WHERE nope = 1;
DELETE FROM users WHERE name + 1;
DELETE FROM users WHERE age;
DELETE FROM users WHERE COUNT(*) > 0;
DELETE FROM nowhere WHERE id = 1;
CREATE SOURCE s (x BIGINT);
DELETE FROM s WHERE x = 1;
INSERT OR REPLACE INTO s VALUES (1);

-- Text and timestamp keys.
CREATE TABLE kv (k VARCHAR PRIMARY KEY, v BIGINT);
INSERT INTO kv VALUES ('a', 1), ('A', 2), ('a ', 3);
INSERT INTO kv VALUES ('a', 4);
INSERT OR REPLACE INTO kv VALUES ('a', 5);
SELECT k, v FROM kv ORDER BY k;
CREATE TABLE at (t TIMESTAMP PRIMARY KEY, v BIGINT);
INSERT INTO at VALUES ('2026-01-01 00:00:00', 1), ('2026-01-01 00:00:00.001', 2);
INSERT INTO at VALUES ('2026-01-01 00:00:00.000', 3);
SELECT t, v FROM at ORDER BY t;
CREATE TABLE flags (f BOOLEAN PRIMARY KEY, v BIGINT);
INSERT INTO flags VALUES (true, 1), (false, 2);
INSERT INTO flags VALUES (true, 3);
SELECT f, v FROM flags ORDER BY f;

-- Primary keys must be single, existing columns.
CREATE TABLE two_keys (a BIGINT, b BIGINT, PRIMARY KEY (a, b));
CREATE TABLE wrong_key (a BIGINT, PRIMARY KEY (b));
CREATE TABLE users (id BIGINT PRIMARY KEY);
CREATE TABLE dup_col (a BIGINT PRIMARY KEY, a BIGINT);
