-- Change triggers on the marketplace tables: INSERT, UPDATE, DELETE and
-- TRUNCATE invalidate the keys and tags of the rows they touch, at COMMIT.
SET bmfredis.key_prefix = 'mk:';
CREATE SCHEMA watch_test;
SET search_path = watch_test, public;
\set ECHO none
\o /dev/null
\i examples/marketplace.sql
\o
\set ECHO all
SELECT e.entity, e.relation, e.mode, r.name, r.keys, r.tags, r.columns
  FROM bmfredis.entities e JOIN bmfredis.cache_rules r USING (entity) ORDER BY e.entity, r.name;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'products'::regclass AND tgname LIKE 'bmfredis%' ORDER BY tgname;

INSERT INTO users VALUES (1, 'ana@example.com', 'Ana', 'hash-1'), (2, 'bo@example.com', 'Bo', 'hash-2');
INSERT INTO shops VALUES (1, 1, 'Ana''s presets'), (2, 2, 'Bo''s beats');
INSERT INTO categories VALUES (10, 'Photography', NULL), (20, 'Music', NULL);
INSERT INTO products VALUES (100, 1, 10, 'Film presets', 19.99), (101, 1, 10, 'Portrait presets', 9.99),
                            (200, 2, 20, 'Drum kit', 29.00);

CREATE FUNCTION pg_temp.warm() RETURNS boolean LANGUAGE sql AS $$
SELECT redis_cache_mset(ARRAY['product:100', 'product:101', 'product:200', 'shop:1:products',
                              'shop:2:products', 'category:10:products', 'category:20:products',
                              'user:1', 'user:2', 'shop:1', 'shop:2', 'categories'],
                        array_fill('cached'::text, ARRAY[12]))
   AND redis_cache_set('list:cheap', 'cached', NULL, ARRAY['products'])
   AND redis_cache_set('dashboard:1', 'cached', NULL, ARRAY['shop:1'])
$$;
CREATE FUNCTION pg_temp.gone() RETURNS text LANGUAGE sql AS $$
SELECT coalesce(string_agg(k, ' ' ORDER BY k), '(none)')
  FROM unnest(ARRAY['product:100', 'product:101', 'product:200', 'shop:1:products',
                    'shop:2:products', 'category:10:products', 'category:20:products',
                    'user:1', 'user:2', 'shop:1', 'shop:2', 'categories', 'list:cheap', 'dashboard:1']) AS k
 WHERE redis_cache_get(k) IS NULL
$$;

-- an UPDATE invalidates the row's keys and tags at COMMIT
SELECT pg_temp.warm();
BEGIN;
UPDATE products SET price = 17.99 WHERE id = 100;
SELECT kind, target FROM redis_pending_invalidations() ORDER BY kind, target;
SELECT pg_temp.gone() AS before_commit;
COMMIT;
SELECT pg_temp.gone() AS after_commit;

-- ... and nothing on ROLLBACK
SELECT pg_temp.warm();
BEGIN;
UPDATE products SET price = 1 WHERE id = 200;
ROLLBACK;
SELECT pg_temp.gone() AS after_rollback;

-- moving a product to another shop invalidates both shops' lists
SELECT pg_temp.warm();
UPDATE products SET shop_id = 2 WHERE id = 101;
SELECT pg_temp.gone();
UPDATE products SET shop_id = 1 WHERE id = 101;

-- with columns, an UPDATE that changes none of them invalidates nothing
SELECT pg_temp.warm();
UPDATE products SET downloads = downloads + 1;
UPDATE products SET price = price WHERE id = 100;
UPDATE users SET password_hash = 'new-hash' WHERE id = 1;
SELECT pg_temp.gone() AS after_irrelevant_updates;
UPDATE users SET display_name = 'Ana B.' WHERE id = 1;
SELECT pg_temp.gone() AS after_display_name;

-- INSERT and DELETE
SELECT pg_temp.warm();
INSERT INTO products VALUES (102, 1, 20, 'Ambient pack', 5);
SELECT pg_temp.gone() AS after_insert;
SELECT pg_temp.warm();
DELETE FROM products WHERE id = 102;
SELECT pg_temp.gone() AS after_delete;

