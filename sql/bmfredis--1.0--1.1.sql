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
LANGUAGE plpgsql SECURITY DEFINER
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

CREATE FUNCTION redis_command(force boolean, VARIADIC args text[])
RETURNS text
AS 'MODULE_PATHNAME', 'redis_command_force'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_command(boolean, text[]) IS
'redis_command, and with force => true also the commands that harm every application on the Redis (FLUSHALL, SHUTDOWN, CONFIG SET, ...)';
REVOKE ALL ON FUNCTION redis_command(boolean, text[]) FROM PUBLIC;

------------------------------------------------------------------------
-- Roles and privileges
------------------------------------------------------------------------
-- Nothing that reaches Redis is granted to PUBLIC (only the functions
-- that compute a value without touching Redis are left to it).  A DBA
-- gives a role what it needs by capability with redis_grant(); the
-- grants are plain GRANTs on the functions (so pg_dump keeps them), and
-- bmfredis.role_capabilities records who was given what, so that
-- redis_revoke() takes back exactly that and a later version that adds
-- a function to a capability can give it to the same roles.

REVOKE ALL ON FUNCTION
    redis_cache_set(text, text, interval, text[]), redis_cache_set(text, bytea, interval, text[]),
    redis_cache_set(text, jsonb, interval, text[]), redis_cache_get(text), redis_cache_get_json(text),
    redis_cache_get_bytea(text), redis_cache_mget(text[]), redis_cache_mset(text[], text[], interval),
    redis_cache_del(text), redis_cache_del(text[]), redis_cache_exists(text), redis_cache_ttl(text),
    redis_cache_expire(text, interval), redis_cache_expire_at(text, timestamptz), redis_cache_incr(text, bigint),
    redis_health(), redis_connections(), redis_workers(),
    redis_invalidate(text, boolean), redis_invalidate(text[], boolean), redis_invalidate_tag(text, boolean),
    redis_invalidate_tag(text[], boolean), redis_invalidate_at(text, timestamptz),
    redis_invalidate_tag_at(text, timestamptz), redis_run_scheduled(), redis_pending_invalidations(),
    redis_cache_trigger(), redis_rule_check(text), redis_rewatch(regclass),
    redis_watch(regclass, text, text[], text[], text[], name, text, text, text),
    redis_unwatch(regclass, text), redis_invalidate_entity(text, text, text),
    redis_publish(text, text, boolean), redis_publish(text, jsonb, boolean), redis_publish_event(jsonb, boolean),
    redis_listen(text[], interval, integer), redis_cached(text, interval, text, text[]),
    redis_stats_values(), redis_metrics(),
    redis_lock(text, interval, interval), redis_try_lock(text, interval),
    redis_xact_lock(text, interval, interval), redis_try_xact_lock(text, interval),
    redis_lock_fenced(text, interval, interval, boolean), redis_unlock(text, text),
    redis_lock_extend(text, text, interval), redis_locks(), redis_with_lock(text, interval, interval, text),
    redis_semaphore_acquire(text, integer, interval, interval), redis_semaphore_try_acquire(text, integer, interval),
    redis_semaphore_xact_acquire(text, integer, interval, interval),
    redis_semaphore_try_xact_acquire(text, integer, interval),
    redis_semaphore_release(text, text), redis_semaphore_refresh(text, text, interval),
    redis_rules_changed(), bmfredis.forget_dropped_tables()
FROM PUBLIC;
REVOKE SELECT ON redis_stats, bmfredis.notify_payloads FROM PUBLIC;

CREATE TABLE bmfredis.role_capabilities (
    role        regrole NOT NULL,
    capability  text NOT NULL
                CHECK (capability OPERATOR(pg_catalog.=) ANY
                       ('{read,write,invalidate,publish,listen,lock,monitor,admin}'::pg_catalog.text[])),
    PRIMARY KEY (role, capability)
);
COMMENT ON TABLE bmfredis.role_capabilities IS
'The capabilities redis_grant() gave each role (the GRANTs themselves are on the functions)';

CREATE TABLE bmfredis.role_channels (
    role        regrole PRIMARY KEY,
    patterns    text[] NOT NULL
);
COMMENT ON TABLE bmfredis.role_channels IS
'Channel patterns a role is confined to for redis_publish and redis_listen (redis_confine_channels)';

