SELECT redis_cache_set('w:1', 'v', '1 min', ARRAY['wt']);
SELECT redis_cache_set('w:2', '\x00ff'::bytea, '1 min');
SELECT redis_cache_set('w:3', '{"a": 1}'::jsonb, '1 min', ARRAY['wt']);
SELECT redis_cache_mset(ARRAY['w:4', 'w:5'], ARRAY['a', 'b'], '1 min');
SELECT redis_cache_del('w:4');
SELECT redis_cache_del(ARRAY['w:5', 'w:6']);
SELECT redis_cache_expire('w:1', '2 min');
SELECT redis_cache_expire_at('w:1', now() + interval '3 min');
SELECT redis_cache_incr('w:n', 2);
