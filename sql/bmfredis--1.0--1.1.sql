/* bmfredis--1.0--1.1.sql: what 1.1 changes in the SQL objects of 1.0 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION bmfredis UPDATE TO '1.1'" to load this file. \quit

------------------------------------------------------------------------
-- One worker per database (the launcher)
------------------------------------------------------------------------

CREATE FUNCTION redis_workers(
    OUT database name,
    OUT state text,
    OUT pid integer,
    OUT since timestamptz,
    OUT last_active timestamptz,
    OUT channels integer,
    OUT retry_pending bigint,
    OUT restarts integer,
    OUT note text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'redis_workers'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_workers() IS
'The bmfredis launcher and each database''s worker: state (starting, running, no worker slot, restarting, paused), pid, channels relayed, retries waiting';

COMMENT ON FUNCTION redis_run_scheduled() IS
'Runs the scheduled invalidations of this database that are due (the database''s bmfredis worker does it every bmfredis.worker_naptime); returns how many';
