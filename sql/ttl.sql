-- TTLs: intervals, expiry, absolute times, named classes.
SET bmfredis.key_prefix = 'ttl:';

SELECT redis_cache_set('k', 'v', '1 hour');
SELECT redis_cache_ttl('k') BETWEEN '59 min' AND '1 hour' AS ttl_ok;
SELECT redis_cache_set('short', 'v', '150 ms');
SELECT redis_cache_get('short');
SELECT pg_sleep(0.3);
SELECT redis_cache_get('short') IS NULL AS expired;

-- no TTL: persistent; missing key: NULL as well
SELECT redis_cache_set('p', 'v');
SELECT redis_cache_ttl('p') AS persistent, redis_cache_ttl('nope') AS missing;
SELECT redis_cache_expire('p', '10 minutes');
SELECT redis_cache_ttl('p') BETWEEN '9 min' AND '10 min' AS ttl_ok;
SELECT redis_cache_expire('nope', '10 minutes') AS no_such_key;

-- absolute expiry; a past time removes the key at once
SELECT redis_cache_expire_at('p', now() + interval '1 day');
SELECT redis_cache_ttl('p') BETWEEN '23 hours' AND '1 day' AS ttl_ok;
SELECT redis_cache_expire_at('p', now() - interval '1 second');
SELECT redis_cache_exists('p');

-- a month counts as 30 days; a sub-millisecond TTL rounds up to 1 ms
SELECT redis_cache_set('m', 'v', '1 mon');
SELECT redis_cache_ttl('m') BETWEEN '29 days 23:59' AND '30 days' AS month_ok;
SELECT redis_cache_set('tiny', 'v', '0.1 ms');

-- the application's TTL classes, changeable by setting
SELECT redis_ttl('short') AS short, redis_ttl('medium') AS medium,
       redis_ttl('long') AS long, redis_ttl('very_long') AS very_long,
       redis_ttl('Very Long') AS spelled;
SET bmfredis.ttl_medium = '30min';
SELECT redis_ttl('medium');
RESET bmfredis.ttl_medium;
SELECT redis_cache_set('classy', 'v', redis_ttl('short'));
SELECT redis_cache_ttl('classy') BETWEEN '4 min' AND '5 min' AS class_ok;
SELECT redis_ttl(NULL) IS NULL AS strict;
