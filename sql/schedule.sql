-- Time-based invalidation: expiry times, and scheduled invalidation of a
-- key or a tag, transactional and run by the worker or redis_run_scheduled().
SET bmfredis.key_prefix = 'sch:';
SELECT redis_cache_set('sale:9', 'flash sale', '1 day');
SELECT redis_cache_set('banner', 'no expiry');
SELECT redis_cache_set('price:1', 'p', NULL, ARRAY['prices']);

-- scheduling follows the transaction
BEGIN;
SELECT redis_invalidate_at('sale:9', now() + interval '1 hour');
ROLLBACK;
SELECT count(*) FROM bmfredis.scheduled_invalidations;
SELECT redis_cache_ttl('sale:9') > '23 hours' AS ttl_untouched;

-- at commit the current value is made to expire by then (never later)
SELECT redis_invalidate_at('sale:9', now() + interval '1 hour');
SELECT redis_cache_ttl('sale:9') BETWEEN '59 min' AND '1 hour' AS expires_within_the_hour;
SELECT redis_invalidate_at('banner', now() + interval '2 hours');
SELECT redis_cache_ttl('banner') BETWEEN '119 min' AND '2 hours' AS persistent_key_now_expires;
SELECT redis_invalidate_at('sale:9', now() + interval '3 hours');
SELECT redis_cache_ttl('sale:9') <= '1 hour' AS a_later_time_does_not_extend;
SELECT kind, target, db FROM bmfredis.scheduled_invalidations ORDER BY id;

-- a value set after scheduling is removed when the time comes
SELECT redis_invalidate_at('later', now() + interval '200 ms');
SELECT redis_invalidate_tag_at('prices', now() + interval '200 ms');
SELECT redis_cache_set('later', 'set after scheduling');
SELECT redis_run_scheduled() AS ran_early;
SELECT pg_sleep(0.3);
-- the database's worker may have run them first: either way they ran once
SELECT redis_run_scheduled() BETWEEN 0 AND 2 AS ran;
SELECT redis_cache_mget(ARRAY['later', 'price:1']);
SELECT count(*) FROM bmfredis.scheduled_invalidations WHERE due_at <= now();

-- while Redis is down the rows stay for the next run (whoever tries it:
-- this session or the worker)
SELECT redis_invalidate_at('during_outage', now() + interval '1 hour');
\! $BMF_REDISCTL stop
UPDATE bmfredis.scheduled_invalidations SET due_at = now() WHERE target = 'sch:during_outage';
SET bmfredis.connect_timeout = '200ms';
SET client_min_messages = error;	-- its WARNING, unless the worker held the row
SELECT redis_run_scheduled() AS ran_while_down;
RESET client_min_messages;
SELECT count(*) AS still_scheduled FROM bmfredis.scheduled_invalidations WHERE target = 'sch:during_outage';
\! $BMF_REDISCTL start
SELECT pg_sleep(0.5);
SELECT redis_run_scheduled() BETWEEN 0 AND 1 AS ran_once_back;
SELECT count(*) AS scheduled_after FROM bmfredis.scheduled_invalidations WHERE target = 'sch:during_outage';
RESET bmfredis.connect_timeout;

-- bad input
SELECT redis_invalidate_at('k', NULL);
SELECT redis_invalidate_at('k', 'infinity');
SELECT redis_invalidate_at('', now());
SELECT redis_invalidate_tag_at(NULL, now());
DELETE FROM bmfredis.scheduled_invalidations;
