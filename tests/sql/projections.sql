-- A view without aggregates keeps its rows: columns or expressions of a source, filtered by
-- WHERE. Duplicates are kept (each distinct row is stored once with its count).
CREATE SOURCE clicks (user_id BIGINT, url TEXT, ms BIGINT, ts TIMESTAMP);
CREATE MATERIALIZED VIEW slow_clicks AS
    SELECT user_id, url, ms / 1000 AS secs FROM clicks WHERE ms >= 1000;
CREATE MATERIALIZED VIEW everything AS SELECT * FROM clicks;
CREATE MATERIALIZED VIEW per_second AS
    SELECT tumble(ts, INTERVAL '1' SECOND) AS second, user_id FROM clicks WHERE ts IS NOT NULL;
INSERT INTO clicks VALUES
    (1, '/a', 1500, '2026-01-01 00:00:01'),
    (2, '/b', 200, '2026-01-01 00:00:02.500'),
    (1, '/a', 1500, '2026-01-01 00:00:01'),
    (3, NULL, 3000, NULL);
SELECT * FROM slow_clicks ORDER BY user_id, url;
SELECT COUNT(*), SUM(secs) FROM slow_clicks;
SELECT user_id, COUNT(*) AS n FROM slow_clicks GROUP BY user_id ORDER BY user_id;
SELECT * FROM slow_clicks WHERE user_id = 1;
SELECT url FROM slow_clicks WHERE url IS NULL;
SELECT COUNT(*) FROM everything;
SELECT * FROM everything ORDER BY ts NULLS FIRST, user_id;
SELECT * FROM per_second ORDER BY second, user_id;
DESCRIBE slow_clicks;
INSERT INTO clicks VALUES (2, '/c', 1000, '2026-01-01 00:00:03'), (2, '/d', 999, NULL);
SELECT * FROM slow_clicks ORDER BY user_id, url;
SELECT DISTINCT user_id FROM slow_clicks ORDER BY user_id;
SELECT * FROM slow_clicks ORDER BY secs DESC, user_id LIMIT 2;
-- A row that fails its expressions fails the whole batch, as in any view.
CREATE MATERIALIZED VIEW ratios AS SELECT user_id, 1000 / ms AS per_ms FROM clicks;
INSERT INTO clicks VALUES (9, '/z', 0, NULL);
SELECT COUNT(*) FROM everything;
-- Two columns of one name are refused, as in any view.
CREATE MATERIALIZED VIEW twice AS SELECT user_id, user_id FROM clicks;
