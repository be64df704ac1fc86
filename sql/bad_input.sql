-- Bad input of every kind: an ERROR with an SQLSTATE and a hint, and the
-- connection stays usable.  try() shows the SQLSTATE, message and hint of
-- the error a statement raises.
SET bmfredis.key_prefix = 'bad:';
CREATE FUNCTION pg_temp.try(stmt text, OUT state text, OUT message text, OUT hint text)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    state := '00000';
    message := 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                            hint = PG_EXCEPTION_HINT;
END $$;
\pset null ''
SELECT * FROM pg_temp.try($$SELECT redis_cache_set(NULL, 'v')$$);
SELECT * FROM pg_temp.try($$SELECT redis_cache_set('', 'v')$$);
SELECT * FROM pg_temp.try($$SELECT redis_cache_get(NULL)$$);
SELECT * FROM pg_temp.try($$SELECT redis_cache_get('')$$);
SELECT * FROM pg_temp.try($$SELECT redis_cache_set('k', NULL::text)$$);
SELECT * FROM pg_temp.try($$SELECT redis_cache_set('k', 'v', '0 seconds')$$);
SELECT * FROM pg_temp.try($$SELECT redis_cache_set('k', 'v', '-5 minutes')$$);
SELECT * FROM pg_temp.try($$SELECT redis_cache_set('k', 'v', '2147483647 days 2147483647 mons')$$);
SELECT * FROM pg_temp.try($$SELECT redis_cache_expire('k', NULL)$$);
SELECT * FROM pg_temp.try($$SELECT redis_cache_expire_at('k', 'infinity')$$);
SELECT * FROM pg_temp.try($$SELECT redis_cache_incr('k', NULL)$$);
SET bmfredis.max_value_size = '1kB';
SELECT * FROM pg_temp.try($$SELECT redis_cache_set('k', repeat('x', 2000))$$);
SELECT * FROM pg_temp.try($$SELECT redis_cache_mset(ARRAY['k'], ARRAY[repeat('x', 2000)])$$);
RESET bmfredis.max_value_size;

-- a key holding another Redis type
SELECT redis_command('RPUSH', 'bad:list', 'a');
SELECT * FROM pg_temp.try($$SELECT redis_cache_get('list')$$);
SELECT * FROM pg_temp.try($$SELECT redis_cache_get_json('list')$$);
SELECT * FROM pg_temp.try($$SELECT redis_cache_incr('list')$$);

-- values that are not what the reader asks for
SELECT redis_cache_set('notjson', 'not json at all');
SELECT * FROM pg_temp.try($$SELECT redis_cache_get_json('notjson')$$);
SELECT * FROM pg_temp.try($$SELECT redis_cache_incr('notjson')$$);
SELECT redis_cache_set('binary', '\x41ff00'::bytea);
SELECT * FROM pg_temp.try($$SELECT redis_cache_get('binary')$$);
SELECT redis_cache_get_bytea('binary');

-- arrays
SELECT * FROM pg_temp.try($$SELECT redis_cache_mset(ARRAY['a'], ARRAY['1', '2'])$$);
SELECT * FROM pg_temp.try($$SELECT redis_cache_mset(ARRAY['a', NULL], ARRAY['1', '2'])$$);
SELECT * FROM pg_temp.try($$SELECT redis_cache_mget(ARRAY['a', NULL])$$);
SELECT * FROM pg_temp.try($$SELECT redis_cache_mget(ARRAY['a', ''])$$);
SELECT * FROM pg_temp.try($$SELECT redis_cache_mget(NULL)$$);
SELECT * FROM pg_temp.try($$SELECT redis_cache_mget(ARRAY[['a', 'b'], ['c', 'd']])$$);
SELECT * FROM pg_temp.try($$SELECT redis_cache_del(ARRAY['a', NULL])$$);

-- names and administration
SELECT * FROM pg_temp.try($$SELECT redis_ttl('forever')$$);
SELECT * FROM pg_temp.try($$SELECT redis_command(VARIADIC '{}'::text[])$$);
SELECT * FROM pg_temp.try($$SELECT redis_command('SUBSCRIBE', 'chan')$$);
SELECT * FROM pg_temp.try($$SELECT redis_command('select', '2')$$);
SELECT * FROM pg_temp.try($$SELECT redis_command('CLIENT', 'REPLY', 'OFF')$$);
SELECT * FROM pg_temp.try($$SELECT redis_command('NOSUCHCOMMAND')$$);

-- as psql shows them, with Redis' own text in the detail
SELECT redis_cache_get('list');
SELECT redis_cache_get_json('notjson');

-- after all that, the same connection still works
SELECT redis_cache_set('after', 'still fine'), redis_cache_get('after');
SELECT count(*) AS connections, sum(reconnects) AS reconnects FROM redis_connections()
 WHERE node NOT LIKE '% (tracking)';
