-- Session windows: SESSION(src, ts, gap) in FROM. Per partition (the other GROUP BY
-- columns), rows less than the gap apart form one session; window_start is its first
-- timestamp, window_end its last plus the gap. A row that bridges two sessions merges them.
CREATE SOURCE clicks (usr VARCHAR, page BIGINT, price DOUBLE, ts TIMESTAMP);
CREATE MATERIALIZED VIEW by_user AS
    SELECT usr, window_start, window_end, COUNT(*) AS n, COUNT(DISTINCT page) AS pages,
           SUM(DISTINCT page) AS page_sum, AVG(price) AS mean, MIN(usr) AS who, MAX(page) AS top
    FROM SESSION(clicks, ts, INTERVAL '10' SECOND) GROUP BY usr, window_start, window_end;
CREATE MATERIALIZED VIEW by_page AS
    SELECT page, window_start, COUNT(*) AS n, SUM(price) AS total
    FROM SESSION(clicks, ts, INTERVAL '1' MINUTE) WHERE price > 0 GROUP BY page, window_start;
CREATE MATERIALIZED VIEW long_sessions AS
    SELECT window_start, window_end, COUNT(*) AS n
    FROM SESSION(clicks, ts, INTERVAL '10' SECOND) GROUP BY window_start
    HAVING window_end - window_start >= INTERVAL '30' SECOND;
INSERT INTO clicks VALUES ('a', 1, 1.5, '2026-01-01 00:00:00'), ('a', 2, 2.5, '2026-01-01 00:00:05'), ('b', 1, 0, '2026-01-01 00:00:01');
SELECT * FROM by_user ORDER BY usr, window_start;
INSERT INTO clicks VALUES ('a', 2, 1, '2026-01-01 00:00:30'), ('a', 3, 1, '2026-01-01 00:00:50');
-- Exactly the gap after a session's last row starts a new session.
INSERT INTO clicks VALUES ('a', 9, 1, '2026-01-01 00:00:40');
SELECT * FROM by_user ORDER BY usr, window_start;
-- 14 and 22 bridge the first session with the one at 30.
INSERT INTO clicks VALUES ('a', 1, 2, '2026-01-01 00:00:14'), ('a', 1, 2, '2026-01-01 00:00:22');
SELECT * FROM by_user ORDER BY usr, window_start;
-- A late row moves a session's start back; a row without a timestamp has its own session.
INSERT INTO clicks VALUES ('b', 4, 3, '2025-12-31 23:59:55'), ('b', 4, 3, NULL);
SELECT * FROM by_user ORDER BY usr, window_start;
SELECT * FROM by_page ORDER BY page, window_start;
SELECT * FROM long_sessions ORDER BY window_start;
SELECT usr, COUNT(*) AS sessions, SUM(n) AS clicks FROM by_user GROUP BY usr ORDER BY usr;
-- Over a table, in a query.
CREATE TABLE visits (id BIGINT PRIMARY KEY, usr BIGINT, ts TIMESTAMP);
INSERT INTO visits VALUES (1, 7, '2026-01-01 00:00:00'), (2, 7, '2026-01-01 00:00:09'), (3, 7, '2026-01-01 00:00:30'), (4, 8, '2026-01-01 00:00:05');
SELECT usr, window_start, window_end, COUNT(*) AS n FROM SESSION(visits, ts, INTERVAL '10' SECOND) GROUP BY usr, window_start ORDER BY usr, window_start;
-- What a session window cannot answer.
SELECT usr, COUNT(*) FROM SESSION(visits, ts, INTERVAL '10' SECOND) GROUP BY usr;
SELECT window_start, COUNT(*) FROM SESSION(visits, ts, INTERVAL '10' SECOND) WHERE window_end > ts GROUP BY window_start;
SELECT window_start, COUNT(*) FROM SESSION(visits, id, INTERVAL '10' SECOND) GROUP BY window_start;
SELECT window_start, COUNT(*) FROM SESSION(visits, ts) GROUP BY window_start;
