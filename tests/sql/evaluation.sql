-- Evaluation order: a view's WHERE is applied before its group keys and aggregate arguments
-- are evaluated, so a row the filter drops can never fail a statement.
CREATE SOURCE ratios (a BIGINT, b BIGINT);
CREATE MATERIALIZED VIEW safe AS
    SELECT a / b AS q, COUNT(*) AS n, SUM(a % b) AS rest
    FROM ratios WHERE b <> 0 GROUP BY a / b;
CREATE MATERIALIZED VIEW safe_text AS
    SELECT CAST(a / b AS VARCHAR) AS q, COUNT(*) AS n
    FROM ratios WHERE b IS NOT NULL AND b <> 0 GROUP BY CAST(a / b AS VARCHAR);
INSERT INTO ratios VALUES (10, 2), (7, 0), (9, 3), (11, 2), (5, NULL);
SELECT q, n, rest FROM safe ORDER BY q;
SELECT q, n FROM safe_text ORDER BY q;

-- Without a WHERE that drops it, the same row fails the whole statement: nothing of it is
-- applied to any view.
CREATE MATERIALIZED VIEW everything AS SELECT a / b AS q, COUNT(*) AS n FROM ratios GROUP BY a / b;
INSERT INTO ratios VALUES (1, 1), (2, 0);
SELECT q, n FROM safe ORDER BY q;
SELECT q, n FROM everything ORDER BY q;
INSERT INTO ratios VALUES (1, 1);
SELECT q, n FROM everything ORDER BY q;

-- Queries filter before they compute too.
CREATE TABLE t (k BIGINT PRIMARY KEY, d BIGINT);
INSERT INTO t VALUES (1, 0), (2, 4);
SELECT k, 8 / d AS x FROM t WHERE d <> 0;
SELECT SUM(8 / d) AS total FROM t WHERE d <> 0;
SELECT k, 8 / d AS x FROM t ORDER BY k;
