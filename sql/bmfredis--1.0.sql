/* bmfredis--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION bmfredis" to load this file. \quit

------------------------------------------------------------------------
-- Cache: values stored as plain bytes at <bmfredis.key_prefix><key>
------------------------------------------------------------------------

CREATE FUNCTION redis_cache_set(key text, value text, ttl interval DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'redis_cache_set'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_cache_set(text, text, interval) IS
'Stores value (as its bytes) at the prefixed key, with an optional TTL; false if Redis could not be reached';

CREATE FUNCTION redis_cache_set(key text, value bytea, ttl interval DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'redis_cache_set'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_cache_set(text, bytea, interval) IS
'Stores bytes as they are at the prefixed key, with an optional TTL; false if Redis could not be reached';

CREATE FUNCTION redis_cache_set(key text, value jsonb, ttl interval DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'redis_cache_set_jsonb'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_cache_set(text, jsonb, interval) IS
'Stores a jsonb value as JSON text at the prefixed key, with an optional TTL; false if Redis could not be reached';

CREATE FUNCTION redis_cache_get(key text)
RETURNS text
AS 'MODULE_PATHNAME', 'redis_cache_get'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_cache_get(text) IS
'Value at the prefixed key as text; NULL on a miss (or when Redis is unreachable, per bmfredis.on_error)';

CREATE FUNCTION redis_cache_get_json(key text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'redis_cache_get_json'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_cache_get_json(text) IS
'Value at the prefixed key parsed as jsonb; NULL on a miss';

CREATE FUNCTION redis_cache_get_bytea(key text)
RETURNS bytea
AS 'MODULE_PATHNAME', 'redis_cache_get_bytea'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_cache_get_bytea(text) IS
'Value at the prefixed key as raw bytes; NULL on a miss';

CREATE FUNCTION redis_cache_mget(keys text[])
RETURNS text[]
AS 'MODULE_PATHNAME', 'redis_cache_mget'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_cache_mget(text[]) IS
'Values of many keys in one round trip (MGET), NULL elements for misses';

CREATE FUNCTION redis_cache_mset(keys text[], vals text[], ttl interval DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'redis_cache_mset'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_cache_mset(text[], text[], interval) IS
'Stores many key/value pairs in one round trip, with an optional common TTL';

CREATE FUNCTION redis_cache_del(key text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'redis_cache_del'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_cache_del(text) IS
'Removes the key now (UNLINK); returns how many keys existed';

CREATE FUNCTION redis_cache_del(keys text[])
RETURNS bigint
AS 'MODULE_PATHNAME', 'redis_cache_del_many'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_cache_del(text[]) IS
'Removes the keys now in one UNLINK; returns how many existed';

CREATE FUNCTION redis_cache_exists(key text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'redis_cache_exists'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_cache_exists(text) IS
'Whether the prefixed key exists; NULL when Redis cannot be asked';

CREATE FUNCTION redis_cache_ttl(key text)
RETURNS interval
AS 'MODULE_PATHNAME', 'redis_cache_ttl'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_cache_ttl(text) IS
'Time left before the key expires; NULL if it does not exist or never expires';

CREATE FUNCTION redis_cache_expire(key text, ttl interval)
RETURNS boolean
AS 'MODULE_PATHNAME', 'redis_cache_expire'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_cache_expire(text, interval) IS
'Sets the time to live of an existing key; false if there is no such key';

CREATE FUNCTION redis_cache_expire_at(key text, at timestamptz)
RETURNS boolean
AS 'MODULE_PATHNAME', 'redis_cache_expire_at'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_cache_expire_at(text, timestamptz) IS
'Makes an existing key expire at the given time (a past time removes it now)';

CREATE FUNCTION redis_cache_incr(key text, by bigint DEFAULT 1)
RETURNS bigint
AS 'MODULE_PATHNAME', 'redis_cache_incr'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_cache_incr(text, bigint) IS
'Atomically adds to the integer at the key (INCRBY) and returns the new value';

CREATE FUNCTION redis_ttl(class text)
RETURNS interval
AS 'MODULE_PATHNAME', 'redis_ttl'
LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION redis_ttl(text) IS
'TTL of a named class: short, medium, long, very_long (settings bmfredis.ttl_<class>)';

------------------------------------------------------------------------
-- Health and administration
------------------------------------------------------------------------

CREATE FUNCTION redis_health(
    OUT healthy boolean,
    OUT status text,
    OUT latency_ms double precision,
    OUT version text,
    OUT role text,
    OUT used_memory bigint,
    OUT used_memory_human text,
    OUT connected_clients integer,
    OUT uptime_seconds bigint,
    OUT node text,
    OUT key_prefix text)
RETURNS record
AS 'MODULE_PATHNAME', 'redis_health'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_health() IS
'Health of the Redis server from PING and INFO; never raises for a Redis fault';

CREATE FUNCTION redis_info(section text DEFAULT NULL,
    OUT section text, OUT key text, OUT value text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'redis_info'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_info(text) IS
'Redis INFO as rows of (section, key, value)';

CREATE FUNCTION redis_connections(
    OUT node text,
    OUT state text,
    OUT db integer,
    OUT connected_since timestamptz,
    OUT last_used timestamptz,
    OUT commands bigint,
    OUT errors bigint,
    OUT reconnects bigint,
    OUT failures integer,
    OUT retry_after timestamptz,
    OUT last_error text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'redis_connections'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_connections() IS
'This backend''s Redis connections, one per node, with counters and the last error';

CREATE FUNCTION redis_disconnect()
RETURNS integer
AS 'MODULE_PATHNAME', 'redis_disconnect'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_disconnect() IS
'Closes this backend''s Redis connections; returns how many were open';

CREATE FUNCTION redis_command(VARIADIC args text[])
RETURNS text
AS 'MODULE_PATHNAME', 'redis_command'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_command(text[]) IS
'Runs one raw Redis command (no key prefix) and returns its reply as text, arrays as JSON; for administrators';

REVOKE ALL ON FUNCTION redis_command(text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION redis_info(text) FROM PUBLIC;
