-- Ad-hoc SELECT over a table: WHERE, ORDER BY, LIMIT/OFFSET, GROUP BY, aggregates, HAVING.
CREATE TABLE emp (id BIGINT PRIMARY KEY, name VARCHAR, dept VARCHAR, salary BIGINT, bonus DOUBLE, hired TIMESTAMP);
INSERT INTO emp VALUES
    (1, 'ana',   'eng',   120, 10.5, '2020-01-15 09:00:00'),
    (2, 'bo',    'eng',   100, NULL, '2021-06-01 09:00:00'),
    (3, 'cleo',  'sales',  80, 20.0, '2019-03-10 09:00:00'),
    (4, 'dmitri','sales',  95,  5.0, '2022-11-30 09:00:00'),
    (5, 'ed',    'ops',    70, NULL, NULL),
    (6, 'fay',   NULL,     60,  1.0, '2023-01-01 00:00:00'),
    (7, 'gus',   'eng',  NULL,  2.5, '2024-07-04 12:00:00.5');

SELECT * FROM emp WHERE id <= 2 ORDER BY id;
SELECT name, salary FROM emp WHERE salary >= 95 ORDER BY salary DESC;
SELECT name FROM emp WHERE dept = 'eng' AND salary IS NOT NULL ORDER BY name DESC;
SELECT name FROM emp WHERE dept = 'ops' OR bonus > 15 ORDER BY name;
SELECT name FROM emp WHERE NOT (dept = 'eng') ORDER BY name;

-- NULLs sort first ascending and last descending; NULLS FIRST/LAST override.
SELECT name, salary FROM emp ORDER BY salary, name;
SELECT name, salary FROM emp ORDER BY salary DESC, name;
SELECT name, dept FROM emp ORDER BY dept NULLS LAST, name DESC;
SELECT name, dept FROM emp ORDER BY dept DESC NULLS FIRST, name;

-- ORDER BY a position, an alias, an expression not in the output, several keys.
SELECT name, salary * 12 AS yearly FROM emp WHERE salary IS NOT NULL ORDER BY 2 DESC LIMIT 3;
SELECT name, salary * 12 AS yearly FROM emp WHERE salary IS NOT NULL ORDER BY yearly LIMIT 2;
SELECT name FROM emp ORDER BY id % 3, id DESC;

-- LIMIT and OFFSET.
SELECT id FROM emp ORDER BY id LIMIT 3;
SELECT id FROM emp ORDER BY id LIMIT 3 OFFSET 2;
SELECT id FROM emp ORDER BY id LIMIT 10 OFFSET 5;
SELECT id FROM emp ORDER BY id OFFSET 6;
SELECT id FROM emp ORDER BY id LIMIT 0;
SELECT id FROM emp ORDER BY id LIMIT 2 OFFSET 100;

-- GROUP BY with aggregates.
SELECT dept, COUNT(*) AS n, COUNT(salary) AS paid, SUM(salary) AS total, MIN(salary) AS lo, MAX(salary) AS hi,
       AVG(salary) AS mean, SUM(bonus) AS bonuses
FROM emp GROUP BY dept ORDER BY dept;
SELECT dept, COUNT(*) AS n FROM emp GROUP BY dept ORDER BY n DESC, dept;
SELECT dept, MAX(name) AS last_name, MIN(hired) AS first_hire FROM emp GROUP BY dept ORDER BY dept NULLS LAST;
-- An aggregate in ORDER BY only.
SELECT dept FROM emp GROUP BY dept ORDER BY SUM(salary) DESC;
-- GROUP BY an expression, an alias, a position.
SELECT salary / 50 AS band, COUNT(*) AS n FROM emp GROUP BY salary / 50 ORDER BY band;
SELECT salary >= 100 AS senior, COUNT(*) AS n FROM emp GROUP BY senior ORDER BY senior;
SELECT dept IS NULL AS no_dept, COUNT(*) AS n FROM emp GROUP BY 1 ORDER BY 1;
-- GROUP BY two columns.
SELECT dept, bonus IS NULL AS no_bonus, COUNT(*) AS n FROM emp GROUP BY dept, bonus IS NULL ORDER BY dept, no_bonus;

-- HAVING.
SELECT dept, COUNT(*) AS n FROM emp GROUP BY dept HAVING COUNT(*) > 1 ORDER BY dept;
SELECT dept, SUM(salary) AS total FROM emp GROUP BY dept HAVING SUM(salary) > 100 AND dept <> 'ops' ORDER BY total DESC;
SELECT dept FROM emp GROUP BY dept HAVING MAX(bonus) > 10 ORDER BY dept;
-- WHERE applies before grouping, HAVING after.
SELECT dept, COUNT(*) AS n FROM emp WHERE salary > 90 GROUP BY dept HAVING COUNT(*) >= 1 ORDER BY dept;

-- Global aggregates, also over no rows.
SELECT COUNT(*) AS n, SUM(salary) AS total, AVG(bonus) AS mean_bonus, MIN(name) AS first, MAX(hired) AS last FROM emp;
SELECT COUNT(*) AS n, COUNT(salary) AS c, SUM(salary) AS total, AVG(salary) AS mean, MIN(salary) AS lo FROM emp WHERE id > 100;
SELECT COUNT(*) AS n FROM emp HAVING COUNT(*) > 100;
SELECT SUM(salary) + 1 AS s1, COUNT(*) * 2 AS n2, MAX(salary) - MIN(salary) AS spread FROM emp;
-- Grouping over no rows yields no groups.
SELECT dept, COUNT(*) AS n FROM emp WHERE id > 100 GROUP BY dept;

-- Output names: unaliased expressions are named by their text.
SELECT id, salary + 1, COUNT(*) FROM emp WHERE id = 1 GROUP BY id, salary + 1;
SELECT id AS "Mixed Case", name AS upper_name FROM emp WHERE id = 3;

-- Errors in queries.
SELECT name, COUNT(*) FROM emp;
SELECT dept, salary FROM emp GROUP BY dept;
SELECT dept FROM emp WHERE COUNT(*) > 1 GROUP BY dept;
SELECT SUM(name) AS s FROM emp;
SELECT AVG(hired) AS a FROM emp;
SELECT SUM(*) AS s FROM emp;
SELECT COUNT(SUM(salary)) AS c FROM emp;
SELECT id FROM emp ORDER BY 3;
SELECT id FROM emp GROUP BY 5;
SELECT id FROM emp LIMIT -1;
SELECT id FROM emp LIMIT 'x';
SELECT id FROM emp WHERE salary;
SELECT DISTINCT dept FROM emp ORDER BY dept;
SELECT id FROM emp JOIN emp AS e2 ON emp.id = e2.id;
SELECT 1;
SELECT id FROM emp UNION SELECT id FROM emp;
SELECT id FROM emp WHERE EXISTS (SELECT id FROM emp);
