-- Errors: one line each, naming the object or column; the script goes on.
CREATE SOURCE s (a BIGINT NOT NULL, b VARCHAR);
CREATE TABLE t (k BIGINT PRIMARY KEY, v VARCHAR);
CREATE MATERIALIZED VIEW v AS SELECT a, COUNT(*) AS n FROM s GROUP BY a;
INSERT INTO t VALUES (1, 'one');

-- Unknown tables and columns.
SELECT k FROM missing;
SELECT missing FROM t;
SELECT k FROM t WHERE missing = 1;
SELECT k FROM t ORDER BY missing;
SELECT k, COUNT(*) AS n FROM t GROUP BY missing;
INSERT INTO t (k, missing) VALUES (2, 'x');
INSERT INTO missing VALUES (1);
CREATE MATERIALIZED VIEW bad AS SELECT missing, COUNT(*) AS n FROM s GROUP BY missing;
CREATE MATERIALIZED VIEW bad AS SELECT a, COUNT(*) AS n FROM s WHERE missing > 0 GROUP BY a;
SELECT n FROM v WHERE a = 'x';

-- Sources keep no rows: they are read through views.
SELECT a FROM s;

-- Wrong number of values, repeated columns.
INSERT INTO t VALUES (2);
INSERT INTO t VALUES (2, 'two', 3);
INSERT INTO t (k, k) VALUES (2, 3);
INSERT INTO s VALUES (1, 'x'), (2);

-- Type errors in statements.
SELECT k FROM t WHERE v;
SELECT k FROM t WHERE k = 'one';
SELECT k FROM t WHERE v > 1;
INSERT INTO t VALUES ('two', 'two');
INSERT INTO s VALUES (NULL, 'x');
INSERT INTO s VALUES (1 / 0, 'x');

-- Syntax errors.
SELEC k FROM t;
SELECT k FROM t WHERE;
SELECT k FROM t ORDER k;
CREATE SOURCE broken (a BIGINT;
CREATE SOURCE s2 (a BIGINT, PRIMARY KEY (a));
CREATE SOURCE s3 (a BIGINT PRIMARY KEY);
CREATE SOURCE s4 (a BIGINT UNIQUE);
CREATE VIEW plain AS SELECT a, COUNT(*) AS n FROM s GROUP BY a;
UPDATE t SET v = 'x' WHERE k = 1;
SELECT k FROM t.u;
-- Expressions Strata does not have.
SELECT k FROM t WHERE k IN (SELECT k FROM t);
SELECT TRY_CAST(k AS DOUBLE) AS d FROM t;
SELECT k FROM t WHERE v SIMILAR TO 'o%';
SELECT k FROM t WHERE (SELECT 1) = 1;

-- Too deeply nested or too long expressions are refused, not a crash.
SELECT ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((k)))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))) AS deep FROM t;
SELECT k FROM t WHERE k = 0 OR k = 1 OR k = 2 OR k = 3 OR k = 4 OR k = 5 OR k = 6 OR k = 7 OR k = 8 OR k = 9
    OR k = 10 OR k = 11 OR k = 12 OR k = 13 OR k = 14 OR k = 15 OR k = 16 OR k = 17 OR k = 18 OR k = 19
    OR k = 20 OR k = 21 OR k = 22 OR k = 23 OR k = 24 OR k = 25 OR k = 26 OR k = 27 OR k = 28 OR k = 29
    OR k = 30 OR k = 31 OR k = 32 OR k = 33 OR k = 34 OR k = 35 OR k = 36 OR k = 37 OR k = 38 OR k = 39
    OR k = 40 OR k = 41 OR k = 42 OR k = 43 OR k = 44 OR k = 45 OR k = 46 OR k = 47 OR k = 48 OR k = 49
    OR k = 50 OR k = 51 OR k = 52 OR k = 53 OR k = 54 OR k = 55 OR k = 56 OR k = 57 OR k = 58 OR k = 59
    OR k = 60 OR k = 61 OR k = 62 OR k = 63;
SELECT k FROM t WHERE k = 0 OR k = 1 OR k = 2 OR k = 3 OR k = 4 OR k = 5 OR k = 6 OR k = 7 OR k = 8 OR k = 9
    OR k = 10 OR k = 11 OR k = 12 OR k = 13 OR k = 14 OR k = 15 OR k = 16 OR k = 17 OR k = 18 OR k = 19
    OR k = 20 OR k = 21 OR k = 22 OR k = 23 OR k = 24 OR k = 25 OR k = 26 OR k = 27 OR k = 28 OR k = 29
    OR k = 30 OR k = 31 OR k = 32 OR k = 33 OR k = 34 OR k = 35 OR k = 36 OR k = 37 OR k = 38 OR k = 39
    OR k = 40 OR k = 41 OR k = 42 OR k = 43 OR k = 44 OR k = 45 OR k = 46 OR k = 47 OR k = 48 OR k = 49
    OR k = 50 OR k = 51 OR k = 52 OR k = 53 OR k = 54 OR k = 55 OR k = 56 OR k = 57 OR k = 58 OR k = 59
    OR k = 60 OR k = 61 OR k = 62 OR k = 63 OR k = 64;

-- Nothing above changed the state.
SELECT k, v FROM t ORDER BY k;
SELECT a, n FROM v ORDER BY a;
SHOW TABLES;
SHOW VIEWS;

-- An unterminated string runs to the end of the script: the last statement fails to tokenize.
INSERT INTO t VALUES (3, 'unterminated);
SELECT 'this is inside the string' FROM t;
