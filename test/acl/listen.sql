SELECT count(*) FROM redis_listen(ARRAY['acl:news', 'acl:*'], '50 ms');
SELECT count(*) FROM bmfredis.notify_payloads;
