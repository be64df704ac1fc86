-- Statistics equal the operations performed: shared across backends
-- (the library is preloaded in the test cluster).
SET bmfredis.key_prefix = 'st:';
SELECT redis_stats_reset();
-- no reads yet: no hit rate, NULL in both places that show it
SELECT value IS NULL AS no_rate_in_stats FROM redis_stats WHERE name = 'hit_rate';
SELECT hit_rate IS NULL AS no_rate_in_health FROM redis_health();
SELECT redis_cache_set('a', '1'), redis_cache_set('b', '2', NULL, ARRAY['t']);
SELECT redis_cache_get('a'), redis_cache_get('nope'), redis_cache_get('b');
SELECT redis_cache_mget(ARRAY['a', 'b', 'c', 'd']);
SELECT redis_publish('st', 'm', true);
BEGIN;
SELECT redis_invalidate(ARRAY['a', 'b']);
SELECT redis_invalidate_tag('t');
COMMIT;
SELECT name, value FROM redis_stats
 WHERE name IN ('cache_hits', 'cache_misses', 'cache_sets', 'hit_rate', 'publishes',
                'invalidations_queued', 'invalidations_sent', 'invalidations_failed',
                'latency_read_calls', 'latency_write_calls', 'latency_publish_calls',
                'latency_invalidate_calls', 'errors_reply')
 ORDER BY name;
SELECT DISTINCT scope FROM redis_stats WHERE name NOT LIKE 'near\_cache\_%';
SELECT count(*) = 3 AS percentiles_for_reads FROM redis_stats WHERE name LIKE 'latency_read_%';
SELECT hit_rate FROM redis_health();
-- errors by kind
SELECT redis_command('RPUSH', 'st:list', 'x');
SELECT redis_cache_get('list');
SELECT value FROM redis_stats WHERE name = 'errors_reply';
-- the monitor capability reads them; resetting is for administrators
CREATE ROLE bmf_stats_user;
SELECT redis_grant('bmf_stats_user', 'monitor');
SET ROLE bmf_stats_user;
SELECT count(*) > 0 AS can_read FROM redis_stats;
SELECT redis_stats_reset();
RESET ROLE;
SELECT redis_revoke('bmf_stats_user', 'monitor');
DROP ROLE bmf_stats_user;
