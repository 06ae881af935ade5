-- Statements whose result depends on the tier: indexes and checkpoints.
CREATE TABLE t (k BIGINT PRIMARY KEY, v VARCHAR);
INSERT INTO t VALUES (1, 'a'), (2, 'b');
CREATE INDEX t_v ON t (v);
CHECKPOINT;
DROP INDEX t_v;
SHOW INDEXES;
-- The failures changed nothing.
SELECT k, v FROM t ORDER BY k;
