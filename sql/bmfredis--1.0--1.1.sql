/* bmfredis--1.0--1.1.sql: what 1.1 changes in the SQL objects of 1.0 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION bmfredis UPDATE TO '1.1'" to load this file. \quit

------------------------------------------------------------------------
-- One worker per database (the launcher)
------------------------------------------------------------------------

CREATE FUNCTION redis_workers(
    OUT database name,
    OUT state text,
    OUT pid integer,
    OUT since timestamptz,
    OUT last_active timestamptz,
    OUT channels integer,
    OUT retry_pending bigint,
    OUT restarts integer,
    OUT note text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'redis_workers'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_workers() IS
'The bmfredis launcher and each database''s worker: state (starting, running, no worker slot, restarting, paused), pid, channels relayed, retries waiting';

COMMENT ON FUNCTION redis_run_scheduled() IS
'Runs the scheduled invalidations of this database that are due (the database''s bmfredis worker does it every bmfredis.worker_naptime); returns how many';

------------------------------------------------------------------------
-- Named rules, several per entity; an entity names one table
------------------------------------------------------------------------

-- 1.0's tables step aside (their index names are taken by 1.1's)
ALTER TABLE bmfredis.cache_cascades RENAME TO cache_cascades_1_0;
ALTER INDEX bmfredis.cache_cascades_pkey RENAME TO cache_cascades_1_0_pkey;
ALTER TABLE bmfredis.cache_cascades_1_0 RENAME CONSTRAINT cache_cascades_entity_fkey TO cache_cascades_1_0_entity_fkey;
ALTER TABLE bmfredis.cache_cascades_1_0 RENAME CONSTRAINT cache_cascades_target_fkey TO cache_cascades_1_0_target_fkey;
ALTER TABLE bmfredis.cache_rules RENAME TO cache_rules_1_0;
ALTER INDEX bmfredis.cache_rules_pkey RENAME TO cache_rules_1_0_pkey;
ALTER INDEX bmfredis.cache_rules_relation_key RENAME TO cache_rules_1_0_relation_key;

CREATE TABLE bmfredis.entities (
    entity      text PRIMARY KEY
                CHECK (entity OPERATOR(pg_catalog.<>) '' AND pg_catalog.length(entity) OPERATOR(pg_catalog.<) 128),
    relation    regclass UNIQUE,
    id_column   name NOT NULL DEFAULT 'id',
    mode        text NOT NULL DEFAULT 'statement'
                CHECK (mode OPERATOR(pg_catalog.=) ANY ('{statement,row}'::pg_catalog.text[]))
);
COMMENT ON TABLE bmfredis.entities IS
'An entity (product) and the table whose rows it is; each entity names one table, each table has at most one entity';

CREATE TABLE bmfredis.cache_rules (
    entity      text NOT NULL REFERENCES bmfredis.entities ON DELETE CASCADE ON UPDATE CASCADE,
    name        text NOT NULL DEFAULT 'default'
                CHECK (name OPERATOR(pg_catalog.<>) '' AND pg_catalog.length(name) OPERATOR(pg_catalog.<) 64),
    keys        text[] NOT NULL DEFAULT '{}',
    tags        text[] NOT NULL DEFAULT '{}',
    columns     name[],
    channel     text,
    PRIMARY KEY (entity, name)
);
COMMENT ON TABLE bmfredis.cache_rules IS
'The rules of an entity, each named: what to invalidate when a row changes (key and tag templates such as product:{id}), which columns count, which channel announces it';

CREATE TABLE bmfredis.cache_cascades (
    entity      text NOT NULL REFERENCES bmfredis.entities ON DELETE CASCADE ON UPDATE CASCADE,
    target      text NOT NULL REFERENCES bmfredis.entities ON DELETE CASCADE ON UPDATE CASCADE,
    via_column  name NOT NULL,
    PRIMARY KEY (entity, target, via_column)
);
COMMENT ON TABLE bmfredis.cache_cascades IS
'When entity changes, the rows of target whose via_column holds its id are invalidated too';

-- 1.0's rules: each entity's one rule is its rule "default"; its mode is
-- what its triggers are
INSERT INTO bmfredis.entities (entity, relation, id_column, mode)
SELECT r.entity, r.relation, r.id_column,
       CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_trigger t
                          WHERE t.tgrelid OPERATOR(pg_catalog.=) r.relation
                            AND t.tgname OPERATOR(pg_catalog.=) 'bmfredis_watch')
            THEN 'row' ELSE 'statement' END
  FROM bmfredis.cache_rules_1_0 r;
INSERT INTO bmfredis.cache_rules (entity, name, keys, tags, columns, channel)
SELECT entity, 'default', keys, tags, columns, channel FROM bmfredis.cache_rules_1_0;
INSERT INTO bmfredis.cache_cascades (entity, target, via_column)
SELECT entity, target, via_column FROM bmfredis.cache_cascades_1_0;
-- out of the extension first, so that they leave its list of configuration
-- tables (pg_dump's) too
ALTER EXTENSION bmfredis DROP TABLE bmfredis.cache_cascades_1_0;
ALTER EXTENSION bmfredis DROP TABLE bmfredis.cache_rules_1_0;
DROP TABLE bmfredis.cache_cascades_1_0;
DROP TABLE bmfredis.cache_rules_1_0;

SELECT pg_catalog.pg_extension_config_dump('bmfredis.entities', '');
SELECT pg_catalog.pg_extension_config_dump('bmfredis.cache_rules', '');
SELECT pg_catalog.pg_extension_config_dump('bmfredis.cache_cascades', '');
-- the configuration tables in the order a fresh install lists them, and
-- the sequences whose values a dump must keep (the fencing floor, so that
-- numbers go on increasing after a restore)
ALTER EXTENSION bmfredis DROP TABLE bmfredis.scheduled_invalidations;
ALTER EXTENSION bmfredis ADD TABLE bmfredis.scheduled_invalidations;
SELECT pg_catalog.pg_extension_config_dump('bmfredis.scheduled_invalidations', '');
SELECT pg_catalog.pg_extension_config_dump('bmfredis.scheduled_invalidations_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('bmfredis.lock_fence', '');
GRANT SELECT ON bmfredis.entities, bmfredis.cache_rules, bmfredis.cache_cascades TO PUBLIC;
CREATE TRIGGER rules_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON bmfredis.entities
    FOR EACH STATEMENT EXECUTE FUNCTION redis_rules_changed();
CREATE TRIGGER rules_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON bmfredis.cache_rules
    FOR EACH STATEMENT EXECUTE FUNCTION redis_rules_changed();
CREATE TRIGGER rules_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON bmfredis.cache_cascades
    FOR EACH STATEMENT EXECUTE FUNCTION redis_rules_changed();
COMMENT ON SCHEMA bmfredis IS 'bmfredis bookkeeping: entities, cache rules, cascades, scheduled invalidations';
COMMENT ON FUNCTION redis_rule_check(text) IS
'Checks the cache rules of an entity (templates, columns, cascades); returns the columns an UPDATE must change to matter to one of them, NULL for all';

DROP FUNCTION redis_watch(regclass, text, text[], text[], text[], name, text, text);
DROP FUNCTION redis_unwatch(regclass);
-- The triggers of a watched table, made from its entity's rules.
CREATE FUNCTION redis_rewatch(tbl regclass)
RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ent record;
    watched text[];
    update_of text := '';
    trig name;
BEGIN
    SELECT e.entity, e.mode INTO ent FROM bmfredis.entities e WHERE e.relation = redis_rewatch.tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % is not watched', tbl USING ERRCODE = '42704',
            HINT = 'Watch it with redis_watch().';
    END IF;
    watched := @extschema@.redis_rule_check(ent.entity);
    IF watched IS NOT NULL THEN
        SELECT ' OF ' || string_agg(quote_ident(c), ', ') INTO update_of FROM unnest(watched) AS c;
    END IF;
    FOR trig IN SELECT t.tgname FROM pg_trigger t
                 WHERE t.tgrelid = redis_rewatch.tbl AND t.tgname LIKE 'bmfredis\_watch%' LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trig, tbl);
    END LOOP;
    IF ent.mode = 'row' THEN
        EXECUTE format('CREATE TRIGGER bmfredis_watch AFTER INSERT OR UPDATE%s OR DELETE ON %s '
                       'FOR EACH ROW EXECUTE FUNCTION @extschema@.redis_cache_trigger(%L)',
                       update_of, tbl, ent.entity);
        EXECUTE format('CREATE TRIGGER bmfredis_watch_statement AFTER INSERT OR UPDATE OR DELETE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.redis_cache_trigger(%L)',
                       tbl, ent.entity);
    ELSE
        EXECUTE format('CREATE TRIGGER bmfredis_watch_insert AFTER INSERT ON %s '
                       'REFERENCING NEW TABLE AS bmfredis_new '
                       'FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.redis_cache_trigger(%L)',
                       tbl, ent.entity);
        EXECUTE format('CREATE TRIGGER bmfredis_watch_update AFTER UPDATE ON %s '
                       'REFERENCING OLD TABLE AS bmfredis_old NEW TABLE AS bmfredis_new '
                       'FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.redis_cache_trigger(%L)',
                       tbl, ent.entity);
        EXECUTE format('CREATE TRIGGER bmfredis_watch_delete AFTER DELETE ON %s '
                       'REFERENCING OLD TABLE AS bmfredis_old '
                       'FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.redis_cache_trigger(%L)',
                       tbl, ent.entity);
    END IF;
    EXECUTE format('CREATE TRIGGER bmfredis_watch_truncate AFTER TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.redis_cache_trigger(%L)',
                   tbl, ent.entity);
END
$$;
COMMENT ON FUNCTION redis_rewatch(regclass) IS
'Makes the triggers of a watched table again from its rules (after editing bmfredis.cache_rules by hand: row mode''s UPDATE OF list)';

CREATE FUNCTION redis_watch(
    tbl regclass,
    entity text,
    keys text[] DEFAULT '{}',
    tags text[] DEFAULT '{}',
    columns text[] DEFAULT NULL,
    id_column name DEFAULT 'id',
    channel text DEFAULT NULL,
    mode text DEFAULT NULL,
    rule text DEFAULT 'default')
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    other text;
    ent record;
    old record;
    gone text[] := '{}';
    lost text[];
BEGIN
    IF tbl IS NULL OR entity IS NULL OR rule IS NULL THEN
        RAISE EXCEPTION 'table, entity and rule must not be null' USING ERRCODE = '22004';
    END IF;
    keys := coalesce(keys, '{}');
    tags := coalesce(tags, '{}');
    IF cardinality(keys) = 0 AND cardinality(tags) = 0 AND channel IS NULL THEN
        RAISE EXCEPTION 'rule "%" of entity "%" would neither invalidate nor publish anything', rule, entity
            USING ERRCODE = '22023', HINT = 'Give it keys, tags or a channel.';
    END IF;
    IF mode IS NOT NULL AND mode NOT IN ('statement', 'row') THEN
        RAISE EXCEPTION 'invalid watch mode "%"', mode USING ERRCODE = '22023',
            HINT = 'The modes are statement (transition tables, the default) and row.';
    END IF;
    IF mode = 'row' AND (SELECT c.relkind FROM pg_class c WHERE c.oid = tbl) = 'p' THEN
        RAISE EXCEPTION 'a partitioned table cannot be watched in row mode' USING ERRCODE = '0A000',
            HINT = 'Watch it in statement mode (the default): its triggers see every partition''s rows.';
    END IF;
    -- a table has one entity, an entity one table
    SELECT e.entity INTO other FROM bmfredis.entities e
     WHERE e.relation = redis_watch.tbl AND e.entity <> redis_watch.entity;
    IF FOUND THEN
        RAISE EXCEPTION 'table % is already watched as entity "%"', tbl, other
            USING ERRCODE = '42710',
                  HINT = format('Add a rule to that entity (redis_watch(%L, %L, ..., rule => ''another'')), or call redis_unwatch() first.',
                                tbl::text, other);
    END IF;
    SELECT e.relation, e.id_column, e.mode INTO ent FROM bmfredis.entities e WHERE e.entity = redis_watch.entity;
    IF FOUND AND ent.relation IS DISTINCT FROM tbl THEN
        RAISE EXCEPTION 'entity "%" is already watched on table %', entity, ent.relation
            USING ERRCODE = '42710',
                  HINT = format('An entity names one table: watch %s as another entity, or redis_unwatch(%L) first.',
                                tbl::text, ent.relation::text);
    ELSIF FOUND THEN
        IF ent.id_column <> redis_watch.id_column THEN
            RAISE NOTICE 'entity "%" now takes its ids from column %, not %', entity, id_column, ent.id_column;
        END IF;
        UPDATE bmfredis.entities e SET id_column = redis_watch.id_column, mode = coalesce(redis_watch.mode, e.mode)
         WHERE e.entity = redis_watch.entity;
    ELSE
        INSERT INTO bmfredis.entities AS e (entity, relation, id_column, mode)
        VALUES (redis_watch.entity, redis_watch.tbl, redis_watch.id_column, coalesce(redis_watch.mode, 'statement'));
    END IF;

    -- a rule of the same name is replaced: say what it no longer does
    SELECT r.keys, r.tags, r.columns::text[] AS columns, r.channel INTO old FROM bmfredis.cache_rules r
     WHERE r.entity = redis_watch.entity AND r.name = redis_watch.rule;
    IF FOUND THEN
        SELECT array_agg(k) INTO lost FROM unnest(old.keys) k WHERE k <> ALL (keys);
        IF lost IS NOT NULL THEN
            gone := array_append(gone, format('invalidates keys %s', array_to_string(lost, ', ')));
        END IF;
        SELECT array_agg(t) INTO lost FROM unnest(old.tags) t WHERE t <> ALL (tags);
        IF lost IS NOT NULL THEN
            gone := array_append(gone, format('invalidates tags %s', array_to_string(lost, ', ')));
        END IF;
        IF old.channel IS NOT NULL AND old.channel IS DISTINCT FROM channel THEN
            gone := array_append(gone, format('publishes events on channel %s', old.channel));
        END IF;
        IF columns IS NOT NULL AND old.columns IS NULL THEN
            gone := array_append(gone, format('reacts to UPDATEs that set none of %s', array_to_string(columns, ', ')));
        ELSIF columns IS NOT NULL THEN
            SELECT array_agg(c) INTO lost FROM unnest(old.columns) c WHERE c <> ALL (columns);
            IF lost IS NOT NULL THEN
                gone := array_append(gone, format('reacts to UPDATEs that set only %s', array_to_string(lost, ', ')));
            END IF;
        END IF;
        UPDATE bmfredis.cache_rules r
           SET keys = redis_watch.keys, tags = redis_watch.tags, columns = redis_watch.columns,
               channel = redis_watch.channel
         WHERE r.entity = redis_watch.entity AND r.name = redis_watch.rule;
    ELSE
        INSERT INTO bmfredis.cache_rules (entity, name, keys, tags, columns, channel)
        VALUES (redis_watch.entity, redis_watch.rule, redis_watch.keys, redis_watch.tags,
                redis_watch.columns, redis_watch.channel);
    END IF;
    PERFORM @extschema@.redis_rewatch(tbl);		-- compiles the rules: errors stop here
    IF cardinality(gone) > 0 THEN
        RAISE NOTICE 'redis_watch replaced rule "%" of entity "%"', rule, entity
            USING DETAIL = format('It no longer %s.', array_to_string(gone, ', no longer ')),
                  HINT = 'To add to an entity rather than replace a rule, give the new rule another name: redis_watch(..., rule => ''events'').';
    END IF;
END
$$;
COMMENT ON FUNCTION redis_watch(regclass, text, text[], text[], text[], name, text, text, text) IS
'Watches a table as an entity: a rule (named, several per entity) whose key and tag templates (product:{id}) are invalidated at COMMIT when rows change, and whose channel announces the change; with columns, only changes to them count';

CREATE FUNCTION redis_unwatch(tbl regclass, rule text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ent text;
    trig name;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'table must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT e.entity INTO ent FROM bmfredis.entities e WHERE e.relation = redis_unwatch.tbl;
    IF rule IS NOT NULL THEN
        DELETE FROM bmfredis.cache_rules r WHERE r.entity = ent AND r.name = redis_unwatch.rule;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'table % has no rule "%"', tbl, rule USING ERRCODE = '42704',
                HINT = 'Its rules are in bmfredis.cache_rules.';
        END IF;
        IF EXISTS (SELECT FROM bmfredis.cache_rules r WHERE r.entity = ent) THEN
            PERFORM @extschema@.redis_rewatch(tbl);
            RETURN;
        END IF;
        RAISE NOTICE 'that was the last rule of entity "%": table % is no longer watched', ent, tbl;
    END IF;
    FOR trig IN SELECT t.tgname FROM pg_trigger t
                 WHERE t.tgrelid = redis_unwatch.tbl AND t.tgname LIKE 'bmfredis\_watch%' LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trig, tbl);
    END LOOP;
    DELETE FROM bmfredis.entities e WHERE e.relation = redis_unwatch.tbl;
END
$$;
COMMENT ON FUNCTION redis_unwatch(regclass, text) IS
'Stops watching a table: drops its triggers, its entity, rules and cascades; with rule, drops only that rule';

------------------------------------------------------------------------
-- Events: one shape, from triggers and from the helpers
------------------------------------------------------------------------

CREATE FUNCTION redis_event_id(id text)
RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
SELECT CASE WHEN id OPERATOR(pg_catalog.~) '^-?(0|[1-9][0-9]{0,17})$'
            THEN pg_catalog.to_jsonb(id::pg_catalog.int8)
            ELSE pg_catalog.to_jsonb(id) END
$$;
COMMENT ON FUNCTION redis_event_id(text) IS
'An id as events carry it in their data: a JSON number when it is an integer (as a watched table''s integer ids), a JSON string otherwise';

-- The application's event helpers: integer ids as JSON numbers, as in the
-- data of a watched table's events (createEvent.productCreated(...) and
-- friends), as SQL.  Each returns the envelope; publish it with
-- redis_publish_event().
CREATE OR REPLACE FUNCTION redis_event_product(operation text, product_id text, shop_id text DEFAULT NULL,
                                    category_id text DEFAULT NULL, data jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF operation IS NULL OR operation NOT IN ('created', 'updated', 'deleted') THEN
        RAISE EXCEPTION 'invalid product event "%"', operation USING ERRCODE = '22023',
            HINT = 'Product events are created, updated and deleted.';
    END IF;
    RETURN @extschema@.redis_event('product:' || operation,
        jsonb_strip_nulls(jsonb_build_object('productId', @extschema@.redis_event_id(product_id), 'shopId', @extschema@.redis_event_id(shop_id),
                                             'categoryId', @extschema@.redis_event_id(category_id))) || coalesce(data, '{}'),
        product_id);
END
$$;
COMMENT ON FUNCTION redis_event_product(text, text, text, text, jsonb) IS
'Envelope of product:created|updated|deleted with productId, shopId, categoryId';

CREATE OR REPLACE FUNCTION redis_event_user(operation text, user_id text, data jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF operation IS NULL OR operation NOT IN ('created', 'updated', 'deleted', 'login', 'logout') THEN
        RAISE EXCEPTION 'invalid user event "%"', operation USING ERRCODE = '22023',
            HINT = 'User events are created, updated, deleted, login and logout.';
    END IF;
    RETURN @extschema@.redis_event('user:' || operation,
        jsonb_build_object('userId', @extschema@.redis_event_id(user_id)) || coalesce(data, '{}'), user_id);
END
$$;
COMMENT ON FUNCTION redis_event_user(text, text, jsonb) IS
'Envelope of user:created|updated|deleted|login|logout with userId';

CREATE OR REPLACE FUNCTION redis_event_shop(operation text, shop_id text, owner_id text DEFAULT NULL, data jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF operation IS NULL OR operation NOT IN ('created', 'updated', 'deleted') THEN
        RAISE EXCEPTION 'invalid shop event "%"', operation USING ERRCODE = '22023',
            HINT = 'Shop events are created, updated and deleted.';
    END IF;
    RETURN @extschema@.redis_event('shop:' || operation,
        jsonb_strip_nulls(jsonb_build_object('shopId', @extschema@.redis_event_id(shop_id), 'ownerId', @extschema@.redis_event_id(owner_id))) || coalesce(data, '{}'),
        shop_id);
END
$$;
COMMENT ON FUNCTION redis_event_shop(text, text, text, jsonb) IS
'Envelope of shop:created|updated|deleted with shopId, ownerId';

CREATE OR REPLACE FUNCTION redis_event_purchase(operation text, purchase_id text, user_id text, product_id text,
                                     amount numeric DEFAULT NULL, data jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF operation IS NULL OR operation NOT IN ('created', 'completed', 'refunded', 'cancelled') THEN
        RAISE EXCEPTION 'invalid purchase event "%"', operation USING ERRCODE = '22023',
            HINT = 'Purchase events are created, completed, refunded and cancelled.';
    END IF;
    RETURN @extschema@.redis_event('purchase:' || operation,
        jsonb_strip_nulls(jsonb_build_object('purchaseId', @extschema@.redis_event_id(purchase_id), 'userId', @extschema@.redis_event_id(user_id),
                                             'productId', @extschema@.redis_event_id(product_id), 'amount', amount)) || coalesce(data, '{}'),
        purchase_id);
END
$$;
COMMENT ON FUNCTION redis_event_purchase(text, text, text, text, numeric, jsonb) IS
'Envelope of purchase:created|completed|refunded|cancelled with purchaseId, userId, productId, amount';

CREATE OR REPLACE FUNCTION redis_event_payment(operation text, payment_id text, purchase_id text DEFAULT NULL,
                                    amount numeric DEFAULT NULL, data jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF operation IS NULL OR operation NOT IN ('pending', 'succeeded', 'failed', 'refunded') THEN
        RAISE EXCEPTION 'invalid payment event "%"', operation USING ERRCODE = '22023',
            HINT = 'Payment events are pending, succeeded, failed and refunded.';
    END IF;
    RETURN @extschema@.redis_event('payment:' || operation,
        jsonb_strip_nulls(jsonb_build_object('paymentId', @extschema@.redis_event_id(payment_id), 'purchaseId', @extschema@.redis_event_id(purchase_id),
                                             'amount', amount)) || coalesce(data, '{}'),
        payment_id);
END
$$;
COMMENT ON FUNCTION redis_event_payment(text, text, text, numeric, jsonb) IS
'Envelope of payment:pending|succeeded|failed|refunded with paymentId, purchaseId, amount';


------------------------------------------------------------------------
-- redis_health: the server, and its memory and eviction
------------------------------------------------------------------------

DROP FUNCTION redis_health();
CREATE FUNCTION redis_health(
    OUT healthy boolean,
    OUT status text,
    OUT latency_ms double precision,
    OUT version text,
    OUT role text,
    OUT used_memory bigint,
    OUT used_memory_human text,
    OUT connected_clients integer,
    OUT uptime_seconds bigint,
    OUT node text,
    OUT key_prefix text,
    OUT hit_rate double precision,
    OUT retry_pending bigint,
    OUT retry_namespaces integer,
    OUT worker_pid integer,
    OUT subscriber_pid integer,
    OUT server text,
    OUT maxmemory bigint,
    OUT memory_used_fraction double precision,
    OUT maxmemory_policy text,
    OUT evicted_keys bigint,
    OUT memory_note text)
RETURNS record
AS 'MODULE_PATHNAME', 'redis_health'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_health() IS
'Health of the Redis server from PING and INFO (server, version, memory and eviction, with a note when cache writes are about to fail); never raises for a Redis fault';

-- the statistics as Prometheus metrics
CREATE FUNCTION redis_metrics(
    OUT metric text,
    OUT type text,
    OUT kind text,
    OUT class text,
    OUT le text,
    OUT value double precision,
    OUT help text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'redis_metrics'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_metrics() IS
'The statistics as Prometheus metrics: one row per sample, with its type, its labels (kind; class and le) and help; reads shared memory only, never Redis';

-- A watched table that is dropped leaves no entity behind: its entity,
-- rules and cascades go with it (an entity names one table, so a stale one
-- would refuse redis_watch() of the table made again under that name).
CREATE FUNCTION bmfredis.forget_dropped_tables()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    gone record;
BEGIN
    -- the extension's own tables may be going too (DROP EXTENSION, DROP SCHEMA)
    IF pg_catalog.to_regclass('bmfredis.entities') IS NULL THEN
        RETURN;
    END IF;
    FOR gone IN
        DELETE FROM bmfredis.entities e
         USING pg_catalog.pg_event_trigger_dropped_objects() d
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.objsubid OPERATOR(pg_catalog.=) 0
           AND e.relation::pg_catalog.oid OPERATOR(pg_catalog.=) d.objid
        RETURNING e.entity, d.object_identity
    LOOP
        RAISE NOTICE 'bmfredis forgets entity "%": its table % was dropped', gone.entity, gone.object_identity;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION bmfredis.forget_dropped_tables() IS
'Event trigger function: removes the entities (with their rules and cascades) of dropped tables';

CREATE EVENT TRIGGER bmfredis_forget_dropped_tables ON sql_drop
    EXECUTE FUNCTION bmfredis.forget_dropped_tables();