-- a statement touching many rows queues each distinct key once
BEGIN;
UPDATE products SET price = price + 1;
SELECT kind, count(*) FROM redis_pending_invalidations() GROUP BY kind ORDER BY kind;
ROLLBACK;

-- TRUNCATE cannot name rows: it invalidates every key the templates can
-- produce (their patterns) and the tags, and cascades do the same
SELECT pg_temp.warm();
SELECT redis_cache_set('other:1', 'untouched');
CREATE TABLE payments_copy (LIKE payments);
SELECT redis_watch('payments_copy', 'payment_copy', ARRAY['payment:{id}', 'payments:all'], ARRAY['payments']);
BEGIN;
TRUNCATE payments_copy;
SELECT kind, target FROM redis_pending_invalidations() ORDER BY kind, target;
COMMIT;

-- COPY goes through the same triggers
SELECT pg_temp.warm();
COPY categories FROM stdin;
30	Video	\N
\.
SELECT pg_temp.gone() AS after_copy;

-- the row mode (a trigger per row, UPDATE OF the watched columns) does the same
SELECT redis_watch('products', 'product',
                   keys => ARRAY['product:{id}', 'shop:{shop_id}:products', 'category:{category_id}:products'],
                   tags => ARRAY['products', 'shop:{shop_id}'],
                   columns => ARRAY['title', 'price', 'shop_id', 'category_id'],
                   mode => 'row');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'products'::regclass AND tgname LIKE 'bmfredis%' ORDER BY tgname;
SELECT pg_temp.warm();
UPDATE products SET downloads = 7 WHERE id = 200;
SELECT pg_temp.gone() AS row_mode_irrelevant;
UPDATE products SET shop_id = 1 WHERE id = 200;
SELECT pg_temp.gone() AS row_mode_move;
UPDATE products SET shop_id = 2 WHERE id = 200;

-- a NULL in a template column renders no key for that template: the new
-- row has no category list, the old row's category list still goes
SELECT pg_temp.warm();
BEGIN;
UPDATE products SET category_id = NULL WHERE id = 200;
SELECT kind, target FROM redis_pending_invalidations() ORDER BY kind, target;
ROLLBACK;

-- mistakes are refused when the watch is made, not at the first UPDATE
SELECT redis_watch('products', 'product', ARRAY['product:{no_such_column}']);
SELECT redis_watch('products', 'product', ARRAY['product:{id']);
SELECT redis_watch('products', 'product', ARRAY['product:{}']);
SELECT redis_watch('products', 'product', ARRAY['product:{id}'], columns => ARRAY['nope']);
SELECT redis_watch('products', 'item', ARRAY['item:{id}']);
SELECT redis_watch('products', 'product', ARRAY['product:{id}'], mode => 'sometimes');
SELECT redis_watch('products', NULL, ARRAY['product:{id}']);
SELECT redis_watch('products', 'product', rule => 'nothing');
-- an entity names one table: watching another table under it is refused
-- at once, and the first table's writes keep working
CREATE TABLE items (id int PRIMARY KEY);
SELECT redis_watch('items', 'product', ARRAY['item:{id}']);
UPDATE products SET price = price WHERE id = 100;
DROP TABLE items;
-- the failed calls changed nothing
SELECT name, keys, columns FROM bmfredis.cache_rules WHERE entity = 'product';

-- several named rules per entity: events added to the entity without
-- restating (or dropping) its keys
SELECT redis_watch('products', 'product', rule => 'events', columns => ARRAY['title', 'price'], channel => 'product');
SELECT name, keys, tags, columns, channel FROM bmfredis.cache_rules WHERE entity = 'product' ORDER BY name;
SELECT pg_temp.warm();
BEGIN;
UPDATE products SET price = 18.99 WHERE id = 100;
SELECT kind, target FROM redis_pending_invalidations() WHERE kind <> 'publish' ORDER BY kind, target;
SELECT target, argument::jsonb ->> 'type' AS type, argument::jsonb -> 'changed' AS changed
  FROM redis_pending_invalidations() WHERE kind = 'publish';
