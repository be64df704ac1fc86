-- The key prefix: every key lives at <bmfredis.key_prefix><key>, set per
-- database by a superuser; users cannot move out of their namespace.
SET bmfredis.key_prefix = 'shop1:';
SELECT redis_cache_set('x', 'one');
SET bmfredis.key_prefix = 'shop2:';
SELECT redis_cache_set('x', 'two');
SELECT redis_cache_get('x');
SET bmfredis.key_prefix = 'shop1:';
SELECT redis_cache_get('x');
\! $BMF_REDISCTL cli GET shop1:x
\! $BMF_REDISCTL cli GET shop2:x
SELECT redis_command('GET', 'shop2:x') AS raw_unprefixed;

-- per database, with ALTER DATABASE ... SET
RESET bmfredis.key_prefix;
SHOW bmfredis.key_prefix;
DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET bmfredis.key_prefix = %L', current_database(), 'dbwide:'); END $$;
\c -
SHOW bmfredis.key_prefix;
SELECT redis_cache_set('x', 'database-wide');
\! $BMF_REDISCTL cli GET dbwide:x
DO $$ BEGIN EXECUTE format('ALTER DATABASE %I RESET bmfredis.key_prefix', current_database()); END $$;
\c -

-- an ordinary user works inside the prefix but cannot change endpoint,
-- credentials or prefix, nor read the password
CREATE ROLE bmf_app;
SELECT redis_grant('bmf_app', 'write');
SET ROLE bmf_app;
SET bmfredis.key_prefix = 'shop2:';
SET bmfredis.host = 'example.com';
SET bmfredis.port = 1;
SET bmfredis.password = 'x';
-- (PostgreSQL 16 reworded this refusal; its SQLSTATE is the same)
DO $$ BEGIN EXECUTE 'SHOW bmfredis.password'; EXCEPTION WHEN insufficient_privilege THEN RAISE NOTICE 'SHOW refused: %', SQLSTATE; END $$;
DO $$ BEGIN PERFORM current_setting('bmfredis.password'); EXCEPTION WHEN insufficient_privilege THEN RAISE NOTICE 'current_setting refused: %', SQLSTATE; END $$;
SELECT count(*) FROM pg_settings WHERE name = 'bmfredis.password';
SET bmfredis.command_timeout = '1s';
SET bmfredis.key_prefix TO DEFAULT;
SELECT redis_cache_set('app', 'mine');
RESET ROLE;
\! $BMF_REDISCTL cli GET bmfredis:app
SELECT redis_revoke('bmf_app', 'write');
DROP ROLE bmf_app;
