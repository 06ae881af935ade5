-- A streaming pipeline: a source of page views, two views maintained on every insert,
-- and a keyed table of page titles. The default tier keeps what it is given in
-- ./strata-data, so the script first drops what an earlier run left there.
DROP MATERIALIZED VIEW IF EXISTS views_per_page;
DROP MATERIALIZED VIEW IF EXISTS views_per_minute;
DROP SOURCE IF EXISTS page_views;
DROP TABLE IF EXISTS pages;

CREATE SOURCE page_views (
    user_id BIGINT NOT NULL,
    page VARCHAR NOT NULL,
    duration_ms BIGINT,
    ts TIMESTAMP NOT NULL
);

CREATE MATERIALIZED VIEW views_per_page AS
    SELECT page, COUNT(*) AS views, AVG(duration_ms) AS avg_ms, MAX(duration_ms) AS longest
    FROM page_views
    GROUP BY page;

CREATE MATERIALIZED VIEW views_per_minute AS
    SELECT tumble(ts, INTERVAL '1' MINUTE) AS minute, COUNT(*) AS views, SUM(duration_ms) AS total_ms
    FROM page_views
    WHERE duration_ms IS NOT NULL
    GROUP BY tumble(ts, INTERVAL '1' MINUTE);

CREATE TABLE pages (page VARCHAR PRIMARY KEY, title VARCHAR NOT NULL);

INSERT INTO pages VALUES ('/home', 'Home'), ('/docs', 'Documentation');

INSERT INTO page_views VALUES
    (1, '/home', 1200, '2026-01-02 03:04:05'),
    (2, '/docs', 5400, '2026-01-02 03:04:40.250'),
    (1, '/docs', NULL, '2026-01-02 03:05:10'),
    (3, '/home', 800,  '2026-01-02 03:05:59.999');

SELECT page, views, avg_ms, longest FROM views_per_page ORDER BY views DESC, page;

SELECT minute, views, total_ms FROM views_per_minute ORDER BY minute;

SELECT title FROM pages WHERE page = '/docs';
