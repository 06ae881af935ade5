-- Conditional expressions, predicates, CAST and scalar functions: in views, WHERE, HAVING
-- and queries alike.
CREATE SOURCE bids (
    auction BIGINT NOT NULL,
    bidder VARCHAR NOT NULL,
    price DOUBLE,
    qty BIGINT,
    channel VARCHAR,
    ts TIMESTAMP NOT NULL
);
CREATE TABLE users (id BIGINT PRIMARY KEY, name VARCHAR, city VARCHAR, score BIGINT);

-- CASE in the group key and inside an aggregate; IN and LIKE in the WHERE.
CREATE MATERIALIZED VIEW by_band AS
    SELECT CASE WHEN price < 10 THEN 'cheap' WHEN price < 100 THEN 'mid' ELSE 'dear' END AS band,
           COUNT(*) AS n,
           SUM(CASE WHEN channel = 'app' THEN 1 ELSE 0 END) AS from_app
    FROM bids WHERE auction IN (1, 2, 3) AND bidder NOT LIKE 'bot%'
    GROUP BY CASE WHEN price < 10 THEN 'cheap' WHEN price < 100 THEN 'mid' ELSE 'dear' END;

-- COALESCE and a simple CASE; HAVING with BETWEEN.
CREATE MATERIALIZED VIEW per_channel AS
    SELECT COALESCE(channel, 'unknown') AS ch,
           CASE COALESCE(channel, 'unknown') WHEN 'app' THEN 1 WHEN 'web' THEN 2 ELSE 0 END AS code,
           COUNT(*) AS n, SUM(qty) AS items
    FROM bids GROUP BY COALESCE(channel, 'unknown')
    HAVING COUNT(*) BETWEEN 2 AND 100;

INSERT INTO bids VALUES
    (1, 'ann', 5.5, 1, 'app', '2026-01-02 03:04:05'),
    (1, 'bob', 50.0, 2, 'web', '2026-01-02 03:04:06'),
    (2, 'bot-7', 500.0, 3, 'app', '2026-01-02 03:04:07'),
    (2, 'cy', 250.0, NULL, NULL, '2026-01-02 03:04:08'),
    (3, 'Dee', NULL, 5, 'app', '2026-01-02 03:04:09'),
    (4, 'eve', 1.0, 1, 'web', '2026-01-02 03:04:10'),
    (3, 'fay', 99.99, 2, NULL, '2026-01-02 03:04:11');

SELECT band, n, from_app FROM by_band ORDER BY band;
SELECT ch, code, n, items FROM per_channel ORDER BY ch;
SELECT n FROM by_band WHERE band IN ('cheap', 'dear') ORDER BY n;

INSERT INTO users VALUES
    (1, '  Ann ', 'Oslo', 10), (2, 'bob', NULL, NULL), (3, 'Cy_3', 'Rome', -7),
    (4, 'dee%', 'Oslo', 7), (5, 'Émile', 'Paris', 1000);

-- Predicates: NULLs in IN lists, BETWEEN, [I]LIKE with _ and ESCAPE, IS [NOT] DISTINCT FROM.
SELECT id FROM users WHERE score IN (10, NULL) ORDER BY id;
SELECT id, score NOT IN (10, NULL) AS not_ten FROM users ORDER BY id;
SELECT id FROM users WHERE score BETWEEN -10 AND 10 ORDER BY id;
SELECT id FROM users WHERE score NOT BETWEEN -10 AND 10 ORDER BY id;
SELECT id FROM users WHERE name LIKE 'Cy!_%' ESCAPE '!' OR name LIKE '%!%' ESCAPE '!' ORDER BY id;
SELECT id FROM users WHERE name ILIKE 'BOB' OR name LIKE '_mile' ORDER BY id;
SELECT id, city IS DISTINCT FROM 'Oslo' AS elsewhere, city IS NOT DISTINCT FROM NULL AS no_city
    FROM users ORDER BY id;

-- CASE without ELSE is NULL; branches of BIGINT and DOUBLE give DOUBLE.
SELECT id, CASE WHEN score > 100 THEN 'high' WHEN score > 0 THEN 'some' END AS level,
       CASE WHEN id = 1 THEN 1 ELSE 2.5 END AS mixed
    FROM users ORDER BY id;

-- NULL handling functions.
SELECT id, COALESCE(city, name) AS place, NULLIF(score, 10) AS not_ten,
       GREATEST(score, id * 100) AS hi, LEAST(score, 0, NULL) AS lo
    FROM users ORDER BY id;

-- Numbers.
SELECT abs(-7) AS a, abs(-2.5) AS b, round(2.5) AS c, round(-2.5) AS d, round(3.14159, 2) AS e,
       round(1234, -2) AS f, floor(-1.5) AS g, ceil(1.2) AS h, mod(17, 5) AS i, 17 % -5 AS j,
       power(2, 10) AS k, sqrt(16) AS l
    FROM users WHERE id = 1;

-- Text.
SELECT id, lower(name) AS lo, upper(name) AS up, length(name) AS len, trim(name) AS t,
       substring(name FROM 2 FOR 3) AS sub, substr(name, 2) AS rest, replace(name, 'b', 'B') AS r,
       concat(name, '-', id, '-', city) AS c, position('o' IN name) AS pos, strpos(name, 'e') AS sp,
       starts_with(name, 'd') AS d
    FROM users ORDER BY id;
SELECT trim(LEADING 'x' FROM 'xxhixx') AS l, trim(TRAILING 'x' FROM 'xxhixx') AS r,
       trim(BOTH 'x' FROM 'xxhixx') AS b, length('') AS empty
    FROM users WHERE id = 1;

-- CAST and ::.
SELECT CAST('42' AS BIGINT) + 1 AS a, CAST(2.6 AS BIGINT) AS b, CAST(id AS DOUBLE) / 4 AS c,
       CAST(score AS VARCHAR) AS d, '2026-01-02 03:04:05'::TIMESTAMP AS e, CAST('yes' AS BOOLEAN) AS f,
       CAST(1 AS BOOLEAN) AS g, CAST(name AS VARCHAR) AS h
    FROM users ORDER BY id;

-- Errors: a value that does not fit, a cast SQL does not define, mixed CASE types, a bad
-- ESCAPE, functions of the wrong type, division and modulo by zero for every numeric type,
-- the wall clock, and an unknown function.
SELECT CAST('abc' AS BIGINT) FROM users;
SELECT CAST(name AS BIGINT) FROM users WHERE id = 3;
SELECT CAST(1e30 AS BIGINT) FROM users;
SELECT CAST(score > 1 AS TIMESTAMP) FROM users;
SELECT CASE WHEN id = 1 THEN 'one' ELSE 2 END FROM users;
SELECT id FROM users WHERE name LIKE 'a' ESCAPE 'xy';
SELECT id FROM users WHERE score LIKE '1%';
SELECT upper(score) FROM users;
SELECT sqrt(score) FROM users ORDER BY id;
SELECT 1 % 0 FROM users;
SELECT 1.5 % 0 FROM users;
SELECT 1.5 / 0 FROM users;
SELECT mod(score, 0) FROM users;
SELECT now() FROM users;
CREATE MATERIALIZED VIEW clocked AS SELECT bidder, COUNT(*) AS n FROM bids WHERE ts < now() GROUP BY bidder;
SELECT frobnicate(1) FROM users;
SELECT coalesce() FROM users;
-- COALESCE stops at the first argument that is not NULL: later ones are not evaluated.
SELECT id, coalesce(id, 1 / 0) AS c FROM users ORDER BY id LIMIT 2;
SELECT coalesce(NULL, 1 / 0) FROM users;