COMMIT;
SELECT pg_temp.gone() AS after_commit;
-- each rule keeps its own columns: downloads matter to neither
BEGIN;
UPDATE products SET downloads = downloads + 1;
SELECT count(*) AS queued FROM redis_pending_invalidations();
ROLLBACK;
-- a rule replaced under its own name says what it no longer does
SELECT redis_watch('products', 'product', rule => 'events', columns => ARRAY['title'], channel => 'catalog');
-- the same call again changes nothing, and says nothing
SELECT redis_watch('products', 'product', rule => 'events', columns => ARRAY['title'], channel => 'catalog');
-- row mode: the UPDATE OF list covers every rule's columns
SELECT redis_watch('products', 'product', rule => 'events', columns => ARRAY['title'], channel => 'catalog', mode => 'row');
SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'products'::regclass AND tgname = 'bmfredis_watch';
-- one rule can go; the last one takes the watch with it
SELECT redis_unwatch('products', 'events');
SELECT redis_unwatch('products', 'events');
SELECT name FROM bmfredis.cache_rules WHERE entity = 'product';
SELECT redis_watch('products', 'product', ARRAY['product:{id}', 'shop:{shop_id}:products', 'category:{category_id}:products'],
                   ARRAY['products', 'shop:{shop_id}'], ARRAY['title', 'price', 'shop_id', 'category_id'], mode => 'statement');
SELECT mode FROM bmfredis.entities WHERE entity = 'product';

-- a template may quote braces and name any column type; dates and times
-- render in ISO 8601 (timestamptz in UTC) whatever the session's settings
SET DateStyle = 'German'; SET TimeZone = 'America/Lima';
CREATE TABLE odd ("Mixed Case" text PRIMARY KEY, at date, id uuid, seen timestamptz);
SELECT redis_watch('odd', 'odd', ARRAY['odd:{{{Mixed Case}}}:{at}', 'odd:{id}', 'seen:{seen}'], id_column => 'Mixed Case');
BEGIN;
INSERT INTO odd VALUES ('A b', '2026-11-25', '00000000-0000-0000-0000-000000000001', '2026-11-25 10:00-05');
SELECT target FROM redis_pending_invalidations() ORDER BY target;
ROLLBACK;
RESET DateStyle; RESET TimeZone;
INSERT INTO odd VALUES ('row', NULL, NULL, NULL);

