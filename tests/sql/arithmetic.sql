-- Arithmetic: integer and floating point, division, overflow, mixed types, concatenation.
CREATE TABLE n (id BIGINT PRIMARY KEY, i BIGINT, d DOUBLE);
INSERT INTO n VALUES (1, 7, 2.0), (2, -7, 0.5), (3, 0, -1.5), (4, 9223372036854775807, 1e300);

-- BIGINT op BIGINT is BIGINT: division truncates toward zero, % keeps the dividend's sign.
SELECT id, i + 2 AS plus, i - 2 AS minus, i * 3 AS times, i / 2 AS half, i % 3 AS mod3, -i AS neg
FROM n WHERE id <= 3 ORDER BY id;
-- A DOUBLE operand makes the result DOUBLE.
SELECT id, i / d AS quotient, i * 1.0 AS as_double, i + 0.5 AS plus_half, d / 4 AS quarter, i % 2.5 AS mod FROM n WHERE id <= 3 ORDER BY id;
-- Precedence and parentheses.
SELECT id, 1 + 2 * 3 AS a, (1 + 2) * 3 AS b, 10 - 4 - 3 AS c, 2 * 3 % 4 AS d, -(1 + 2) * 2 AS e FROM n WHERE id = 1;
SELECT id, 7 / 2 AS i, 7.0 / 2 AS f, 7 / 2.0 AS g, -7 / 2 AS h, 7 % -2 AS m FROM n WHERE id = 1;
SELECT id, 0.1 + 0.2 AS sum, 1.0 / 3 AS third, 1e10 * 1e10 AS big, 2.5e-3 AS small, 100.0 AS hundred FROM n WHERE id = 1;

-- Integer division by zero is an error; so is floating division by zero.
SELECT id, i / 0 AS q FROM n ORDER BY id;
SELECT id, i % 0 AS q FROM n ORDER BY id;
SELECT id, d / 0 AS q FROM n ORDER BY id;
SELECT id, i / (i - i) AS q FROM n ORDER BY id;
-- ...but not for rows a WHERE clause drops first, nor for NULL operands.
SELECT id, 10 / i AS q FROM n WHERE i <> 0 ORDER BY id;
SELECT id, i / NULL AS q FROM n ORDER BY id;

-- BIGINT overflow is an error, not a wrap-around.
SELECT i + 1 AS overflow FROM n WHERE id = 4;
SELECT i * 2 AS overflow FROM n WHERE id = 4;
SELECT -i - 2 AS overflow FROM n WHERE id = 4;
SELECT i - 1 AS fine FROM n WHERE id = 4;
SELECT d * 1e10 AS inf FROM n WHERE id = 4;
INSERT INTO n VALUES (5, 9223372036854775807 + 1, 0.0);
SELECT COUNT(*) AS n FROM n;

-- SUM is computed wide and fails only if the result does not fit BIGINT.
SELECT SUM(i) AS s FROM n;
SELECT SUM(i) AS s FROM n WHERE id <> 3;
SELECT SUM(i) AS s FROM n WHERE id = 4 OR id = 2;
SELECT SUM(d) AS s, AVG(i) AS a FROM n WHERE id <= 3;
SELECT SUM(i) AS s FROM n WHERE id = 1 OR id = 4;
SELECT COUNT(*) AS n FROM n GROUP BY id HAVING SUM(i) > 0 ORDER BY n;

-- Comparisons across BIGINT and DOUBLE.
SELECT id FROM n WHERE i > d ORDER BY id;
SELECT id FROM n WHERE i = 7.0 ORDER BY id;
SELECT id FROM n WHERE d = 2 ORDER BY id;

-- Timestamp arithmetic: + / - milliseconds, difference in milliseconds.
CREATE TABLE times (id BIGINT PRIMARY KEY, t TIMESTAMP);
INSERT INTO times VALUES (1, '2026-01-01 00:00:00'), (2, '2026-01-01 00:00:01.5');
SELECT id, t + 1500 AS later, t - 1 AS earlier, t - TIMESTAMP '2026-01-01 00:00:00' AS since FROM times ORDER BY id;

-- String concatenation.
SELECT id, 'n=' || i AS label, d || '' AS text FROM n WHERE id <= 2 ORDER BY id;

-- Type errors.
SELECT id + 'x' AS bad FROM n;
SELECT -'x' AS bad FROM n;
SELECT NOT i AS bad FROM n;
SELECT i AND true AS bad FROM n;
SELECT id FROM n WHERE i = 'x';
SELECT id FROM times WHERE t > 5;
SELECT t * 2 AS bad FROM times;
SELECT t + t AS bad FROM times;
SELECT id FROM times WHERE t = '2026-13-01 00:00:00';
-- AVG and SUM over BIGINT are exact: values near ±2^62 that cancel leave the small ones.
CREATE TABLE big (id BIGINT PRIMARY KEY, g BIGINT, v BIGINT);
INSERT INTO big VALUES (1, 1, 4611686018427387904), (2, 1, 3), (3, 1, -4611686018427387904), (4, 1, 4),
    (5, 2, 9223372036854775807), (6, 2, 9223372036854775807), (7, 2, -9223372036854775807);
SELECT g, SUM(v) AS s, AVG(v) AS a, COUNT(*) AS n FROM big GROUP BY g ORDER BY g;
CREATE SOURCE bigs (g BIGINT, v BIGINT);
CREATE MATERIALIZED VIEW big_avg AS SELECT g, AVG(v) AS a, SUM(v) AS s FROM bigs GROUP BY g;
CREATE MATERIALIZED VIEW avg_only AS SELECT g, AVG(v) AS a FROM bigs GROUP BY g;
INSERT INTO bigs VALUES (1, 4611686018427387904), (1, 3), (1, -4611686018427387904), (1, 4);
INSERT INTO bigs VALUES (2, 9223372036854775807), (2, 9223372036854775807), (2, -9223372036854775807), (3, 1), (3, 2);
SELECT * FROM big_avg ORDER BY g;
INSERT INTO bigs VALUES (2, 9223372036854775807);
-- A sum beyond BIGINT: AVG stays exact, SUM is an overflow error when it is read.
SELECT * FROM avg_only ORDER BY g;
SELECT s FROM big_avg WHERE g = 2;
