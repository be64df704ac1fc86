-- Publishing follows the transaction like NOTIFY: queued in order, sent
-- after COMMIT, dropped with a rolled-back (sub)transaction.  Messages are
-- observed from outside by redis-cli in the pubsub shell test; here the
-- queue and the envelopes are checked.
SET bmfredis.key_prefix = 'pub:';

BEGIN;
SELECT redis_publish('product:created', 'first');
SAVEPOINT a;
SELECT redis_publish('product:created', 'dropped');
ROLLBACK TO a;
SELECT redis_publish('product:updated', '{"id": 1}'::jsonb);
SELECT kind, target, argument FROM redis_pending_invalidations();
COMMIT;

-- immediate => true publishes now and returns the receivers (none here)
SELECT redis_publish('product:created', 'now', immediate => true) AS receivers;
BEGIN;
SELECT redis_publish('x', 'y', true);
SELECT count(*) AS queued FROM redis_pending_invalidations();
ROLLBACK;

-- the envelope
SELECT jsonb_object_keys(redis_event('product:created', '{"productId": "p1"}', 'p1')) AS key ORDER BY 1;
SELECT e ->> 'type' AS type, e ->> 'entity' AS entity, e ->> 'operation' AS operation,
       e ->> 'entity_id' AS entity_id, e -> 'data' AS data, e ->> 'database' = current_database() AS database,
       (e ->> 'time')::timestamptz BETWEEN now() - interval '1 minute' AND clock_timestamp() AS time_ok,
       e ->> 'id' ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' AS uuid_v4,
       e -> 'txid' AS txid_outside_writes
FROM redis_event('product:created', '{"productId": "p1"}', 'p1') AS e;
BEGIN;
CREATE TEMP TABLE t (x int);
SELECT (redis_event('cache:flushed') ->> 'txid')::bigint = txid_current() AS txid_of_the_writer;
ROLLBACK;
SELECT redis_event('misc') ->> 'operation' AS no_operation;

-- the application's helpers
SELECT e -> 'data' AS data, e ->> 'type' AS type FROM redis_event_product('created', 'product-123', 'shop-456', 'category-789') AS e;
SELECT e -> 'data' AS data, e ->> 'type' AS type FROM redis_event_user('login', 'user-1') AS e;
SELECT e -> 'data' AS data FROM redis_event_shop('updated', 'shop-9', 'user-1') AS e;
SELECT e -> 'data' AS data FROM redis_event_purchase('completed', 'pu-1', 'user-1', 'product-123', 19.99) AS e;
SELECT e -> 'data' AS data FROM redis_event_payment('succeeded', 'pay-1', 'pu-1', 19.99) AS e;
BEGIN;
SELECT redis_publish_event(redis_event_product('deleted', 'product-123'));
SELECT target FROM redis_pending_invalidations();
COMMIT;
SELECT redis_event_product('archived', 'p');
SELECT redis_event_payment(NULL, 'p');

-- change events from a watched table: only the listed columns travel
CREATE TABLE pub_users (id int PRIMARY KEY, email text, display_name text, password_hash text, karma int);
SELECT redis_watch('pub_users', 'pub_user', ARRAY['user:{id}'], columns => ARRAY['email', 'display_name'],
                   channel => 'user');
BEGIN;
INSERT INTO pub_users VALUES (1, 'ana@example.com', 'Ana', 'secret-hash', 0);
UPDATE pub_users SET display_name = 'Ana B.', password_hash = 'new-secret' WHERE id = 1;
UPDATE pub_users SET password_hash = 'newer-secret', karma = 5 WHERE id = 1;
DELETE FROM pub_users WHERE id = 1;
SELECT target AS channel, argument::jsonb - 'id' - 'time' - 'txid' - 'database' AS event,
       argument !~ 'secret' AS no_secret
FROM redis_pending_invalidations() WHERE kind = 'publish';
ROLLBACK;

-- without a column filter every UPDATE is an event; one that sets no
-- column the event carries (the id, the templates', the listed ones) is
-- told from the new rows alone, with nothing in "changed"
CREATE TABLE pub_items (id int PRIMARY KEY, shop int, title text, stock int);
INSERT INTO pub_items VALUES (1, 7, 'Presets', 3), (2, 8, 'Brushes', 4);
SELECT redis_watch('pub_items', 'pub_item', ARRAY['item:{id}', 'shop:{shop}'], channel => 'item');
BEGIN;
UPDATE pub_items SET stock = stock - 1;
UPDATE pub_items SET shop = 9 WHERE id = 2;
SELECT target AS channel, argument::jsonb - 'id' - 'time' - 'txid' - 'database' AS event
FROM redis_pending_invalidations() WHERE kind = 'publish';
SELECT target FROM redis_pending_invalidations() WHERE kind = 'key' ORDER BY target;
ROLLBACK;
SELECT redis_unwatch('pub_items');
DROP TABLE pub_items;

-- past bmfredis.max_pending_messages, row events become one summary
SET bmfredis.max_pending_messages = 3;
BEGIN;
INSERT INTO pub_users SELECT i, 'u' || i || '@example.com', 'U' || i, 'h', 0 FROM generate_series(1, 10) i;
SELECT kind, target, CASE kind WHEN 'publish' THEN 'row ' || (argument::jsonb ->> 'entity_id') ELSE argument END AS what
FROM redis_pending_invalidations() WHERE kind LIKE 'publish%';
ROLLBACK;
-- explicit publishes past the limit are refused
BEGIN;
SELECT redis_publish('c', 'm' || i) FROM generate_series(1, 4) i;
ROLLBACK;
RESET bmfredis.max_pending_messages;

-- redis_listen: an ad-hoc subscription (a message published by redis-cli)
\! (sleep 0.3; $BMF_REDISCTL cli PUBLISH analytics:pageview '{"page": "/"}' >/dev/null) &
SELECT * FROM redis_listen(ARRAY['analytics:pageview', 'nomatch'], '3 s', 1);
\! (sleep 0.3; $BMF_REDISCTL cli PUBLISH analytics:click x >/dev/null) &
SELECT * FROM redis_listen(ARRAY['analytics:*'], '3 s', 1);
SELECT count(*) AS nothing_arrives FROM redis_listen(ARRAY['quiet'], '100 ms');
SELECT count(*) FROM redis_connections();

-- bad input
SELECT redis_publish(NULL, 'm');
SELECT redis_publish('c', NULL::text);
SELECT redis_publish('', 'm');
SELECT redis_publish_event('{"no": "type"}');
SELECT redis_listen('{}'::text[]);
SELECT redis_listen(ARRAY['c'], '0 s');
SELECT redis_listen(ARRAY['c'], '1 s', 0);
