-- All five types, their literals, NOT NULL, and how values print in CSV.
CREATE TABLE t (
    id BIGINT PRIMARY KEY,
    d DOUBLE,
    s VARCHAR,
    b BOOLEAN,
    ts TIMESTAMP NOT NULL
);

DESCRIBE t;

INSERT INTO t VALUES
    (1, 1.5, 'plain', true, '2026-01-02 03:04:05'),
    (2, -0.25, 'with, comma', false, '2026-01-02 03:04:05.678'),
    (3, 3, 'with "quotes"', NULL, '1970-01-01 00:00:00'),
    (4, NULL, NULL, true, '2024-02-29 23:59:59.001'),
    (5, 1e20, '', false, '1969-12-31 23:59:59.999'),
    (-9223372036854775808, 0.1, 'line
break', NULL, '2026-01-02 03:04:05.5'),
    (9223372036854775807, 100.0, 'ünïcödé ✓', true, '2026-12-31 23:59:59');

SELECT id, d, s, b, ts FROM t ORDER BY id;

-- A DOUBLE prints in Rust's shortest round-trip form: integral values keep ".0".
SELECT id, d * 2 AS doubled, d + 1 AS plus_one FROM t WHERE d IS NOT NULL ORDER BY id;

-- BIGINT widens to DOUBLE on insert; the empty string is not NULL.
SELECT id FROM t WHERE s = '' ORDER BY id;
SELECT id FROM t WHERE s IS NULL ORDER BY id;

-- Timestamps compare with text literals and with TIMESTAMP literals.
SELECT id, ts FROM t WHERE ts >= '2026-01-01 00:00:00' ORDER BY ts;
SELECT id FROM t WHERE ts = TIMESTAMP '2026-01-02 03:04:05.678' ORDER BY id;
SELECT id FROM t WHERE ts < '1970-01-01 00:00:00.001' ORDER BY id DESC;

-- Booleans.
SELECT id, b, NOT b AS nb FROM t WHERE b OR b IS NULL ORDER BY id;

-- NOT NULL: the whole statement is refused.
INSERT INTO t VALUES (10, 1.0, 'x', true, NULL);
INSERT INTO t (id, d) VALUES (11, 2.0);
SELECT COUNT(*) AS n FROM t;

-- Wrong types are refused and change nothing.
INSERT INTO t VALUES (12, 'one', 'x', true, '2026-01-01 00:00:00');
INSERT INTO t VALUES (13, 1.0, 42, true, '2026-01-01 00:00:00');
INSERT INTO t VALUES (14, 1.0, 'x', 'yes', '2026-01-01 00:00:00');
INSERT INTO t VALUES (15, 1.0, 'x', true, 'not a time');
INSERT INTO t VALUES (16, 1.0, 'x', true, '2026-02-30 00:00:00');
INSERT INTO t VALUES (17, 1.0, 'x', true, 1234);
INSERT INTO t VALUES (1.5, 1.0, 'x', true, '2026-01-01 00:00:00');
INSERT INTO t VALUES (18, 1.0, 'x', 1, '2026-01-01 00:00:00');
INSERT INTO t VALUES (9223372036854775808, 1.0, 'x', true, '2026-01-01 00:00:00');
SELECT COUNT(*) AS n FROM t;

-- VARCHAR(n) limits characters, not bytes.
CREATE TABLE short (k VARCHAR(3) PRIMARY KEY, v VARCHAR(2));
DESCRIBE short;
INSERT INTO short VALUES ('abc', 'üü');
INSERT INTO short VALUES ('abcd', 'x');
INSERT INTO short VALUES ('xyz', 'üüü');
SELECT k, v FROM short ORDER BY k;

-- Values are constant expressions; timestamps also parse as a date, or with T and Z.
INSERT INTO t VALUES (20, 1 + 2 * 3, 'con' || 'cat', NOT false, '2026-07-01');
INSERT INTO t VALUES (21, -(2.5), 'iso', NULL, '2026-07-01T12:30:00Z');
INSERT INTO t VALUES (22, 0.5, 'tenths', NULL, '2026-07-01 12:30:00.1');
SELECT id, d, s, b, ts FROM t WHERE id >= 20 ORDER BY id;
INSERT INTO t VALUES (23, d, 'x', true, '2026-07-01');
INSERT INTO t VALUES (24, 1e400, 'x', true, '2026-07-01');
INSERT INTO t VALUES (25, 1.0, 'x', true, '2026-07-01 12:30:00.1234');
SELECT COUNT(*) AS n FROM t;

-- Other spellings of the types.
CREATE SOURCE spellings (a INT, b INTEGER, c TEXT, d FLOAT, e BOOL, f DATETIME, g REAL, h STRING);
DESCRIBE spellings;
CREATE SOURCE bad_type (a DECIMAL(10, 2));
CREATE TABLE no_key (a BIGINT);
CREATE TABLE double_key (a DOUBLE PRIMARY KEY);
-- Declared integer ranges: SMALLINT, INT and BIGINT hold what PostgreSQL's hold.
CREATE TABLE ints (id BIGINT PRIMARY KEY, s SMALLINT, i INT, b BIGINT);
INSERT INTO ints VALUES (1, 32767, 2147483647, 9223372036854775807), (2, -32768, -2147483648, -9223372036854775808);
INSERT INTO ints VALUES (3, 32768, 0, 0);
INSERT INTO ints VALUES (4, 0, 0, 0), (5, 0, -2147483649, 0);
INSERT INTO ints VALUES (6, 1, 1, 1);
UPDATE ints SET i = i + 1 WHERE id = 1;
UPDATE ints SET s = s * 2 WHERE id = 6;
SELECT * FROM ints ORDER BY id;
DESCRIBE ints;
SELECT CAST(2147483647 AS INT), CAST('32767' AS SMALLINT), 40000::BIGINT FROM ints WHERE id = 1;
SELECT CAST(2147483648 AS INT) FROM ints;
SELECT CAST(b AS INT) FROM ints WHERE id = 6;
SELECT CAST(b AS SMALLINT) FROM ints WHERE id = 2;
CREATE SOURCE readings (sensor SMALLINT NOT NULL, v INT);
INSERT INTO readings VALUES (1, 5), (70000, 5);
