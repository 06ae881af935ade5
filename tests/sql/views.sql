-- Several materialized views on one source, maintained on every insert.
CREATE SOURCE orders (
    id BIGINT NOT NULL,
    customer VARCHAR NOT NULL,
    region VARCHAR,
    amount BIGINT,
    price DOUBLE,
    paid BOOLEAN,
    ts TIMESTAMP NOT NULL
);

-- COUNT(*) counts rows, COUNT(x) non-NULL values; SUM/MIN/MAX/AVG skip NULLs.
CREATE MATERIALIZED VIEW by_customer AS
    SELECT customer, COUNT(*) AS n, COUNT(amount) AS n_amount, SUM(amount) AS total,
           MIN(amount) AS lo, MAX(amount) AS hi, AVG(amount) AS mean
    FROM orders GROUP BY customer;

-- A WHERE filter in a view.
CREATE MATERIALIZED VIEW paid_by_region AS
    SELECT region, COUNT(*) AS n, SUM(price) AS revenue
    FROM orders WHERE paid AND price IS NOT NULL GROUP BY region;

-- GROUP BY two columns.
CREATE MATERIALIZED VIEW by_region_customer AS
    SELECT region, customer, COUNT(*) AS n, MAX(price) AS top
    FROM orders GROUP BY region, customer;

-- Expressions in the group key and in outputs.
CREATE MATERIALIZED VIEW by_bucket AS
    SELECT amount / 10 AS bucket, COUNT(*) AS n, SUM(amount) * 2 AS twice, MAX(amount) - MIN(amount) AS spread,
           SUM(amount) / COUNT(amount) AS int_avg
    FROM orders WHERE amount IS NOT NULL GROUP BY amount / 10;

-- A global aggregate (no GROUP BY): exactly one row, even before any input.
CREATE MATERIALIZED VIEW totals AS
    SELECT COUNT(*) AS n, COUNT(region) AS with_region, SUM(amount) AS total, MIN(price) AS cheapest,
           MAX(ts) AS last_ts, AVG(price) AS mean_price, MIN(customer) AS first_customer
    FROM orders;

SELECT n, with_region, total, cheapest, last_ts, mean_price, first_customer FROM totals;
SELECT customer, n FROM by_customer ORDER BY customer;

INSERT INTO orders VALUES
    (1, 'alice', 'eu', 10, 2.5, true, '2026-01-01 10:00:00'),
    (2, 'bob', 'us', 25, 10.0, false, '2026-01-01 10:05:00'),
    (3, 'alice', 'eu', NULL, 4.0, true, '2026-01-01 10:10:00'),
    (4, 'carol', NULL, 7, NULL, true, '2026-01-01 11:00:00');

INSERT INTO orders (id, customer, ts, amount, region, price, paid) VALUES
    (5, 'bob', '2026-01-02 09:00:00.250', 13, 'us', 1.25, true),
    (6, 'alice', '2026-01-02 09:30:00', 19, 'us', 0.5, NULL),
    (7, 'dave', '2026-01-02 10:00:00', NULL, NULL, NULL, NULL);

SELECT customer, n, n_amount, total, lo, hi, mean FROM by_customer ORDER BY customer;
SELECT region, n, revenue FROM paid_by_region ORDER BY region;
SELECT region, customer, n, top FROM by_region_customer ORDER BY region, customer;
SELECT bucket, n, twice, spread, int_avg FROM by_bucket ORDER BY bucket;
SELECT n, with_region, total, cheapest, last_ts, mean_price, first_customer FROM totals;

-- Rows rejected by a view's WHERE still count in the other views.
INSERT INTO orders VALUES (8, 'erin', 'eu', 100, 3.0, false, '2026-01-03 00:00:00');
SELECT region, n, revenue FROM paid_by_region ORDER BY region;
SELECT customer, n, total FROM by_customer WHERE customer = 'erin';
SELECT n, total FROM totals;

-- A failing insert changes no view.
INSERT INTO orders VALUES (9, NULL, 'eu', 1, 1.0, true, '2026-01-03 00:00:00');
INSERT INTO orders VALUES (9, 'frank', 'eu', 1, 1.0, true, '2026-01-03 00:00:00'), (10, 'gina', 'eu', 'x', 1.0, true, '2026-01-03 00:00:00');
SELECT n, total FROM totals;
SELECT customer FROM by_customer WHERE customer >= 'f' ORDER BY customer;