SELECT pg_catalog.pg_extension_config_dump('bmfredis.role_capabilities', '');
SELECT pg_catalog.pg_extension_config_dump('bmfredis.role_channels', '');

-- What each capability covers.  A function listed with two capabilities
-- (redis_cached reads and writes) is granted to roles that hold both.
CREATE FUNCTION bmfredis.capability_objects(OUT needs text[], OUT object text, OUT privilege text)
RETURNS SETOF record
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
VALUES
    ('{read}'::pg_catalog.text[], 'FUNCTION @extschema@.redis_cache_get(text)', 'EXECUTE'),
    ('{read}', 'FUNCTION @extschema@.redis_cache_get_json(text)', 'EXECUTE'),
    ('{read}', 'FUNCTION @extschema@.redis_cache_get_bytea(text)', 'EXECUTE'),
    ('{read}', 'FUNCTION @extschema@.redis_cache_mget(text[])', 'EXECUTE'),
    ('{read}', 'FUNCTION @extschema@.redis_cache_exists(text)', 'EXECUTE'),
    ('{read}', 'FUNCTION @extschema@.redis_cache_ttl(text)', 'EXECUTE'),
    ('{read,write}', 'FUNCTION @extschema@.redis_cached(text, interval, text, text[])', 'EXECUTE'),
    ('{write}', 'FUNCTION @extschema@.redis_cache_set(text, text, interval, text[])', 'EXECUTE'),
    ('{write}', 'FUNCTION @extschema@.redis_cache_set(text, bytea, interval, text[])', 'EXECUTE'),
    ('{write}', 'FUNCTION @extschema@.redis_cache_set(text, jsonb, interval, text[])', 'EXECUTE'),
    ('{write}', 'FUNCTION @extschema@.redis_cache_mset(text[], text[], interval)', 'EXECUTE'),
    ('{write}', 'FUNCTION @extschema@.redis_cache_del(text)', 'EXECUTE'),
    ('{write}', 'FUNCTION @extschema@.redis_cache_del(text[])', 'EXECUTE'),
    ('{write}', 'FUNCTION @extschema@.redis_cache_expire(text, interval)', 'EXECUTE'),
    ('{write}', 'FUNCTION @extschema@.redis_cache_expire_at(text, timestamptz)', 'EXECUTE'),
    ('{write}', 'FUNCTION @extschema@.redis_cache_incr(text, bigint)', 'EXECUTE'),
    ('{invalidate}', 'FUNCTION @extschema@.redis_invalidate(text, boolean)', 'EXECUTE'),
    ('{invalidate}', 'FUNCTION @extschema@.redis_invalidate(text[], boolean)', 'EXECUTE'),
    ('{invalidate}', 'FUNCTION @extschema@.redis_invalidate_tag(text, boolean)', 'EXECUTE'),
    ('{invalidate}', 'FUNCTION @extschema@.redis_invalidate_tag(text[], boolean)', 'EXECUTE'),
    ('{invalidate}', 'FUNCTION @extschema@.redis_invalidate_at(text, timestamptz)', 'EXECUTE'),
    ('{invalidate}', 'FUNCTION @extschema@.redis_invalidate_tag_at(text, timestamptz)', 'EXECUTE'),
    ('{invalidate}', 'FUNCTION @extschema@.redis_invalidate_entity(text, text, text)', 'EXECUTE'),
    ('{invalidate}', 'FUNCTION @extschema@.redis_pending_invalidations()', 'EXECUTE'),
    ('{publish}', 'FUNCTION @extschema@.redis_publish(text, text, boolean)', 'EXECUTE'),
    ('{publish}', 'FUNCTION @extschema@.redis_publish(text, jsonb, boolean)', 'EXECUTE'),
    ('{publish}', 'FUNCTION @extschema@.redis_publish_event(jsonb, boolean)', 'EXECUTE'),
    ('{listen}', 'FUNCTION @extschema@.redis_listen(text[], interval, integer)', 'EXECUTE'),
    ('{listen}', 'TABLE bmfredis.notify_payloads', 'SELECT'),
    ('{lock}', 'FUNCTION @extschema@.redis_lock(text, interval, interval)', 'EXECUTE'),
    ('{lock}', 'FUNCTION @extschema@.redis_try_lock(text, interval)', 'EXECUTE'),
    ('{lock}', 'FUNCTION @extschema@.redis_xact_lock(text, interval, interval)', 'EXECUTE'),
    ('{lock}', 'FUNCTION @extschema@.redis_try_xact_lock(text, interval)', 'EXECUTE'),
    ('{lock}', 'FUNCTION @extschema@.redis_lock_fenced(text, interval, interval, boolean)', 'EXECUTE'),
    ('{lock}', 'FUNCTION @extschema@.redis_unlock(text, text)', 'EXECUTE'),
    ('{lock}', 'FUNCTION @extschema@.redis_lock_extend(text, text, interval)', 'EXECUTE'),
    ('{lock}', 'FUNCTION @extschema@.redis_locks()', 'EXECUTE'),
    ('{lock}', 'FUNCTION @extschema@.redis_with_lock(text, interval, interval, text)', 'EXECUTE'),
    ('{lock}', 'FUNCTION @extschema@.redis_semaphore_acquire(text, integer, interval, interval)', 'EXECUTE'),
    ('{lock}', 'FUNCTION @extschema@.redis_semaphore_try_acquire(text, integer, interval)', 'EXECUTE'),
    ('{lock}', 'FUNCTION @extschema@.redis_semaphore_xact_acquire(text, integer, interval, interval)', 'EXECUTE'),
    ('{lock}', 'FUNCTION @extschema@.redis_semaphore_try_xact_acquire(text, integer, interval)', 'EXECUTE'),
    ('{lock}', 'FUNCTION @extschema@.redis_semaphore_release(text, text)', 'EXECUTE'),
    ('{lock}', 'FUNCTION @extschema@.redis_semaphore_refresh(text, text, interval)', 'EXECUTE'),
    ('{monitor}', 'FUNCTION @extschema@.redis_health()', 'EXECUTE'),
    ('{monitor}', 'FUNCTION @extschema@.redis_connections()', 'EXECUTE'),
    ('{monitor}', 'FUNCTION @extschema@.redis_workers()', 'EXECUTE'),
    ('{monitor}', 'FUNCTION @extschema@.redis_stats_values()', 'EXECUTE'),
    ('{monitor}', 'TABLE @extschema@.redis_stats', 'SELECT'),
    ('{monitor}', 'FUNCTION @extschema@.redis_metrics()', 'EXECUTE'),
    ('{admin}', 'FUNCTION @extschema@.redis_command(text[])', 'EXECUTE'),
    ('{admin}', 'FUNCTION @extschema@.redis_command(boolean, text[])', 'EXECUTE'),
    ('{admin}', 'FUNCTION @extschema@.redis_info(text)', 'EXECUTE'),
    ('{admin}', 'FUNCTION @extschema@.redis_invalidate_pattern(text)', 'EXECUTE'),
    ('{admin}', 'FUNCTION @extschema@.redis_flush_namespace()', 'EXECUTE'),
    ('{admin}', 'FUNCTION @extschema@.redis_run_scheduled()', 'EXECUTE'),
    ('{admin}', 'FUNCTION @extschema@.redis_stats_reset()', 'EXECUTE'),
    ('{admin}', 'FUNCTION @extschema@.redis_rule_check(text)', 'EXECUTE'),
    ('{admin}', 'FUNCTION @extschema@.redis_watch(regclass, text, text[], text[], text[], name, text, text, text)', 'EXECUTE'),
    ('{admin}', 'FUNCTION @extschema@.redis_unwatch(regclass, text)', 'EXECUTE'),
    ('{admin}', 'FUNCTION @extschema@.redis_rewatch(regclass)', 'EXECUTE'),
    ('{admin}', 'FUNCTION @extschema@.redis_cache_trigger()', 'EXECUTE'),
    ('{admin}', 'FUNCTION @extschema@.redis_consume_stream(text, regclass, text, text)', 'EXECUTE'),
    ('{admin}', 'FUNCTION @extschema@.redis_stop_consuming(text)', 'EXECUTE'),
    ('{admin}', 'TABLE @extschema@.redis_privileges', 'SELECT')
