-- psql (the simple protocol) with session state: temp tables, SQL PREPARE, cursors,
-- notices, errors inside transactions, RESET of startup settings.
-- env: PGAPPNAME=psqltest PGOPTIONS=-c\sextra_float_digits=1
-- modes: session
SHOW application_name;
SHOW extra_float_digits;
SELECT 0.1::float8 + 0.2::float8 AS sum;
CREATE TEMP TABLE tmp (id int PRIMARY KEY, v text);
INSERT INTO tmp VALUES (1, 'a'), (2, 'b');
PREPARE byid(int) AS SELECT v FROM tmp WHERE id = $1;
EXECUTE byid(2);
BEGIN;
INSERT INTO tmp VALUES (3, 'c');
INSERT INTO tmp VALUES (3, 'again');
SELECT 1;
ROLLBACK;
SELECT count(*) FROM tmp;
DEALLOCATE byid;
EXECUTE byid(1);
RESET extra_float_digits;
SHOW extra_float_digits;
RESET ALL;
SHOW application_name;
DO $$ BEGIN RAISE NOTICE 'note %', 1; END $$;
SELECT pg_backend_pid() = pg_backend_pid() AS same;
LISTEN x;
NOTIFY x, 'self';
SELECT 1;
