-- Health, INFO, this backend's connections, disconnect, raw commands.
SET bmfredis.key_prefix = 'adm:';
SELECT healthy, status, latency_ms >= 0 AS latency_ok, version ~ '^\d+\.\d+' AS version_ok,
       role, used_memory > 0 AS memory_ok, used_memory_human IS NOT NULL AS human_ok,
       connected_clients >= 1 AS clients_ok, uptime_seconds >= 0 AS uptime_ok,
       node ~ '^127\.0\.0\.1:\d+$' AS node_ok, key_prefix
FROM redis_health();

SELECT count(*) > 20 AS many_rows, count(DISTINCT section) > 3 AS sections FROM redis_info();
SELECT section, value FROM redis_info('server') WHERE key IN ('redis_mode', 'server_mode');  -- Valkey 8.1+: server_mode
SELECT DISTINCT section FROM redis_info('memory');

SELECT node ~ '^127\.0\.0\.1:\d+$' AS node_ok, state, db, connected_since <= now() AS since_ok,
       commands > 0 AS used, errors, reconnects, failures, retry_after, last_error
FROM redis_connections();
SELECT redis_disconnect();
SELECT state, connected_since FROM redis_connections();
SELECT redis_disconnect();
SELECT redis_cache_get('nothing');
SELECT state, reconnects FROM redis_connections();

-- the connection is named after the database and backend, and there is one
SELECT redis_command('CLIENT', 'GETNAME') = 'bmfredis:' || current_database() || ':' || pg_backend_pid() AS named;
SELECT count(*) AS mine
FROM regexp_split_to_table(redis_command('CLIENT', 'LIST'), E'\n') AS line
WHERE line LIKE '%name=bmfredis:' || current_database() || ':' || pg_backend_pid() || ' %';

-- raw replies: status, string, integer, nil, arrays as JSON
SELECT redis_command('PING');
SELECT redis_command('SET', 'adm:x', '42');
SELECT redis_command('GET', 'adm:x');
SELECT redis_command('INCR', 'adm:x');
SELECT redis_command('GET', 'adm:nope') IS NULL AS nil;
SELECT redis_command('MGET', 'adm:x', 'adm:nope');
SELECT redis_command(true, 'EVAL', 'return {1, {"a", false}, "b\"c"}', '0');

-- administration is not for everyone
CREATE ROLE bmf_user;
SET ROLE bmf_user;
SELECT redis_command('PING');
SELECT * FROM redis_info();
SELECT healthy FROM redis_health();
RESET ROLE;
-- monitoring is a capability of its own
SELECT redis_grant('bmf_user', 'monitor');
SET ROLE bmf_user;
SELECT healthy FROM redis_health();
SELECT redis_command('PING');
RESET ROLE;
SELECT redis_revoke('bmf_user', 'monitor');
DROP ROLE bmf_user;

-- commands that harm every application on the Redis need force
SELECT redis_command('FLUSHALL');
SELECT redis_command('config', 'set', 'maxmemory', '0');
SELECT redis_command('CONFIG', 'GET', 'maxmemory') IS NOT NULL AS config_get_is_fine;
SELECT redis_command('SCRIPT', 'FLUSH');
SELECT redis_command(true, 'SET', 'adm:forced', '1');
SELECT redis_command(force => true, VARIADIC args => ARRAY['GET', 'adm:forced']);
SELECT redis_command(false, 'KEYS', '*');
-- scripts too: they can run any of those
SELECT redis_command('EVAL', 'return redis.call(''FLUSHALL'')', '0');
SELECT redis_command('evalsha', 'e0e1f9fabfc9d4800c877a703b823ac0578ff8db', '0');
SELECT redis_command('FCALL', 'myfunc', '0');
SELECT redis_command('FUNCTION', 'LOAD', 'REPLACE', '#!lua name=x');
SELECT redis_command('SCRIPT', 'LOAD', 'return 1') IS NOT NULL AS script_load_is_fine;
SELECT redis_command('GET', 'adm:forced') AS nothing_was_flushed;
