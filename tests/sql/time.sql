-- Time: INTERVAL literals in arithmetic (an interval is BIGINT milliseconds), timestamp
-- differences, date_trunc, extract and date_part.
CREATE SOURCE clicks (page VARCHAR NOT NULL, ts TIMESTAMP NOT NULL);

-- A view per hour and per ISO week, with the window's end computed from an interval.
CREATE MATERIALIZED VIEW per_hour AS
    SELECT date_trunc('hour', ts) AS hour, date_trunc('hour', ts) + INTERVAL '1' HOUR AS hour_end,
           COUNT(*) AS n
    FROM clicks GROUP BY date_trunc('hour', ts);
CREATE MATERIALIZED VIEW per_weekday AS
    SELECT extract(dow FROM ts) AS dow, COUNT(*) AS n FROM clicks
    WHERE ts >= TIMESTAMP '2026-02-16 00:00:00' - INTERVAL '7' DAY
    GROUP BY extract(dow FROM ts);

INSERT INTO clicks VALUES
    ('/a', '2026-02-18 13:47:05.250'), ('/b', '2026-02-18 13:59:59'),
    ('/a', '2026-02-18 14:00:00'), ('/c', '2026-02-21 09:00:00'),
    ('/a', '2025-12-31 23:59:59.999');

SELECT hour, hour_end, n FROM per_hour ORDER BY hour;
SELECT dow, n FROM per_weekday ORDER BY dow;

CREATE TABLE events (id BIGINT PRIMARY KEY, at TIMESTAMP, until TIMESTAMP);
INSERT INTO events VALUES (1, '2026-02-18 13:47:05.250', '2026-02-18 14:00:00'),
    (2, '2024-02-29 00:00:00', '2024-03-01 12:30:00'), (3, NULL, NULL);

SELECT id, until - at AS ms, (until - at) / 1000 AS seconds, at + INTERVAL '90' MINUTE AS later,
       at - INTERVAL '1' WEEK AS week_before, at + INTERVAL '1 day' AS next_day,
       at + INTERVAL '250' MILLISECOND AS plus_ms
    FROM events ORDER BY id;
SELECT id, date_trunc('second', at) AS s, date_trunc('minute', at) AS m, date_trunc('day', at) AS d,
       date_trunc('week', at) AS w, date_trunc('month', at) AS mo, date_trunc('quarter', at) AS q,
       date_trunc('year', at) AS y
    FROM events ORDER BY id;
SELECT id, extract(year FROM at) AS y, extract(quarter FROM at) AS q, extract(month FROM at) AS mo,
       extract(week FROM at) AS w, extract(day FROM at) AS d, extract(doy FROM at) AS doy,
       extract(hour FROM at) AS h, extract(minute FROM at) AS mi, extract(second FROM at) AS s,
       date_part('millisecond', at) AS ms, date_part('epoch', at) AS epoch
    FROM events ORDER BY id;
SELECT id FROM events WHERE at > TIMESTAMP '2026-01-01 00:00:00' - INTERVAL '1' DAY ORDER BY id;

-- Errors: months are not intervals, unknown units and fields, a unit not in quotes, a
-- function of the wrong type.
SELECT at + INTERVAL '1' MONTH FROM events;
SELECT date_trunc('fortnight', at) FROM events;
SELECT date_part('century', at) FROM events;
SELECT date_trunc(id, at) FROM events;
SELECT extract(year FROM id) FROM events;
