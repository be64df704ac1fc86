-- Pattern and namespace invalidation: SCAN MATCH + UNLINK in batches,
-- immediate, confined under the key prefix, for administrators.
SET bmfredis.key_prefix = 'pt:';
SELECT redis_cache_mset(ARRAY['products:1', 'products:2', 'products:popular', 'users:1'],
                        ARRAY['a', 'b', 'c', 'd']);
SELECT redis_invalidate_pattern('products:*');
SELECT redis_cache_mget(ARRAY['products:1', 'products:2', 'products:popular', 'users:1']);
SELECT redis_invalidate_pattern('nothing:*');

-- glob characters in the prefix are taken literally: the pattern cannot
-- reach keys of a prefix that the unescaped glob would match
SELECT redis_command('SET', 'pt1x:users:1', 'another namespace');
SET bmfredis.key_prefix = 'pt[1]?:';
SELECT redis_cache_set('users:1', 'mine');
SELECT redis_invalidate_pattern('users:*');
SELECT redis_command('GET', 'pt1x:users:1') AS other_namespace_untouched;
SELECT redis_command('GET', 'pt[1]?:users:1') AS mine_removed;

-- the whole namespace, and nothing outside it
SET bmfredis.key_prefix = 'pt:';
SELECT redis_cache_mset(ARRAY['x', 'y', 'z'], ARRAY['1', '2', '3']);
SELECT redis_flush_namespace();
SELECT redis_command('GET', 'pt1x:users:1') AS outside_untouched;
SET bmfredis.key_prefix = '';
SELECT redis_flush_namespace();
RESET bmfredis.key_prefix;

-- for administrators only
CREATE ROLE bmf_pattern_user;
SET ROLE bmf_pattern_user;
SELECT redis_invalidate_pattern('*');
SELECT redis_flush_namespace();
RESET ROLE;
DROP ROLE bmf_pattern_user;
SELECT redis_invalidate_pattern('');
