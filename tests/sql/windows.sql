-- Tumbling event-time windows: tumble() is the window start, tumble_end() the end.
CREATE SOURCE readings (sensor VARCHAR NOT NULL, value DOUBLE, ts TIMESTAMP NOT NULL);

CREATE MATERIALIZED VIEW per_10s AS
    SELECT tumble(ts, INTERVAL '10' SECOND) AS w, tumble_end(ts, INTERVAL '10' SECOND) AS w_end,
           COUNT(*) AS n, SUM(value) AS total
    FROM readings GROUP BY tumble(ts, INTERVAL '10' SECOND);

CREATE MATERIALIZED VIEW per_minute_sensor AS
    SELECT sensor, tumble(ts, INTERVAL '1' MINUTE) AS minute, COUNT(*) AS n, MAX(value) AS peak
    FROM readings GROUP BY sensor, tumble(ts, INTERVAL '1' MINUTE);

CREATE MATERIALIZED VIEW per_2h AS
    SELECT tumble(ts, INTERVAL '2' HOUR) AS w, tumble_end(ts, INTERVAL '2' HOUR) AS w_end, COUNT(*) AS n
    FROM readings GROUP BY tumble(ts, INTERVAL '2' HOUR);

CREATE MATERIALIZED VIEW per_day AS
    SELECT tumble(ts, INTERVAL '1' DAY) AS day, MIN(value) AS lo, MAX(value) AS hi, AVG(value) AS mean
    FROM readings WHERE value IS NOT NULL GROUP BY tumble(ts, INTERVAL '1' DAY);

-- The group key may be referred to by its alias.
CREATE MATERIALIZED VIEW per_15m AS
    SELECT tumble(ts, INTERVAL '15' MINUTE) AS q, tumble_end(ts, INTERVAL '15' MINUTE) AS q_end, COUNT(*) AS n
    FROM readings GROUP BY q;

INSERT INTO readings VALUES
    ('a', 1.0, '2026-03-01 00:00:00'),
    ('a', 2.0, '2026-03-01 00:00:09.999'),
    ('b', 4.0, '2026-03-01 00:00:10'),
    ('a', 8.0, '2026-03-01 00:00:59.5'),
    ('b', NULL, '2026-03-01 00:01:00'),
    ('a', 16.0, '2026-03-01 01:59:59.999'),
    ('b', 32.0, '2026-03-01 02:00:00'),
    ('a', 64.0, '2026-03-01 23:59:59'),
    ('b', 128.0, '2026-03-02 00:00:00.001'),
    ('a', -1.0, '1969-12-31 23:59:59.999');

SELECT w, w_end, n, total FROM per_10s ORDER BY w;
SELECT sensor, minute, n, peak FROM per_minute_sensor ORDER BY sensor, minute;
SELECT w, w_end, n FROM per_2h ORDER BY w;
SELECT day, lo, hi, mean FROM per_day ORDER BY day DESC;
SELECT q, q_end, n FROM per_15m ORDER BY q;

-- Windows in ad-hoc queries, over a table.
CREATE TABLE events (id BIGINT PRIMARY KEY, ts TIMESTAMP);
INSERT INTO events VALUES (1, '2026-05-05 12:34:56.789'), (2, '2026-05-05 12:35:00'), (3, NULL), (4, '2026-05-05 13:00:00');
SELECT id, tumble(ts, INTERVAL '1' HOUR) AS h, tumble_end(ts, INTERVAL '1' HOUR) AS h_end,
       tumble(ts, INTERVAL '30' SECOND) AS s30, tumble(ts, INTERVAL '1' DAY) AS d
FROM events ORDER BY id;
SELECT tumble(ts, INTERVAL '1' HOUR) AS h, COUNT(*) AS n FROM events GROUP BY tumble(ts, INTERVAL '1' HOUR) ORDER BY h;

-- Other interval spellings.
SELECT id, tumble(ts, INTERVAL '5 MINUTES') AS m5 FROM events WHERE id = 1;

-- A window whose bounds do not fit a timestamp is an error, not a wrap-around.
SELECT tumble_end(ts + 9223370258842800000, INTERVAL '106751991167' DAY) AS e FROM events WHERE id = 4;
SELECT tumble(ts, INTERVAL '106751991167' DAY) AS s, tumble_end(ts, INTERVAL '106751991167' DAY) AS e FROM events WHERE id = 4;

-- Bad windows.
SELECT tumble(id, INTERVAL '1' HOUR) AS h FROM events;
SELECT tumble(ts, INTERVAL '0' HOUR) AS h FROM events;
SELECT tumble(ts, INTERVAL '1' MONTH) AS h FROM events;
SELECT tumble(ts, 60) AS h FROM events;
SELECT tumble(ts) AS h FROM events;
