-- Cascades and redis_invalidate_entity(): rules in bmfredis.cache_rules and
-- bmfredis.cache_cascades, applied by the triggers and by hand.  Uses the
-- marketplace the watch suite made (schema watch_test).
SET bmfredis.key_prefix = 'mk:';
SET search_path = watch_test, public;
SELECT entity, target, via_column FROM bmfredis.cache_cascades ORDER BY 1, 2;

-- a shop change invalidates the shop and, through products.shop_id, every
-- product of the shop (their keys and tags)
BEGIN;
UPDATE shops SET name = 'Ana''s presets & LUTs' WHERE id = 1;
SELECT kind, target FROM redis_pending_invalidations() ORDER BY kind, target;
ROLLBACK;

-- a category change reaches its products the same way
BEGIN;
UPDATE categories SET name = 'Audio' WHERE id = 20;
SELECT kind, target FROM redis_pending_invalidations() ORDER BY kind, target;
ROLLBACK;

-- cascades chain (product -> purchases), and cycles stop
INSERT INTO purchases VALUES (1, 2, 100, 17.99), (2, 2, 101, 9.99);
INSERT INTO bmfredis.cache_cascades VALUES ('product', 'purchase', 'product_id'),
                                           ('purchase', 'product', 'id');
BEGIN;
UPDATE shops SET name = 'renamed' WHERE id = 1;
SELECT kind, target FROM redis_pending_invalidations() WHERE target LIKE '%purchase%' ORDER BY kind, target;
ROLLBACK;
DELETE FROM bmfredis.cache_cascades WHERE target = 'purchase' OR entity = 'purchase';

-- by hand, as the application's invalidateCache.product(id, 'update')
BEGIN;
SELECT redis_invalidate_entity('product', '100', 'update');
SELECT kind, target FROM redis_pending_invalidations() ORDER BY kind, target;
ROLLBACK;
BEGIN;
SELECT redis_invalidate_entity('shop', '2');
SELECT kind, target FROM redis_pending_invalidations() ORDER BY kind, target;
ROLLBACK;
-- a row that is gone (deleted) still has its id: templates over other
-- columns fall back to their patterns
BEGIN;
SELECT redis_invalidate_entity('product', '999', 'delete');
SELECT kind, target FROM redis_pending_invalidations() ORDER BY kind, target;
ROLLBACK;
-- and it follows the transaction like everything else
SELECT redis_cache_set('product:100', 'cached');
BEGIN;
SELECT redis_invalidate_entity('product', '100');
SELECT redis_cache_get('product:100') AS before_commit;
COMMIT;
SELECT redis_cache_get('product:100') AS after_commit;

-- an entity without a table: rules over {id} only
INSERT INTO bmfredis.entities (entity) VALUES ('config');
INSERT INTO bmfredis.cache_rules (entity, keys, tags) VALUES ('config', ARRAY['config:{id}', 'config:all'], ARRAY['config']);
SELECT redis_rule_check('config');
BEGIN;
SELECT redis_invalidate_entity('config', 'payments');
SELECT kind, target FROM redis_pending_invalidations() ORDER BY kind, target;
ROLLBACK;
UPDATE bmfredis.cache_rules SET keys = ARRAY['config:{name}'] WHERE entity = 'config';
SELECT redis_rule_check('config');
SELECT redis_invalidate_entity('config', 'x');
DELETE FROM bmfredis.entities WHERE entity = 'config';

-- rules edited in the table take effect at once, in this and other sessions
UPDATE bmfredis.cache_rules SET keys = keys || 'product:{id}:reviews'::text WHERE entity = 'product';
BEGIN;
UPDATE products SET price = 1 WHERE id = 200;
SELECT target FROM redis_pending_invalidations() WHERE target LIKE '%reviews%';
ROLLBACK;
\c -
SET search_path = watch_test, public;
SET bmfredis.key_prefix = 'mk:';
BEGIN;
UPDATE products SET price = 1 WHERE id = 200;
SELECT target FROM redis_pending_invalidations() WHERE target LIKE '%reviews%';
ROLLBACK;
UPDATE bmfredis.cache_rules SET keys = keys[1:3] WHERE entity = 'product';

-- bad input
SELECT redis_invalidate_entity('product', NULL);
SELECT redis_invalidate_entity('product', '1', 'archive');
SELECT redis_invalidate_entity('nope', '1');
SELECT redis_invalidate_entity('product', 'not a number');
INSERT INTO bmfredis.cache_cascades VALUES ('shop', 'product', 'no_such_column');
UPDATE shops SET name = 'x' WHERE id = 2;
DELETE FROM bmfredis.cache_cascades WHERE via_column = 'no_such_column';
RESET search_path;
