-- Dates and times under the client's PGTZ and PGDATESTYLE (PostgreSQL's date, timestamp
-- and horology regression tests start this way), in both modes.
-- env: PGTZ=PST8PDT PGDATESTYLE=Postgres,\sMDY
SHOW timezone;
SHOW datestyle;
SELECT '2001-02-16 20:38:40'::timestamptz AS t;
SELECT '2001-02-16'::date AS d, '1 day 2 hours'::interval AS i;
SET timezone = 'UTC';
SELECT '2001-02-16 20:38:40+00'::timestamptz AS t;
RESET timezone;
SHOW timezone;
SELECT '2001-02-16 20:38:40+00'::timestamptz AS t;
SET datestyle = 'ISO, DMY';
RESET ALL;
SHOW datestyle;
SELECT '2001-02-16 20:38:40+00'::timestamptz AS t;
BEGIN;
SET LOCAL timezone = 'Asia/Tokyo';
SELECT '2001-02-16 20:38:40+00'::timestamptz AS t;
COMMIT;
SELECT '2001-02-16 20:38:40+00'::timestamptz AS t;
