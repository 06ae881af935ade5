-- Primary keys of several columns: the key is the combination, each part NOT NULL.
CREATE TABLE daily (user_id BIGINT, day TIMESTAMP, visits BIGINT NOT NULL, note TEXT, PRIMARY KEY (user_id, day));
DESCRIBE daily;
INSERT INTO daily VALUES (1, '2026-01-01', 3, 'a'), (1, '2026-01-02', 5, NULL), (2, '2026-01-01', 1, 'b');
INSERT INTO daily VALUES (1, '2026-01-01', 9, 'dup');
INSERT INTO daily VALUES (3, '2026-01-01', 1, NULL), (3, '2026-01-01', 2, NULL);
INSERT INTO daily VALUES (NULL, '2026-01-01', 1, NULL);
INSERT OR REPLACE INTO daily VALUES (1, '2026-01-01', 4, 'replaced');
SELECT * FROM daily ORDER BY user_id, day;
-- Point lookups need every key column.
SELECT visits FROM daily WHERE user_id = 1 AND day = '2026-01-02';
SELECT visits FROM daily WHERE day = TIMESTAMP '2026-01-01' AND user_id = 2;
SELECT COUNT(*) FROM daily WHERE user_id = 1;
SELECT visits FROM daily WHERE user_id = 9 AND day = '2026-01-02';
-- Upserts name the whole key, in any order.
INSERT INTO daily VALUES (1, '2026-01-02', 1, 'x') ON CONFLICT (day, user_id) DO UPDATE SET visits = daily.visits + excluded.visits;
INSERT INTO daily VALUES (1, '2026-01-02', 1, 'x') ON CONFLICT (user_id) DO NOTHING;
INSERT INTO daily VALUES (1, '2026-01-02', 1, 'x'), (4, '2026-01-02', 7, 'new') ON CONFLICT DO NOTHING;
UPDATE daily SET day = '2026-02-01' WHERE user_id = 1;
UPDATE daily SET note = 'seen' WHERE user_id = 1 AND day = '2026-01-02';
DELETE FROM daily WHERE user_id = 2 AND day = '2026-01-01';
SELECT * FROM daily ORDER BY user_id, day;
CREATE TABLE twice (a BIGINT, b BIGINT, PRIMARY KEY (a, a));
CREATE TABLE dbl (a BIGINT, b DOUBLE, PRIMARY KEY (a, b));
CREATE TABLE text_key (region TEXT, code BIGINT, name TEXT, PRIMARY KEY (region, code));
INSERT INTO text_key VALUES ('eu', 1, 'x'), ('us', 1, 'y'), ('eu', 2, 'z');
INSERT INTO text_key VALUES ('eu', 2, 'again');
SELECT name FROM text_key WHERE region = 'eu' AND code = 2;
