-- SQL NULL semantics: three-valued logic and comparisons with NULL.
CREATE TABLE tv (id BIGINT PRIMARY KEY, a BOOLEAN, b BOOLEAN);
INSERT INTO tv VALUES
    (1, true, true), (2, true, false), (3, true, NULL),
    (4, false, true), (5, false, false), (6, false, NULL),
    (7, NULL, true), (8, NULL, false), (9, NULL, NULL);

-- The full truth tables of AND, OR, NOT.
SELECT id, a, b, a AND b AS a_and_b, a OR b AS a_or_b, NOT a AS not_a FROM tv ORDER BY id;
-- IS NULL / IS NOT NULL never yield NULL.
SELECT id, a IS NULL AS a_null, (a AND b) IS NULL AS and_null, (a OR b) IS NOT NULL AS or_known FROM tv ORDER BY id;
-- WHERE keeps only TRUE rows: NULL is dropped like FALSE.
SELECT id FROM tv WHERE a AND b ORDER BY id;
SELECT id FROM tv WHERE a OR b ORDER BY id;
SELECT id FROM tv WHERE NOT (a OR b) ORDER BY id;
SELECT id FROM tv WHERE (a AND b) IS NULL ORDER BY id;

CREATE TABLE nv (id BIGINT PRIMARY KEY, x BIGINT, s VARCHAR);
INSERT INTO nv VALUES (1, 1, 'a'), (2, NULL, NULL), (3, 3, 'c');
-- Comparisons with NULL are NULL, including NULL = NULL.
SELECT id, x = 1 AS eq1, x <> 1 AS ne1, x < 2 AS lt2, x = NULL AS eq_null, NULL = NULL AS null_null,
       s = 'a' AS s_eq, x + 1 AS plus, x * NULL AS times_null, s || '!' AS bang
FROM nv ORDER BY id;
SELECT id FROM nv WHERE x = NULL ORDER BY id;
SELECT id FROM nv WHERE x <> 1 ORDER BY id;
SELECT id FROM nv WHERE NOT (x = 1) ORDER BY id;
SELECT id FROM nv WHERE x IS NULL ORDER BY id;
SELECT id FROM nv WHERE x IS NOT NULL ORDER BY id DESC;
-- Short-circuits still follow three-valued logic.
SELECT id FROM nv WHERE x = 1 OR x IS NULL ORDER BY id;
SELECT id FROM nv WHERE x > 0 AND s IS NOT NULL ORDER BY id;
SELECT id, NULL AND false AS nf, NULL OR true AS nt, NULL AND true AS nand, NULL OR false AS nor FROM nv WHERE id = 1;

-- Aggregates skip NULLs; over only NULLs, SUM/MIN/MAX/AVG are NULL and COUNT is 0.
SELECT COUNT(*) AS n, COUNT(x) AS cx, SUM(x) AS sx, AVG(x) AS ax, MIN(s) AS mins, MAX(s) AS maxs FROM nv;
SELECT COUNT(x) AS cx, SUM(x) AS sx, MIN(x) AS mn, MAX(x) AS mx, AVG(x) AS ax FROM nv WHERE x IS NULL;
-- NULL is a group of its own.
SELECT x, COUNT(*) AS n FROM nv GROUP BY x ORDER BY x;
INSERT INTO nv VALUES (4, NULL, 'd');
SELECT x, COUNT(*) AS n, MAX(s) AS s FROM nv GROUP BY x ORDER BY x NULLS LAST;

-- NULL keys in views group together too.
CREATE SOURCE src (k BIGINT, t VARCHAR, v BIGINT);
CREATE MATERIALIZED VIEW by_k AS SELECT k, COUNT(*) AS n, COUNT(v) AS cv, SUM(v) AS sv FROM src GROUP BY k;
CREATE MATERIALIZED VIEW by_t AS SELECT t, COUNT(*) AS n FROM src GROUP BY t;
CREATE MATERIALIZED VIEW by_kt AS SELECT k, t, COUNT(*) AS n FROM src GROUP BY k, t;
INSERT INTO src VALUES (1, 'a', 1), (NULL, 'a', NULL), (NULL, NULL, 2), (1, NULL, NULL), (0, '', 0);
SELECT k, n, cv, sv FROM by_k ORDER BY k;
SELECT t, t IS NULL AS null_t, n FROM by_t ORDER BY t;
SELECT k, t, n FROM by_kt ORDER BY k, t;
