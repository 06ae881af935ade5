-- COUNT/SUM/AVG(DISTINCT x): each value once per group; NULLs are not values.
CREATE SOURCE visits (page TEXT, user_id BIGINT, ms DOUBLE, ts TIMESTAMP);
CREATE MATERIALIZED VIEW per_page AS
    SELECT page, COUNT(*) AS hits, COUNT(DISTINCT user_id) AS users, SUM(DISTINCT user_id) AS id_sum,
           AVG(DISTINCT ms) AS mean_ms, COUNT(DISTINCT ms) AS timings, MAX(DISTINCT user_id) AS top
    FROM visits GROUP BY page;
CREATE MATERIALIZED VIEW overall AS SELECT COUNT(DISTINCT page) AS pages, COUNT(DISTINCT user_id) AS users FROM visits;
INSERT INTO visits VALUES ('a', 1, 10.0, '2026-01-01 00:00:00'), ('a', 1, 10.0, '2026-01-01 00:00:01'), ('a', 2, 20.0, '2026-01-01 00:00:02'),
    ('b', 1, NULL, '2026-01-01 00:00:03'), ('b', NULL, -0.0, '2026-01-01 00:00:04');
INSERT INTO visits VALUES ('a', 2, 0.0, '2026-01-01 00:00:05'), ('b', 3, 0.0, '2026-01-01 00:00:06'), (NULL, 9, NULL, '2026-01-01 00:00:07');
SELECT * FROM per_page ORDER BY page;
SELECT * FROM overall;
-- The same in queries, over a table.
CREATE TABLE t (id BIGINT PRIMARY KEY, g TEXT, v BIGINT);
INSERT INTO t VALUES (1, 'x', 5), (2, 'x', 5), (3, 'x', 7), (4, 'y', NULL), (5, 'y', 1);
SELECT g, COUNT(DISTINCT v) AS n, SUM(DISTINCT v) AS s, AVG(DISTINCT v) AS a, COUNT(v) AS all_v FROM t GROUP BY g ORDER BY g;
SELECT COUNT(DISTINCT g) FROM t;
SELECT COUNT(DISTINCT *) FROM t;
-- Per window.
CREATE MATERIALIZED VIEW per_minute AS
    SELECT tumble(ts, INTERVAL '1' MINUTE) AS minute, COUNT(DISTINCT user_id) AS users FROM visits GROUP BY tumble(ts, INTERVAL '1' MINUTE);
INSERT INTO visits VALUES ('c', 1, 1.0, '2026-01-01 00:01:00'), ('c', 1, 1.0, '2026-01-01 00:01:30'), ('c', 4, 1.0, '2026-01-01 00:00:59');
SELECT * FROM per_minute ORDER BY minute;
-- Values seen before (across restarts too) are not counted again.
INSERT INTO visits VALUES ('a', 1, 10.0, '2026-01-01 00:02:00'), ('a', 5, 10.0, '2026-01-01 00:02:00');
SELECT page, hits, users, id_sum, timings FROM per_page ORDER BY page;
SELECT * FROM overall;