$$;
COMMENT ON FUNCTION bmfredis.capability_objects() IS
'What each capability covers: the functions (EXECUTE) and tables (SELECT) a role holding all of needs is granted';

-- Grant a role what its recorded capabilities cover, revoke the rest.
CREATE FUNCTION bmfredis.apply_capabilities(target regrole)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    held text[];
    o record;
BEGIN
    SELECT coalesce(array_agg(capability), '{}') INTO held
      FROM bmfredis.role_capabilities WHERE role OPERATOR(pg_catalog.=) target;
    FOR o IN SELECT * FROM bmfredis.capability_objects() LOOP
        IF o.needs OPERATOR(pg_catalog.<@) held THEN
            EXECUTE format('GRANT %s ON %s TO %I', o.privilege, o.object, target::text);
        ELSE
            EXECUTE format('REVOKE %s ON %s FROM %I', o.privilege, o.object, target::text);
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION bmfredis.apply_capabilities(regrole) FROM PUBLIC;
COMMENT ON FUNCTION bmfredis.apply_capabilities(regrole) IS
'Makes a role''s grants on bmfredis objects what its recorded capabilities cover (used by redis_grant, redis_revoke and upgrades)';

-- Only the extension's owner (who owns its functions) may give them out;
-- anyone else's GRANT would only warn that nothing was granted.
CREATE FUNCTION bmfredis.check_capabilities(target regrole, capabilities text[])
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c text;
    known text[] := '{read,write,invalidate,publish,listen,lock,monitor,admin}';
