SELECT redis_cached('rw:1', '1 min', 'SELECT 1 AS one', ARRAY['rwt']);
SELECT redis_cached('rw:1', '1 min', 'SELECT 1 AS one', ARRAY['rwt']);
