-- Every write path to a watched table's rows: writes aimed at a partition
-- or an inheritance child (PostgreSQL fires only the named table's
-- statement triggers), partitions created or attached later, DETACH,
-- DROP and TRUNCATE of a partition.
SET bmfredis.key_prefix = 'pt:';
CREATE SCHEMA part_test;
SET search_path = part_test, public;

CREATE TABLE orders (id int NOT NULL, region text NOT NULL, total numeric) PARTITION BY LIST (region);
CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu');
SELECT redis_watch('orders', 'order', ARRAY['order:{id}', 'region:{region}:orders']);
INSERT INTO orders VALUES (1, 'eu', 10), (2, 'eu', 20);

-- the partition has the table's statement triggers, and is recorded
SELECT tgrelid::regclass AS relation, tgname FROM pg_trigger
 WHERE tgname LIKE 'bmfredis%' AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'part_test'::regnamespace)
 ORDER BY tgrelid::regclass::text, tgname;
SELECT relation, entity FROM bmfredis.watched_descendants ORDER BY relation::text;

CREATE FUNCTION pg_temp.warm() RETURNS boolean LANGUAGE sql AS $$
SELECT redis_cache_mset(ARRAY['order:1', 'order:2', 'order:3', 'order:4', 'order:5',
                              'region:eu:orders', 'region:us:orders', 'region:asia:orders', 'other'],
                        array_fill('cached'::text, ARRAY[9]))
$$;
CREATE FUNCTION pg_temp.gone() RETURNS text LANGUAGE sql AS $$
SELECT coalesce(string_agg(k, ' ' ORDER BY k), '(none)')
  FROM unnest(ARRAY['order:1', 'order:2', 'order:3', 'order:4', 'order:5',
                    'region:eu:orders', 'region:us:orders', 'region:asia:orders', 'other']) AS k
 WHERE redis_cache_get(k) IS NULL
$$;

-- an UPDATE aimed at the partition invalidates its rows' keys at COMMIT
SELECT pg_temp.warm();
BEGIN;
UPDATE orders_eu SET total = 11 WHERE id = 1;
SELECT kind, target FROM redis_pending_invalidations() ORDER BY kind, target;
COMMIT;
SELECT pg_temp.gone() AS update_partition;

-- so do an INSERT and a DELETE aimed at it
SELECT pg_temp.warm();
INSERT INTO orders_eu VALUES (3, 'eu', 30);
SELECT pg_temp.gone() AS insert_partition;
SELECT pg_temp.warm();
DELETE FROM orders_eu WHERE id = 3;
SELECT pg_temp.gone() AS delete_partition;

-- and the parent's own statements still work as before
SELECT pg_temp.warm();
UPDATE orders SET total = 21 WHERE id = 2;
SELECT pg_temp.gone() AS update_parent;

-- a TRUNCATE of the partition: every key the templates can make
SELECT pg_temp.warm();
BEGIN;
TRUNCATE orders_eu;
SELECT kind, target FROM redis_pending_invalidations() ORDER BY kind, target;
COMMIT;
SELECT pg_temp.gone() AS truncate_partition;
INSERT INTO orders VALUES (1, 'eu', 10), (2, 'eu', 20);

-- a partition attached later, with its columns in another order and a
-- dropped column: it gets the triggers, its rows join the entity (which is
-- invalidated), and its rows render the same keys
CREATE TABLE orders_us (total numeric, dropme int, region text NOT NULL, id int NOT NULL);
ALTER TABLE orders_us DROP COLUMN dropme;
INSERT INTO orders_us (id, region, total) VALUES (4, 'us', 40);
SELECT pg_temp.warm();
BEGIN;
ALTER TABLE orders ATTACH PARTITION orders_us FOR VALUES IN ('us');
SELECT kind, target FROM redis_pending_invalidations() ORDER BY kind, target;
COMMIT;
SELECT pg_temp.gone() AS attach;
SELECT relation, entity FROM bmfredis.watched_descendants ORDER BY relation::text;
SELECT pg_temp.warm();
UPDATE orders_us SET total = 41 WHERE id = 4;
SELECT pg_temp.gone() AS update_attached;

-- a partition created later (empty: nothing to invalidate), partitioned
-- itself: its own partitions are covered too
SELECT pg_temp.warm();
CREATE TABLE orders_asia PARTITION OF orders FOR VALUES IN ('asia') PARTITION BY RANGE (id);
CREATE TABLE orders_asia_low PARTITION OF orders_asia FOR VALUES FROM (0) TO (100);
SELECT pg_temp.gone() AS create_partitions;
SELECT relation, entity FROM bmfredis.watched_descendants ORDER BY relation::text;
INSERT INTO orders_asia_low VALUES (5, 'asia', 50);
SELECT pg_temp.gone() AS insert_leaf;
SELECT pg_temp.warm();
UPDATE orders_asia SET total = 51 WHERE id = 5;
SELECT pg_temp.gone() AS update_middle;