-- Querying a view: filters, expressions, ordering and aggregates over its rows.
SELECT customer, total * 10 AS total10 FROM by_customer WHERE total > 20 ORDER BY total10 DESC;
SELECT COUNT(*) AS customers, SUM(n) AS orders, MAX(mean) AS best_mean FROM by_customer;
SELECT region, SUM(n) AS n FROM by_region_customer GROUP BY region ORDER BY region;
SELECT * FROM by_region_customer WHERE region IS NULL ORDER BY customer;

-- A view sees only the rows inserted after it was created (a source keeps no rows).
CREATE MATERIALIZED VIEW late AS SELECT customer, COUNT(*) AS n FROM orders GROUP BY customer;
SELECT customer, n FROM late ORDER BY customer;
INSERT INTO orders VALUES (11, 'alice', 'eu', 5, 1.0, true, '2026-01-04 00:00:00');
SELECT customer, n FROM late ORDER BY customer;
SELECT customer, n FROM by_customer WHERE customer = 'alice';

-- HAVING in a view is applied when it is read; a key of three columns, of BOOLEAN and DOUBLE.
CREATE MATERIALIZED VIEW busy AS
    SELECT customer, COUNT(*) AS n FROM orders GROUP BY customer HAVING COUNT(*) >= 2;
CREATE MATERIALIZED VIEW by_three AS
    SELECT region, paid, price, COUNT(*) AS n, SUM(amount) AS total FROM orders GROUP BY region, paid, price;
INSERT INTO orders VALUES
    (12, 'hal', 'eu', 1, 2.5, true, '2026-01-05 00:00:00'),
    (13, 'hal', 'eu', 2, 2.5, true, '2026-01-05 00:00:01'),
    (14, 'ivy', 'eu', 4, 2.5, false, '2026-01-05 00:00:02'),
    (15, 'ivy', NULL, 8, NULL, NULL, '2026-01-05 00:00:03'),
    (16, 'jo', 'eu', 16, -0.0, true, '2026-01-05 00:00:04'),
    (17, 'jo', 'eu', 32, 0.0, true, '2026-01-05 00:00:05');
SELECT customer, n FROM busy ORDER BY customer;
SELECT region, paid, price, n, total FROM by_three ORDER BY region, paid, price;

-- An error while evaluating one view (division by zero in its key) fails the whole
-- insert: no view sees any of its rows.
CREATE MATERIALIZED VIEW per_inverse AS
    SELECT 100 / amount AS inv, COUNT(*) AS n FROM orders GROUP BY 100 / amount;
INSERT INTO orders VALUES
    (18, 'kim', 'us', 50, 1.0, true, '2026-01-06 00:00:00'),
    (19, 'kim', 'us', 0, 1.0, true, '2026-01-06 00:00:01');
SELECT inv, n FROM per_inverse ORDER BY inv;
SELECT customer FROM by_customer WHERE customer = 'kim';
SELECT n, total FROM totals;
INSERT INTO orders VALUES (18, 'kim', 'us', 50, 1.0, true, '2026-01-06 00:00:00');
SELECT inv, n FROM per_inverse ORDER BY inv;
SELECT customer, n FROM by_customer WHERE customer = 'kim';

-- View columns.
DESCRIBE by_customer;
DESCRIBE by_bucket;
DESCRIBE totals;

-- Views cannot be inserted into, and do not read tables or other views.
INSERT INTO by_customer VALUES ('zed', 1, 1, 1, 1, 1, 1.0);
CREATE TABLE lookup (k BIGINT PRIMARY KEY, v BIGINT);
CREATE MATERIALIZED VIEW over_table AS SELECT k, COUNT(*) AS n FROM lookup GROUP BY k;
CREATE MATERIALIZED VIEW over_view AS SELECT customer, COUNT(*) AS n FROM by_customer GROUP BY customer;
CREATE MATERIALIZED VIEW dup_cols AS SELECT customer, COUNT(*), COUNT(*) FROM orders GROUP BY customer;
CREATE MATERIALIZED VIEW ordered AS SELECT customer, COUNT(*) AS n FROM orders GROUP BY customer ORDER BY customer;
CREATE MATERIALIZED VIEW by_customer AS SELECT customer, COUNT(*) AS n FROM orders GROUP BY customer;
CREATE MATERIALIZED VIEW ungrouped AS SELECT customer, region, COUNT(*) AS n FROM orders GROUP BY customer;
CREATE MATERIALIZED VIEW bad_sum AS SELECT customer, SUM(region) AS s FROM orders GROUP BY customer;
CREATE MATERIALIZED VIEW no_source AS SELECT k, COUNT(*) AS n FROM nowhere GROUP BY k;
SHOW VIEWS;