-- An UPDATE that sets neither the id nor a template column leaves the
-- keys as they were, and the old rows are not even read; what the trigger
-- cannot see from the statement is not trusted: a generated column
-- follows the columns it is made of, and a BEFORE trigger may change any
CREATE TABLE gen (id int PRIMARY KEY, a int, b int, twice int GENERATED ALWAYS AS (a * 2) STORED, shop int);
INSERT INTO gen (id, a, b, shop) VALUES (1, 1, 1, 7);
SELECT redis_watch('gen', 'gen', ARRAY['gen:{id}', 'twice:{twice}', 'shop:{shop}']);
BEGIN;
UPDATE gen SET b = b + 1;
SELECT target FROM redis_pending_invalidations() ORDER BY target;
ROLLBACK;
BEGIN;
UPDATE gen SET a = 5;
SELECT target FROM redis_pending_invalidations() ORDER BY target;
ROLLBACK;
BEGIN;
INSERT INTO gen (id, a, b, shop) VALUES (1, 9, 9, 9) ON CONFLICT (id) DO UPDATE SET shop = 9;
SELECT target FROM redis_pending_invalidations() ORDER BY target;
ROLLBACK;
BEGIN;
MERGE INTO gen USING (VALUES (1)) AS v(id) ON gen.id = v.id WHEN MATCHED THEN UPDATE SET shop = 10;
SELECT target FROM redis_pending_invalidations() ORDER BY target;
ROLLBACK;
CREATE FUNCTION pg_temp.move_shop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.shop := 8; RETURN NEW; END$$;
CREATE TRIGGER move_shop BEFORE UPDATE ON gen FOR EACH ROW EXECUTE FUNCTION pg_temp.move_shop();
BEGIN;
UPDATE gen SET b = b + 1;
SELECT target FROM redis_pending_invalidations() ORDER BY target;
ROLLBACK;
DROP TRIGGER move_shop ON gen;
-- ... nor in a partition, which may have BEFORE triggers of its own
CREATE TABLE parted (id int, b int, shop int) PARTITION BY RANGE (id);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);
INSERT INTO parted VALUES (1, 1, 7);
SELECT redis_watch('parted', 'parted', ARRAY['parted:{id}', 'shop:{shop}']);
CREATE TRIGGER move_shop BEFORE UPDATE ON parted_1 FOR EACH ROW EXECUTE FUNCTION pg_temp.move_shop();
BEGIN;
UPDATE parted SET b = b + 1;
SELECT target FROM redis_pending_invalidations() ORDER BY target;
ROLLBACK;
SELECT redis_unwatch('parted');
DROP TABLE parted;
-- with a column filter, a statement that sets none of its columns is
-- nothing to invalidate, whatever the rows hold
SELECT redis_watch('gen', 'gen', ARRAY['gen:{id}'], columns => ARRAY['a']);
BEGIN;
UPDATE gen SET b = b + 1;
SELECT count(*) AS queued FROM redis_pending_invalidations();
UPDATE gen SET a = a;
SELECT count(*) AS queued_unchanged FROM redis_pending_invalidations();
UPDATE gen SET a = a + 1;
SELECT target FROM redis_pending_invalidations() ORDER BY target;
ROLLBACK;
SELECT redis_unwatch('gen');
DROP TABLE gen;

-- the trigger function refuses to be called any other way
SELECT redis_cache_trigger();
CREATE TRIGGER wrong BEFORE UPDATE ON odd FOR EACH ROW EXECUTE FUNCTION redis_cache_trigger('odd');
UPDATE odd SET at = NULL;
DROP TRIGGER wrong ON odd;
CREATE TRIGGER wrong AFTER UPDATE ON odd FOR EACH ROW EXECUTE FUNCTION redis_cache_trigger();
UPDATE odd SET at = NULL;
DROP TRIGGER wrong ON odd;
CREATE TRIGGER wrong AFTER UPDATE ON odd FOR EACH ROW EXECUTE FUNCTION redis_cache_trigger('product');
UPDATE odd SET at = NULL;
DROP TRIGGER wrong ON odd;

-- rules deleted by hand: the watched table's writes go on, with a WARNING
BEGIN;
DELETE FROM bmfredis.entities WHERE entity = 'odd';
UPDATE odd SET at = NULL;
ROLLBACK;

-- a partitioned table is watched in statement mode only
CREATE TABLE parted (id int, shop int) PARTITION BY RANGE (id);
SELECT redis_watch('parted', 'parted', ARRAY['parted:{id}'], mode => 'row');
DROP TABLE parted;

-- unwatch drops the triggers and the rule
SELECT redis_unwatch('odd');
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'odd'::regclass;
SELECT count(*) FROM bmfredis.cache_rules WHERE entity = 'odd';
SELECT count(*) FROM bmfredis.entities WHERE entity = 'odd';
SELECT redis_invalidate_entity('odd', 'x');
SELECT redis_unwatch('odd', 'default');

-- a dropped watched table takes its entity (rules, cascades) along, so
-- the table made again can be watched under the same name
CREATE TABLE dropme (id int PRIMARY KEY, v text);
SELECT redis_watch('dropme', 'dropme', ARRAY['dropme:{id}']);
DROP TABLE dropme;
SELECT count(*) FROM bmfredis.entities WHERE entity = 'dropme';
CREATE TABLE dropme (id int PRIMARY KEY, v text);
SELECT redis_watch('dropme', 'dropme', ARRAY['dropme:{id}']);
SELECT relation::text FROM bmfredis.entities WHERE entity = 'dropme';
DROP TABLE dropme;

RESET search_path;