BEGIN
    IF target IS NULL OR capabilities IS NULL OR cardinality(capabilities) OPERATOR(pg_catalog.=) 0 THEN
        RAISE EXCEPTION 'a role and at least one capability are needed' USING ERRCODE = '22004',
            HINT = 'The capabilities are ' || array_to_string(known, ', ') || '.';
    END IF;
    FOREACH c IN ARRAY capabilities LOOP
        IF c IS NULL OR NOT c OPERATOR(pg_catalog.=) ANY (known) THEN
            RAISE EXCEPTION 'unknown bmfredis capability "%"', c USING ERRCODE = '22023',
                HINT = 'The capabilities are ' || array_to_string(known, ', ') || '.';
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_extension e
                    WHERE e.extname OPERATOR(pg_catalog.=) 'bmfredis'
                      AND pg_has_role(current_user, e.extowner, 'USAGE')) THEN
        RAISE EXCEPTION 'permission denied to grant or revoke bmfredis capabilities' USING ERRCODE = '42501',
            DETAIL = 'Only the owner of the extension, or a member of its role, can.';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION bmfredis.check_capabilities(regrole, text[]) FROM PUBLIC;
COMMENT ON FUNCTION bmfredis.check_capabilities(regrole, text[]) IS
'Checks a redis_grant/redis_revoke call: known capability names, and that the caller owns the extension';