-- DETACH: its rows leave the entity (invalidated), its triggers go, and
-- writes to it no longer concern the entity (no WARNING either)
SELECT pg_temp.warm();
ALTER TABLE orders DETACH PARTITION orders_us;
SELECT pg_temp.gone() AS detach;
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 'orders_us'::regclass;
SELECT pg_temp.warm();
UPDATE orders_us SET total = 42 WHERE id = 4;
SELECT pg_temp.gone() AS write_detached;

-- DROP of a partition: its rows are gone from the entity
SELECT pg_temp.warm();
DROP TABLE orders_asia_low;
SELECT pg_temp.gone() AS drop_partition;
SELECT relation, entity FROM bmfredis.watched_descendants ORDER BY relation::text;

-- inheritance: a child's rows are the parent's too
CREATE TABLE items (id int PRIMARY KEY, v int);
CREATE TABLE items_archive (note text) INHERITS (items);
SELECT redis_watch('items', 'item', ARRAY['item:{id}']);
SELECT redis_cache_set('item:7', 'cached');
INSERT INTO items_archive VALUES (7, 1, 'old');
SELECT redis_cache_get('item:7') AS after_child_insert;
SELECT redis_cache_set('item:7', 'cached');
UPDATE items_archive SET v = 2 WHERE id = 7;
SELECT redis_cache_get('item:7') AS after_child_update;
SELECT redis_cache_set('item:7', 'cached');
UPDATE items SET v = 3 WHERE id = 7;          -- through the parent
SELECT redis_cache_get('item:7') AS after_parent_update;
-- NO INHERIT: the child leaves, with its triggers
ALTER TABLE items_archive NO INHERIT items;
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 'items_archive'::regclass;
SELECT relation FROM bmfredis.watched_descendants ORDER BY relation::text;

-- row mode cannot see writes aimed at children: refused, with the reason
CREATE TABLE things (id int PRIMARY KEY);
CREATE TABLE things_child () INHERITS (things);
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT redis_watch('things', 'thing', ARRAY['thing:{id}'], mode => 'row');
SELECT count(*) FROM bmfredis.entities WHERE entity = 'thing';
-- ... and so is a child made later under a table watched in row mode
DROP TABLE things_child;
SELECT redis_watch('things', 'thing', ARRAY['thing:{id}'], mode => 'row');
CREATE TABLE things_child2 () INHERITS (things);

-- an ALTER TABLE of a table watched in row mode that has children (only
-- an upgrade from 1.1 leaves one) is not refused: a WARNING says why
ALTER EVENT TRIGGER bmfredis_watch_ddl DISABLE;
CREATE TABLE things_child3 () INHERITS (things);
ALTER EVENT TRIGGER bmfredis_watch_ddl ENABLE;
ALTER TABLE things ADD COLUMN note text;
DROP TABLE things_child3;

-- a table that is an entity of its own carries one entity's triggers: it
-- cannot also be a watched table's child (refused when made, a WARNING on
-- ALTER ... INHERIT, and redis_watch of a covered child is refused)
CREATE TABLE gadgets (id int PRIMARY KEY, name text);
SELECT redis_watch('gadgets', 'gadget', ARRAY['gadget:{id}']);
CREATE TABLE gadgets_old (id int NOT NULL, name text);
SELECT redis_watch('gadgets_old', 'old_gadget', ARRAY['old_gadget:{id}']);
ALTER TABLE gadgets_old INHERIT gadgets;
SELECT tgrelid::regclass AS relation, tgname, encode(tgargs, 'escape') AS entity FROM pg_trigger
 WHERE tgname = 'bmfredis_watch_update' AND tgrelid IN ('gadgets'::regclass, 'gadgets_old'::regclass)
 ORDER BY 1;
ALTER TABLE gadgets_old NO INHERIT gadgets;
CREATE TABLE gadgets_new () INHERITS (gadgets);
SELECT redis_watch('gadgets_new', 'new_gadget', ARRAY['new_gadget:{id}']);
SELECT relation, entity FROM bmfredis.watched_descendants WHERE relation = 'gadgets_new'::regclass;
SELECT redis_unwatch('gadgets_old');
SELECT redis_unwatch('gadgets');
DROP TABLE gadgets_new, gadgets_old, gadgets;
\set VERBOSITY terse

-- unwatch drops the triggers of the table and of its partitions
SELECT redis_unwatch('orders');
SELECT tgrelid::regclass AS relation, tgname FROM pg_trigger
 WHERE tgname LIKE 'bmfredis%' AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'part_test'::regnamespace)
 ORDER BY tgrelid::regclass::text, tgname;
SELECT count(*) FROM bmfredis.watched_descendants WHERE entity = 'order';

-- action truncate by hand: every row's keys, no id needed
SELECT redis_cache_set('item:9', 'cached');
SELECT redis_invalidate_entity('item', NULL, 'truncate');
SELECT redis_cache_get('item:9');
SELECT redis_invalidate_entity('item', NULL, 'update');

SELECT redis_unwatch('items');
SELECT redis_unwatch('things');
DROP SCHEMA part_test CASCADE;
