SELECT redis_publish('acl:news', 'hi', true);
SELECT redis_publish('acl:news', '{"a": 1}'::jsonb, true);
SELECT redis_publish_event(redis_event('acl:created', '{}'), true);
BEGIN;
SELECT redis_publish('acl:news', 'at commit');
COMMIT;
