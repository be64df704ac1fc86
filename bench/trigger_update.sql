-- One measured UPDATE of :rows rows on a fresh table with trigger variant
-- :variant; prints elapsed milliseconds (UPDATE and COMMIT, one transaction).
\set QUIET on
SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_products;
CREATE TABLE bench_products (id int PRIMARY KEY, shop_id int, category_id int, title text, price numeric)
  WITH (autovacuum_enabled = off);
INSERT INTO bench_products SELECT i, i % 100, i % 20, 'product ' || i, i FROM generate_series(1, :rows) i;
\if :{?variant}
\else
\set variant none
\endif
SELECT :'variant' = 'watch' AS w, :'variant' = 'watch_nostream' AS wns, :'variant' = 'watch_events' AS we, :'variant' = 'empty_stmt' AS es, :'variant' = 'empty_row' AS er, :'variant' = 'watch_row' AS wr, :'variant' = 'plpgsql_noop' AS n, :'variant' = 'pg_notify' AS pn, :'variant' = 'memcache' AS mc \gset
-- watch: what keeps Redis true to the table (three key templates, two tags)
\if :w
SELECT redis_watch('bench_products', 'bench_product',
  ARRAY['product:{id}', 'shop:{shop_id}:products', 'category:{category_id}:products'],
  ARRAY['products', 'shop:{shop_id}']) \gset
\endif
\if :wns
SELECT redis_watch('bench_products', 'bench_product',
  ARRAY['product:{id}', 'shop:{shop_id}:products', 'category:{category_id}:products'],
  ARRAY['products', 'shop:{shop_id}']) \gset
SET bmfredis.stream_invalidations = off;
\endif
-- watch_events: the same, and a change event per row on bench_product:*
\if :we
SELECT redis_watch('bench_products', 'bench_product',
  ARRAY['product:{id}', 'shop:{shop_id}:products', 'category:{category_id}:products'],
  ARRAY['products', 'shop:{shop_id}'], channel => 'bench_product') \gset
\endif
\if :wr
SELECT redis_watch('bench_products', 'bench_product',
  ARRAY['product:{id}', 'shop:{shop_id}:products', 'category:{category_id}:products'],
  ARRAY['products', 'shop:{shop_id}'], mode => 'row') \gset
\endif
-- empty_stmt, empty_row: the watch triggers over a rule with nothing in it
-- (the floor of the trigger machinery; redis_watch() refuses such a rule,
-- so it is written into the rules tables directly)
\if :es
INSERT INTO bmfredis.entities (entity, relation, mode) VALUES ('bench_product', 'bench_products', 'statement');
INSERT INTO bmfredis.cache_rules (entity) VALUES ('bench_product');
SELECT redis_rewatch('bench_products') \gset
\endif
\if :er
INSERT INTO bmfredis.entities (entity, relation, mode) VALUES ('bench_product', 'bench_products', 'row');
INSERT INTO bmfredis.cache_rules (entity) VALUES ('bench_product');
SELECT redis_rewatch('bench_products') \gset
\endif
\if :n
CREATE TRIGGER t AFTER UPDATE ON bench_products FOR EACH ROW EXECUTE FUNCTION bench_noop();
\endif
\if :pn
CREATE TRIGGER t AFTER UPDATE ON bench_products FOR EACH ROW EXECUTE FUNCTION bench_notify();
\endif
\if :mc
CREATE TRIGGER t AFTER UPDATE ON bench_products FOR EACH ROW EXECUTE FUNCTION bench_memcache();
\endif
VACUUM ANALYZE bench_products;
CHECKPOINT;
SELECT clock_timestamp() AS t0 \gset
BEGIN;
UPDATE bench_products SET price = price + 1;
COMMIT;
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000, 1) AS ms \gset
\echo :ms
