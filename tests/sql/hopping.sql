-- Window table functions: TUMBLE(src, ts, size) and HOP(src, ts, slide, size) in FROM add
-- window_start and window_end; hop(ts, slide, size) in GROUP BY is the same window.
CREATE SOURCE bids (auction BIGINT, price BIGINT, ts TIMESTAMP);
CREATE MATERIALIZED VIEW per_window AS
    SELECT auction, window_start, window_end, COUNT(*) AS n, SUM(price) AS total
    FROM TUMBLE(bids, ts, INTERVAL '10' SECOND) GROUP BY auction, window_start, window_end;
CREATE MATERIALIZED VIEW hopping AS
    SELECT window_start, window_end, COUNT(*) AS n, MAX(price) AS top
    FROM HOP(bids, ts, INTERVAL '5' SECOND, INTERVAL '15' SECOND) GROUP BY window_start, window_end;
CREATE MATERIALIZED VIEW hop_fn AS
    SELECT auction, hop(ts, INTERVAL '5' SECOND, INTERVAL '10' SECOND) AS w, hop_end(ts, INTERVAL '5' SECOND, INTERVAL '10' SECOND) AS w_end, COUNT(*) AS n
    FROM bids GROUP BY auction, hop(ts, INTERVAL '5' SECOND, INTERVAL '10' SECOND);
INSERT INTO bids VALUES (1, 10, '2026-01-01 00:00:01'), (1, 20, '2026-01-01 00:00:07'), (2, 5, '2026-01-01 00:00:12'), (1, 30, '2026-01-01 00:00:14'), (2, 1, NULL);
SELECT * FROM per_window ORDER BY auction, window_start;
SELECT * FROM hopping ORDER BY window_start;
SELECT * FROM hop_fn ORDER BY auction, w;
CREATE TABLE b (id BIGINT PRIMARY KEY, ts TIMESTAMP);
INSERT INTO b VALUES (1, '2026-01-01 00:00:01'), (2, '2026-01-01 00:00:09');
SELECT id, window_start, window_end FROM HOP(b, ts, INTERVAL '5' SECOND, INTERVAL '10' SECOND) ORDER BY id, window_start;
SELECT window_start, COUNT(*) AS n FROM TUMBLE(b, ts, INTERVAL '1' MINUTE) GROUP BY window_start;
SELECT * FROM HOP(b, ts, INTERVAL '1' SECOND, INTERVAL '1' HOUR);
SELECT * FROM HOP(b, id, INTERVAL '1' SECOND, INTERVAL '2' SECOND);
SELECT * FROM TUMBLE(b, ts);
SELECT * FROM SESSION(b, ts, INTERVAL '1' SECOND);
SELECT * FROM TABLE(TUMBLE(TABLE b, DESCRIPTOR(ts), INTERVAL '10' SECONDS));
SELECT hop(ts, INTERVAL '5' SECOND, INTERVAL '10' SECOND) AS w, COUNT(*) FROM b GROUP BY hop(ts, INTERVAL '5' SECOND, INTERVAL '10' SECOND), hop(ts, INTERVAL '1' SECOND, INTERVAL '10' SECOND);
SELECT COUNT(*) FROM TUMBLE(nowhere, ts, INTERVAL '1' SECOND);
SELECT * FROM HOP(b, ts, INTERVAL '0' SECOND, INTERVAL '2' SECOND);
CREATE SOURCE clash (window_start TIMESTAMP);
CREATE MATERIALIZED VIEW clashing AS SELECT COUNT(*) AS n FROM TUMBLE(clash, window_start, INTERVAL '1' SECOND);
-- A slide longer than the size leaves rows in no window.
SELECT id, window_start FROM HOP(b, ts, INTERVAL '10' SECOND, INTERVAL '2' SECOND) ORDER BY id;