CREATE FUNCTION redis_grant(role regrole, VARIADIC capabilities text[])
RETURNS text[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c text;
BEGIN
    PERFORM bmfredis.check_capabilities(role, capabilities);
    FOREACH c IN ARRAY capabilities LOOP
        INSERT INTO bmfredis.role_capabilities VALUES (role, c) ON CONFLICT DO NOTHING;
    END LOOP;
    PERFORM bmfredis.apply_capabilities(role);
    RETURN (SELECT array_agg(capability ORDER BY capability) FROM bmfredis.role_capabilities r
             WHERE r.role OPERATOR(pg_catalog.=) redis_grant.role);
END
$$;
REVOKE ALL ON FUNCTION redis_grant(regrole, text[]) FROM PUBLIC;
COMMENT ON FUNCTION redis_grant(regrole, text[]) IS
'Gives a role capabilities (read, write, invalidate, publish, listen, lock, monitor, admin); returns all it now holds';

CREATE FUNCTION redis_revoke(role regrole, VARIADIC capabilities text[])
RETURNS text[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM bmfredis.check_capabilities(role, capabilities);
    DELETE FROM bmfredis.role_capabilities r
     WHERE r.role OPERATOR(pg_catalog.=) redis_revoke.role
       AND r.capability OPERATOR(pg_catalog.=) ANY (capabilities);
    PERFORM bmfredis.apply_capabilities(role);
    RETURN coalesce((SELECT array_agg(capability ORDER BY capability) FROM bmfredis.role_capabilities r
                      WHERE r.role OPERATOR(pg_catalog.=) redis_revoke.role), '{}');
END
$$;
REVOKE ALL ON FUNCTION redis_revoke(regrole, text[]) FROM PUBLIC;
COMMENT ON FUNCTION redis_revoke(regrole, text[]) IS
'Takes capabilities back from a role; returns those it still holds';

CREATE FUNCTION redis_confine_channels(role regrole, patterns text[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM bmfredis.check_capabilities(role, '{publish}');
    IF patterns IS NULL THEN
        DELETE FROM bmfredis.role_channels r WHERE r.role OPERATOR(pg_catalog.=) redis_confine_channels.role;
        RETURN;
    END IF;
    IF array_position(patterns, NULL) IS NOT NULL OR array_position(patterns, '') IS NOT NULL THEN
        RAISE EXCEPTION 'channel patterns must not be null or empty' USING ERRCODE = '22023',
            HINT = 'Pass NULL to lift the confinement, an empty array to allow no channel.';
    END IF;
    INSERT INTO bmfredis.role_channels VALUES (role, patterns)
        ON CONFLICT ON CONSTRAINT role_channels_pkey DO UPDATE SET patterns = excluded.patterns;
END
$$;
REVOKE ALL ON FUNCTION redis_confine_channels(regrole, text[]) FROM PUBLIC;
COMMENT ON FUNCTION redis_confine_channels(regrole, text[]) IS
'Confines a role''s redis_publish and redis_listen to channels matching the patterns (Redis glob syntax); NULL lifts it';

CREATE VIEW redis_privileges AS
SELECT r.rolname AS role,
       coalesce(c.capabilities, '{}') AS capabilities,
       ch.patterns AS channels
  FROM pg_catalog.pg_roles r
  LEFT JOIN (SELECT role, pg_catalog.array_agg(capability ORDER BY capability) AS capabilities
               FROM bmfredis.role_capabilities GROUP BY role) c
         ON c.role::pg_catalog.oid OPERATOR(pg_catalog.=) r.oid
  LEFT JOIN bmfredis.role_channels ch ON ch.role::pg_catalog.oid OPERATOR(pg_catalog.=) r.oid
 WHERE c.role IS NOT NULL OR ch.role IS NOT NULL;
COMMENT ON VIEW redis_privileges IS
'Each role given bmfredis capabilities, and the channels it is confined to (NULL: none)';

------------------------------------------------------------------------
-- A Redis identity per role: servers and user mappings
------------------------------------------------------------------------
-- CREATE SERVER ... FOREIGN DATA WRAPPER bmfredis OPTIONS (host, port,
-- tls, tls_server_name) says where Redis is; CREATE USER MAPPING FOR a
-- role SERVER ... OPTIONS (user, password) as which Redis ACL user that
-- role's calls talk.  The setting bmfredis.server names the server to use.

CREATE FUNCTION bmfredis_fdw_validator(options text[], catalog oid)
RETURNS void
AS 'MODULE_PATHNAME', 'bmfredis_fdw_validator'
LANGUAGE C STRICT;
COMMENT ON FUNCTION bmfredis_fdw_validator(text[], oid) IS
'Checks the options of bmfredis servers (host, port, tls, tls_server_name) and user mappings (user, password)';

CREATE FOREIGN DATA WRAPPER bmfredis VALIDATOR bmfredis_fdw_validator;
COMMENT ON FOREIGN DATA WRAPPER bmfredis IS
'Where Redis is (servers) and as which Redis user each role talks to it (user mappings); name the server in bmfredis.server';

------------------------------------------------------------------------
-- Redis Streams into PostgreSQL: what the database's worker consumes
------------------------------------------------------------------------
-- The worker reads each stream with a consumer group and acknowledges an
-- entry once its row (in target) or its NOTIFY committed: exactly once
-- per entry id with a table, at least once with a NOTIFY alone.

CREATE TABLE bmfredis.stream_consumers (
    stream text PRIMARY KEY CHECK (stream OPERATOR(pg_catalog.<>) ''),
    target regclass,
    notify text,
    group_name text NOT NULL DEFAULT 'bmfredis' CHECK (group_name OPERATOR(pg_catalog.<>) ''),
    CHECK (target IS NOT NULL OR notify IS NOT NULL)
);
COMMENT ON TABLE bmfredis.stream_consumers IS
'Redis Streams the database''s bmfredis worker consumes: each entry into target (a row) and/or notify (a NOTIFY), acknowledged once committed';
SELECT pg_catalog.pg_extension_config_dump('bmfredis.stream_consumers', '');

CREATE FUNCTION redis_consume_stream(stream text, target regclass DEFAULT NULL,
                                     notify text DEFAULT NULL, group_name text DEFAULT 'bmfredis')
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    missing text;
BEGIN
    IF stream IS NULL OR stream = '' THEN
        RAISE EXCEPTION 'the stream must be named'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF target IS NULL AND notify IS NULL THEN
        RAISE EXCEPTION 'stream "%" would go nowhere', stream
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Name a table (target), a NOTIFY channel (notify), or both.';
    END IF;
    IF notify = '' OR group_name IS NULL OR group_name = '' THEN
        RAISE EXCEPTION 'the notify channel and the group name cannot be empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF target IS NOT NULL THEN
        SELECT string_agg(want.col || ' ' || want.types, ', ' ORDER BY want.ord) INTO missing
          FROM (VALUES (1, 'stream', 'text'), (2, 'entry_id', 'text'), (3, 'message', 'text, json or jsonb'))
               AS want(ord, col, types)
         WHERE NOT EXISTS (
               SELECT FROM pg_attribute a
                WHERE a.attrelid = target AND a.attname = want.col AND a.attnum > 0
                  AND NOT a.attisdropped
                  AND a.atttypid = ANY (CASE want.col WHEN 'message'
                                        THEN '{text,json,jsonb}'::regtype[]
                                        ELSE '{text}'::regtype[] END));
        IF missing IS NOT NULL THEN
            RAISE EXCEPTION 'table % cannot hold stream entries', target
                USING ERRCODE = 'invalid_table_definition',
                      DETAIL = format('It lacks: %s.', missing),
                      HINT = 'Entries go into columns stream text, entry_id text and message (text, json or jsonb), with a unique index on (stream, entry_id).';
        END IF;
        IF NOT EXISTS (
               SELECT FROM pg_index i
                WHERE i.indrelid = target AND i.indisunique AND i.indpred IS NULL
                  AND i.indnkeyatts = 2 AND i.indexprs IS NULL
                  AND (SELECT array_agg(a.attname::text ORDER BY a.attname)
                         FROM pg_attribute a
                        WHERE a.attrelid = target
                          AND a.attnum = ANY ((i.indkey::int2[])[0:1]))
                      = '{entry_id,stream}') THEN
            RAISE EXCEPTION 'table % has no unique index on (stream, entry_id)', target
                USING ERRCODE = 'invalid_table_definition',
                      HINT = 'It is what stores each entry once, even when Redis delivers it again: add PRIMARY KEY (stream, entry_id).';
        END IF;
    END IF;
    INSERT INTO bmfredis.stream_consumers AS c (stream, target, notify, group_name)
    VALUES (stream, target, notify, group_name)
    ON CONFLICT ON CONSTRAINT stream_consumers_pkey DO UPDATE
       SET target = excluded.target, notify = excluded.notify, group_name = excluded.group_name;
END
$$;
COMMENT ON FUNCTION redis_consume_stream(text, regclass, text, text) IS
'The database''s bmfredis worker consumes the Redis Stream with a consumer group: each entry into target (exactly once) and/or as NOTIFY notify, acknowledged once committed';
REVOKE ALL ON FUNCTION redis_consume_stream(text, regclass, text, text) FROM PUBLIC;

CREATE FUNCTION redis_stop_consuming(stream text)
RETURNS boolean
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (DELETE FROM bmfredis.stream_consumers c
                   WHERE c.stream = redis_stop_consuming.stream RETURNING 1)
    SELECT count(*) > 0 FROM gone
$$;
COMMENT ON FUNCTION redis_stop_consuming(text) IS
'The worker stops consuming the stream (its consumer group stays in Redis, with what it has not read)';
REVOKE ALL ON FUNCTION redis_stop_consuming(text) FROM PUBLIC;

DO $$
BEGIN
    RAISE NOTICE 'bmfredis 1.1 grants nothing that reaches Redis to PUBLIC';
    RAISE NOTICE 'give each role what it uses, e.g. SELECT redis_grant(''app'', ''read'', ''write'', ''invalidate'')';
END
$$;
