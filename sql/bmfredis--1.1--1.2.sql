-- bmfredis 1.1 -> 1.2 (ALTER EXTENSION bmfredis UPDATE)
\echo Use "ALTER EXTENSION bmfredis UPDATE" to load this file. \quit

------------------------------------------------------------------------
-- Every write path to a watched table's rows: partitions and inheritance
-- children.  PostgreSQL fires a statement trigger only for the table a
-- statement names: an UPDATE aimed at a partition (or a child) never
-- reaches the parent's.  So each partition and child of a watched table
-- gets the same statement triggers, now and whenever one is created or
-- attached later (an event trigger); one that leaves (DETACH, NO
-- INHERIT, DROP) takes its rows out of the entity, and invalidates it.
------------------------------------------------------------------------

CREATE TABLE bmfredis.watched_descendants (
    relation    regclass PRIMARY KEY,
    entity      text NOT NULL REFERENCES bmfredis.entities ON DELETE CASCADE ON UPDATE CASCADE
);
COMMENT ON TABLE bmfredis.watched_descendants IS
'The partitions and inheritance children of watched tables that carry the entity''s triggers too (writes aimed at them are watched)';
SELECT pg_catalog.pg_extension_config_dump('bmfredis.watched_descendants', '');
GRANT SELECT ON bmfredis.watched_descendants TO PUBLIC;

-- The triggers of one table (the watched table or one of its descendants).
CREATE FUNCTION bmfredis.make_watch_triggers(tbl regclass, entity text, mode text, update_of text)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    trig name;
BEGIN
    FOR trig IN SELECT t.tgname FROM pg_trigger t
                 WHERE t.tgrelid = make_watch_triggers.tbl AND t.tgname LIKE 'bmfredis\_watch%' LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trig, tbl);
    END LOOP;
    IF mode = 'row' THEN
        EXECUTE format('CREATE TRIGGER bmfredis_watch AFTER INSERT OR UPDATE%s OR DELETE ON %s '
                       'FOR EACH ROW EXECUTE FUNCTION @extschema@.redis_cache_trigger(%L)',
                       update_of, tbl, entity);
        EXECUTE format('CREATE TRIGGER bmfredis_watch_statement AFTER INSERT OR UPDATE OR DELETE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.redis_cache_trigger(%L)',
                       tbl, entity);
    ELSE
        EXECUTE format('CREATE TRIGGER bmfredis_watch_insert AFTER INSERT ON %s '
                       'REFERENCING NEW TABLE AS bmfredis_new '
                       'FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.redis_cache_trigger(%L)',
                       tbl, entity);
        EXECUTE format('CREATE TRIGGER bmfredis_watch_update AFTER UPDATE ON %s '
                       'REFERENCING OLD TABLE AS bmfredis_old NEW TABLE AS bmfredis_new '
                       'FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.redis_cache_trigger(%L)',
                       tbl, entity);
        EXECUTE format('CREATE TRIGGER bmfredis_watch_delete AFTER DELETE ON %s '
                       'REFERENCING OLD TABLE AS bmfredis_old '
                       'FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.redis_cache_trigger(%L)',
                       tbl, entity);
    END IF;
    EXECUTE format('CREATE TRIGGER bmfredis_watch_truncate AFTER TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.redis_cache_trigger(%L)',
                   tbl, entity);
END
$$;
COMMENT ON FUNCTION bmfredis.make_watch_triggers(regclass, text, text, text) IS
'Makes the watch triggers of one table for an entity (its own table, or a partition or child of it)';

-- The descendants of a watched table as they are now: triggers for the
-- new ones, none left on those that went.  invalidate: rows that joined
-- or left the entity (DDL did it) invalidate it whole, as TRUNCATE does.
-- Like make_watch_triggers, it runs with the caller's rights (CREATE and
-- DROP TRIGGER need the table's owner; the invalidation, the invalidate
-- capability), so it is not kept from PUBLIC: it reaches nothing the
-- caller could not.  A descendant it cannot cover (the table watched in
-- row mode, a foreign table, a table that is an entity of its own) is an
-- ERROR when strict (redis_watch, CREATE of the descendant), otherwise a
-- WARNING that writes aimed at it are not watched (ALTER TABLE, the
-- upgrade): refusing every later ALTER of the table would be worse.
CREATE FUNCTION bmfredis.cover_descendants(tbl regclass, invalidate boolean, strict boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ent record;
    now_ regclass[];
    d regclass;
    trig name;
    has_rows boolean;
    moved boolean := false;
BEGIN
    SELECT e.entity, e.mode INTO ent FROM bmfredis.entities e WHERE e.relation = cover_descendants.tbl;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    now_ := ARRAY(WITH RECURSIVE down(relid) AS (
                      SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = cover_descendants.tbl
                      UNION
                      SELECT i.inhrelid FROM pg_inherits i JOIN down ON i.inhparent = down.relid)
                  SELECT relid::regclass FROM down);
    IF cardinality(now_) > 0 AND ent.mode = 'row' THEN
        IF NOT strict THEN
            RAISE WARNING 'bmfredis: writes aimed at the children of % are not watched (%)', tbl, array_to_string(now_, ', ')
                USING DETAIL = 'It is watched in row mode, whose triggers children do not inherit.',
                      HINT = format('Watch it in statement mode: SELECT redis_watch(%L, %L, ..., mode => ''statement'').', tbl::text, ent.entity);
            RETURN;
        END IF;
        RAISE EXCEPTION 'table % is watched in row mode and has partitions or inheritance children (%)',
                        tbl, array_to_string(now_, ', ')
            USING ERRCODE = '0A000',
                  DETAIL = 'Writes aimed at them would not be seen: row triggers are not inherited by inheritance children.',
                  HINT = format('Watch it in statement mode: SELECT redis_watch(%L, %L, ..., mode => ''statement'').', tbl::text, ent.entity);
    END IF;
    -- those that left (DETACH, NO INHERIT): their triggers go, the entity is invalidated
    FOR d IN SELECT w.relation FROM bmfredis.watched_descendants w
              WHERE w.entity = ent.entity AND w.relation <> ALL (now_) LOOP
        FOR trig IN SELECT t.tgname FROM pg_trigger t
                     WHERE t.tgrelid = d AND t.tgname LIKE 'bmfredis\_watch%' LOOP
            EXECUTE format('DROP TRIGGER %I ON %s', trig, d);
        END LOOP;
        DELETE FROM bmfredis.watched_descendants w WHERE w.relation = d;
        moved := true;
    END LOOP;
    -- those that are new (CREATE ... PARTITION OF, ATTACH, INHERITS, INHERIT)
    FOR d IN SELECT r FROM unnest(now_) r
              WHERE NOT EXISTS (SELECT FROM bmfredis.watched_descendants w WHERE w.relation = r) LOOP
        IF (SELECT c.relkind FROM pg_class c WHERE c.oid = d) = 'f' THEN
            IF NOT strict THEN
                RAISE WARNING 'bmfredis: writes aimed at foreign table %, a partition or child of watched table %, are not watched', d, tbl
                    USING DETAIL = 'bmfredis watches writes with statement triggers that read transition tables, which foreign tables do not have.';
                CONTINUE;
            END IF;
            RAISE EXCEPTION 'foreign table % cannot be a partition or child of watched table %', d, tbl
                USING ERRCODE = '0A000',
                      DETAIL = 'bmfredis watches writes with statement triggers that read transition tables, which foreign tables do not have.',
                      HINT = format('Stop watching %s (redis_unwatch) before attaching it.', tbl::text);
        END IF;
        IF EXISTS (SELECT FROM bmfredis.entities e WHERE e.relation = d) THEN
            IF NOT strict THEN
                RAISE WARNING 'bmfredis: writes aimed at % are watched as its own entity only, not as part of watched table %', d, tbl
                    USING DETAIL = 'A table carries the watch triggers of one entity.';
                CONTINUE;
            END IF;
            RAISE EXCEPTION 'table % is watched itself and cannot be a partition or child of watched table %', d, tbl
                USING ERRCODE = '0A000',
                      DETAIL = 'A table carries the watch triggers of one entity: writes aimed at it would be seen by one of the two only.',
                      HINT = format('Stop watching one of them (redis_unwatch), or watch only %s.', tbl::text);
        END IF;
        PERFORM bmfredis.make_watch_triggers(d, ent.entity, 'statement', '');
        INSERT INTO bmfredis.watched_descendants (relation, entity) VALUES (d, ent.entity);
        IF (SELECT c.relkind FROM pg_class c WHERE c.oid = d) = 'r' THEN
            EXECUTE format('SELECT EXISTS (SELECT FROM ONLY %s)', d) INTO has_rows;
            moved := moved OR has_rows;
        END IF;
    END LOOP;
    IF moved AND invalidate THEN
        PERFORM @extschema@.redis_invalidate_entity(ent.entity, NULL, 'truncate');
    END IF;
END
$$;
COMMENT ON FUNCTION bmfredis.cover_descendants(regclass, boolean, boolean) IS
'Gives the partitions and inheritance children of a watched table its triggers, takes them from those that left, and invalidates the entity when rows joined or left it';

CREATE OR REPLACE FUNCTION redis_rewatch(tbl regclass)
RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ent record;
    watched text[];
    update_of text := '';
BEGIN
    SELECT e.entity, e.mode INTO ent FROM bmfredis.entities e WHERE e.relation = redis_rewatch.tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % is not watched', tbl USING ERRCODE = '42704',
            HINT = 'Watch it with redis_watch().';
    END IF;
    watched := @extschema@.redis_rule_check(ent.entity);
    IF EXISTS (SELECT FROM bmfredis.watched_descendants w WHERE w.relation = redis_rewatch.tbl
                  AND w.entity <> ent.entity) THEN
        RAISE EXCEPTION 'table % is a partition or child of a watched table, and carries its triggers', tbl
            USING ERRCODE = '0A000',
                  DETAIL = format('Writes aimed at it are watched as entity "%s" already; a table carries the watch triggers of one entity.',
                                  (SELECT w.entity FROM bmfredis.watched_descendants w WHERE w.relation = redis_rewatch.tbl)),
                  HINT = 'Add the keys to that entity''s rules instead (redis_watch on the watched table, with another rule name).';
    END IF;
    IF watched IS NOT NULL THEN
        SELECT ' OF ' || string_agg(quote_ident(c), ', ') INTO update_of FROM unnest(watched) AS c;
    END IF;
    PERFORM bmfredis.make_watch_triggers(tbl, ent.entity, ent.mode, update_of);
    PERFORM bmfredis.cover_descendants(tbl, false);
END
$$;

CREATE OR REPLACE FUNCTION redis_unwatch(tbl regclass, rule text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ent text;
    trig record;
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
    FOR trig IN SELECT t.tgname, t.tgrelid::regclass AS rel FROM pg_trigger t
                 WHERE (t.tgrelid = redis_unwatch.tbl
                        OR t.tgrelid IN (SELECT w.relation FROM bmfredis.watched_descendants w
                                          WHERE w.entity = ent))
                   AND t.tgname LIKE 'bmfredis\_watch%' LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trig.tgname, trig.rel);
    END LOOP;
    DELETE FROM bmfredis.entities e WHERE e.relation = redis_unwatch.tbl;
END
$$;

-- DDL that changes which tables descend from a watched one
CREATE FUNCTION bmfredis.watch_ddl()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tbl regclass;
BEGIN
    IF pg_catalog.to_regclass('bmfredis.entities') IS NULL
       OR NOT EXISTS (SELECT FROM bmfredis.entities) THEN
        RETURN;
    END IF;
    FOR tbl IN
        WITH RECURSIVE cmd AS (
            SELECT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c
             WHERE c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND c.objsubid = 0),
        up(relid) AS (
            SELECT cmd.objid FROM cmd
            UNION
            SELECT i.inhparent FROM pg_inherits i JOIN up ON i.inhrelid = up.relid)
        SELECT e.relation FROM bmfredis.entities e WHERE e.relation::oid IN (SELECT up.relid FROM up)
        UNION
        SELECT e.relation FROM bmfredis.watched_descendants w JOIN bmfredis.entities e USING (entity)
         WHERE w.relation::oid IN (SELECT cmd.objid FROM cmd)
    LOOP
        -- refused when the command made the descendant; otherwise a WARNING
        PERFORM bmfredis.cover_descendants(tbl, true, TG_TAG LIKE 'CREATE %');
    END LOOP;
END
$$;
COMMENT ON FUNCTION bmfredis.watch_ddl() IS
'Event trigger function: partitions and inheritance children created, attached or detached under a watched table get (or lose) its triggers';

CREATE EVENT TRIGGER bmfredis_watch_ddl ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE')
    EXECUTE FUNCTION bmfredis.watch_ddl();

CREATE OR REPLACE FUNCTION bmfredis.forget_dropped_tables()
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
    -- a dropped partition or child takes its rows out of a table that stays
    FOR gone IN
        DELETE FROM bmfredis.watched_descendants w
         USING pg_catalog.pg_event_trigger_dropped_objects() d
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.objsubid OPERATOR(pg_catalog.=) 0
           AND w.relation::pg_catalog.oid OPERATOR(pg_catalog.=) d.objid
        RETURNING w.entity
    LOOP
        IF EXISTS (SELECT FROM bmfredis.entities e
                    WHERE e.entity OPERATOR(pg_catalog.=) gone.entity
                      AND NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects() d
                                       WHERE d.objid OPERATOR(pg_catalog.=) e.relation::pg_catalog.oid)) THEN
            PERFORM @extschema@.redis_invalidate_entity(gone.entity, NULL, 'truncate');
        END IF;
    END LOOP;
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

REVOKE ALL ON FUNCTION bmfredis.watch_ddl() FROM PUBLIC;

COMMENT ON FUNCTION redis_invalidate_entity(text, text, text) IS
'Applies an entity''s cache rules and cascades by hand, as invalidateCache.product(id, ''update''); action truncate (no id) invalidates every row; sent at COMMIT';

-- Tables watched before 1.2 get their partitions' and children's
-- triggers now; their keys are invalidated once (writes aimed at a
-- partition were not seen until now).  What cannot be covered (a table
-- watched in row mode with children, a foreign partition, a child that is
-- an entity of its own) keeps working as before, with a WARNING naming it.
DO $$
DECLARE
    tbl regclass;
BEGIN
    FOR tbl IN SELECT e.relation FROM bmfredis.entities e WHERE e.relation IS NOT NULL LOOP
        BEGIN
            PERFORM bmfredis.cover_descendants(tbl, true, false);
        EXCEPTION WHEN others THEN
            -- rules that no longer compile (a dropped column) do not stop the update
            RAISE WARNING 'bmfredis could not cover the partitions and children of %: %', tbl, SQLERRM
                USING HINT = format('Fix its rules, then SELECT redis_rewatch(%L).', tbl::text);
        END;
    END LOOP;
END
$$;

-- A confinement changed by redis_confine_channels reaches sessions already
-- open at their next call: the same relcache invalidation as the rules.
CREATE TRIGGER rules_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON bmfredis.role_channels
    FOR EACH STATEMENT EXECUTE FUNCTION redis_rules_changed();

-- redis_invalidate_at and redis_invalidate_tag_at ran as their owner, so a
-- role with a user mapping scheduled as the server's identity, past its
-- own Redis user's ACL.  They run as the caller now; the C code writes the
-- schedule row (a table granted to nobody) as the extension's owner.
ALTER FUNCTION redis_invalidate_at(text, timestamptz) SECURITY INVOKER;
ALTER FUNCTION redis_invalidate_tag_at(text, timestamptz) SECURITY INVOKER;

-- The functions 1.2 replaced keep 1.1's comments unless restated: say
-- what they do now.
COMMENT ON FUNCTION redis_rewatch(regclass) IS
'Makes the table''s watch triggers again from its rules, and those of its partitions and inheritance children';
COMMENT ON FUNCTION redis_unwatch(regclass, text) IS
'Drops the watch triggers of the table and of its partitions and children, the entity, its rules and its cascades; with a rule name, only that rule';
COMMENT ON FUNCTION bmfredis.forget_dropped_tables() IS
'Event trigger function: forgets the entities of dropped tables, and invalidates an entity whose partition or child was dropped';

------------------------------------------------------------------------
-- The admin capability manages what bmfredis does with the tables its
-- holder owns.  Before 1.2 a non-superuser with admin could call
-- redis_watch and redis_consume_stream but not write the tables they keep
-- their rules in ("permission denied for table entities"), so delegating
-- it needed a superuser.  Now admin is granted INSERT, UPDATE and DELETE
-- on them, and row-level security confines each write to the rows of
-- tables the role owns (or whose owner role it is a member of), as
-- PostgreSQL confines CREATE TRIGGER: rules, cascades, descendants and
-- stream consumers of someone else's table stay theirs.  Reading the
-- rules stays open (the triggers of every writer read them).  Superusers
-- and the extension's owner, who owns these tables, are not confined.
------------------------------------------------------------------------

-- May the current role change what bmfredis does with table rel?  It must
-- own it (or be a member of its owner), and it must be a table: a view's
-- functions would run as whoever reads the entity (redis_invalidate_entity,
-- a cascade).  An entity without a table is the extension owner's.
CREATE FUNCTION bmfredis.manages(rel regclass)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN rel IS NULL THEN
                EXISTS (SELECT FROM pg_extension x
                         WHERE x.extname OPERATOR(pg_catalog.=) 'bmfredis'
                           AND pg_has_role(current_user, x.extowner, 'USAGE'))
           ELSE
                EXISTS (SELECT FROM pg_class c
                         WHERE c.oid OPERATOR(pg_catalog.=) rel
                           AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,f}'::pg_catalog."char"[])
                           AND c.relpersistence OPERATOR(pg_catalog.<>) 't'
                           AND pg_has_role(current_user, c.relowner, 'USAGE'))
           END
$$;
COMMENT ON FUNCTION bmfredis.manages(regclass) IS
'True when the current role owns the table (or is a member of its owner; for no table, of the extension''s owner): the rows of bmfredis'' rules tables it may write';

-- The same for a row being written: false is an ERROR saying why.
CREATE FUNCTION bmfredis.check_manages(rel regclass, what text)
RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF bmfredis.manages(rel) THEN
        RETURN true;
    ELSIF rel IS NULL THEN
        RAISE EXCEPTION 'only the owner of extension bmfredis may change % without a table', what
            USING ERRCODE = '42501';
    ELSIF (SELECT c.relkind FROM pg_class c WHERE c.oid OPERATOR(pg_catalog.=) rel)
          OPERATOR(pg_catalog.<>) ALL ('{r,p,f}'::pg_catalog."char"[]) THEN
        RAISE EXCEPTION '% is not a table', rel
            USING ERRCODE = '42809',
                  DETAIL = 'bmfredis entities are tables (plain, partitioned or foreign).';
    ELSIF (SELECT c.relpersistence FROM pg_class c WHERE c.oid OPERATOR(pg_catalog.=) rel)
          OPERATOR(pg_catalog.=) 't' THEN
        RAISE EXCEPTION '% is a temporary table', rel
            USING ERRCODE = '42809',
                  DETAIL = 'A temporary table goes without a trace bmfredis could follow.';
    END IF;
    RAISE EXCEPTION 'must be owner of table % to change its %', rel, what
        USING ERRCODE = '42501',
              DETAIL = format('Table %s is owned by role %s; bmfredis lets a role with the admin capability manage only the tables it owns.',
                              rel, (SELECT c.relowner::regrole FROM pg_class c WHERE c.oid OPERATOR(pg_catalog.=) rel)),
              HINT = 'Ask its owner or a superuser to do it, or to make you a member of the owner''s role.';
END
$$;
COMMENT ON FUNCTION bmfredis.check_manages(regclass, text) IS
'Row-level security check of bmfredis'' rules tables: an ERROR (42501) naming the table''s owner unless the current role owns it';

-- A cascade reads the rows of its target as the target's owner: like a
-- foreign key (REFERENCES), it needs the right to read them.
CREATE FUNCTION bmfredis.check_reads(rel regclass)
RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF rel IS NULL OR bmfredis.manages(rel) THEN
        RETURN true;
    END IF;
    IF (SELECT c.relrowsecurity FROM pg_class c WHERE c.oid OPERATOR(pg_catalog.=) rel) THEN
        RAISE EXCEPTION 'permission denied to cascade into table %', rel
            USING ERRCODE = '42501',
                  DETAIL = 'It has row-level security, and a cascade reads its rows as its owner, past the policies that apply to you.';
    END IF;
    IF has_table_privilege(current_user, rel, 'SELECT') THEN
        RETURN true;
    END IF;
    RAISE EXCEPTION 'permission denied to cascade into table %', rel
        USING ERRCODE = '42501',
              DETAIL = 'A cascade reads the rows of its target table.',
              HINT = format('Its owner can GRANT SELECT ON %s to you.', rel);
END
$$;
COMMENT ON FUNCTION bmfredis.check_reads(regclass) IS
'Row-level security check of bmfredis.cache_cascades: the current role may read the target''s table';

-- For the rows of an entity (rules, cascades): its table's.
CREATE FUNCTION bmfredis.entity_relation(entity text)
RETURNS regclass
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.relation FROM bmfredis.entities e WHERE e.entity OPERATOR(pg_catalog.=) entity_relation.entity
$$;
COMMENT ON FUNCTION bmfredis.entity_relation(text) IS
'The table of an entity (NULL for none), for the row-level security of the rules tables';

-- A rule's channel: its events go out as the server's identity, so the
-- role must be one that may publish there itself (publish, and its
-- confinement, redis_confine_channels).
CREATE FUNCTION bmfredis.channel_allowed(channel text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'bmfredis_channel_allowed'
LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION bmfredis.channel_allowed(text) IS
'Whether the current role''s channel confinement (redis_confine_channels) allows publishing on the channel';

CREATE FUNCTION bmfredis.check_rule_channel(channel text)
RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    op text;
BEGIN
    IF channel IS NULL THEN
        RETURN true;
    END IF;
    IF NOT has_function_privilege(current_user, '@extschema@.redis_publish(text, text, boolean)', 'EXECUTE') THEN
        RAISE EXCEPTION 'permission denied to announce changes on channel "%"', channel
            USING ERRCODE = '42501',
                  DETAIL = 'A rule''s events are published at COMMIT as the server''s identity.',
                  HINT = 'It needs the publish capability (redis_grant).';
    END IF;
    FOREACH op IN ARRAY '{created,updated,deleted,truncated}'::text[] LOOP
        IF NOT bmfredis.channel_allowed(channel || ':' || op) THEN
            RAISE EXCEPTION 'permission denied to announce changes on channel "%"', channel || ':' || op
                USING ERRCODE = '42501',
                      DETAIL = 'The role is confined to other channels (redis_confine_channels).';
        END IF;
    END LOOP;
    RETURN true;
END
$$;

-- A stream the worker is to read: the worker reads it as the server's
-- identity, so a role talking to Redis as its own user (a user mapping;
-- with bmfredis.server a role without one cannot talk at all) must be
-- allowed the key itself: read (TYPE) and write, for the group (a no-op
-- XTRIM).  Redis' ACL answers 42501 otherwise.
CREATE FUNCTION bmfredis.check_stream(stream text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF coalesce(current_setting('bmfredis.server', true), '') <> '' THEN
        PERFORM @extschema@.redis_command('TYPE', stream);
        PERFORM @extschema@.redis_command('XTRIM', stream, 'MAXLEN', '9223372036854775807');
    END IF;
    RETURN true;
END
$$;

ALTER TABLE bmfredis.entities ENABLE ROW LEVEL SECURITY;
CREATE POLICY read ON bmfredis.entities FOR SELECT USING (true);
CREATE POLICY owner ON bmfredis.entities
    USING (bmfredis.manages(relation))
    WITH CHECK (bmfredis.check_manages(relation, 'bmfredis entity'));

ALTER TABLE bmfredis.cache_rules ENABLE ROW LEVEL SECURITY;
CREATE POLICY read ON bmfredis.cache_rules FOR SELECT USING (true);
CREATE POLICY owner ON bmfredis.cache_rules
    USING (bmfredis.manages(bmfredis.entity_relation(entity)))
    WITH CHECK (bmfredis.check_manages(bmfredis.entity_relation(entity), 'bmfredis rules')
                AND bmfredis.check_rule_channel(channel));

ALTER TABLE bmfredis.cache_cascades ENABLE ROW LEVEL SECURITY;
CREATE POLICY read ON bmfredis.cache_cascades FOR SELECT USING (true);
CREATE POLICY owner ON bmfredis.cache_cascades
    USING (bmfredis.manages(bmfredis.entity_relation(entity)))
    WITH CHECK (bmfredis.check_manages(bmfredis.entity_relation(entity), 'bmfredis cascades')
                AND bmfredis.check_reads(bmfredis.entity_relation(target)));

-- A descendant row names the descendant and the entity it joins: both must
-- be the role's (the event triggers act on it as the extension's owner).
ALTER TABLE bmfredis.watched_descendants ENABLE ROW LEVEL SECURITY;
CREATE POLICY read ON bmfredis.watched_descendants FOR SELECT USING (true);
CREATE POLICY owner ON bmfredis.watched_descendants
    USING (bmfredis.manages(relation) AND bmfredis.manages(bmfredis.entity_relation(entity)))
    WITH CHECK (bmfredis.check_manages(relation, 'bmfredis watch triggers')
                AND bmfredis.check_manages(bmfredis.entity_relation(entity), 'bmfredis entity'));

-- A stream consumer is its registrant's; the worker writes its entries as
-- the owner of the table they go into, so only that owner names the table.
ALTER TABLE bmfredis.stream_consumers
    ADD COLUMN registrant regrole NOT NULL DEFAULT current_user::regrole;
COMMENT ON COLUMN bmfredis.stream_consumers.registrant IS
'The role that registered the consumer (redis_consume_stream): only it (and its members) may change or stop it';

CREATE FUNCTION bmfredis.check_registrant(registrant regrole)
RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_has_role(current_user, registrant, 'USAGE') THEN
        RETURN true;
    END IF;
    RAISE EXCEPTION 'a stream consumer can be registered only for yourself, not for role %', registrant
        USING ERRCODE = '42501';
END
$$;

COMMENT ON FUNCTION bmfredis.check_registrant(regrole) IS
'Row-level security check of bmfredis.stream_consumers: a consumer is registered for the current role (or one it is a member of)';
COMMENT ON FUNCTION bmfredis.check_rule_channel(text) IS
'Row-level security check of bmfredis.cache_rules: the role may publish the rule''s events itself (publish capability, confinement)';
COMMENT ON FUNCTION bmfredis.check_stream(text) IS
'Row-level security check of bmfredis.stream_consumers: with bmfredis.server, the role''s own Redis user may read and write the stream (TYPE, a no-op XTRIM)';

ALTER TABLE bmfredis.stream_consumers ENABLE ROW LEVEL SECURITY;
CREATE POLICY read ON bmfredis.stream_consumers FOR SELECT USING (true);
CREATE POLICY owner ON bmfredis.stream_consumers
    USING (pg_has_role(current_user, registrant, 'USAGE'))
    WITH CHECK (bmfredis.check_registrant(registrant)
                AND (target IS NULL OR bmfredis.check_manages(target, 'stream consumer'))
                AND bmfredis.check_stream(stream));

-- redis_consume_stream records its registrant (the policy on
-- stream_consumers checks the stream against the role's Redis user).
CREATE OR REPLACE FUNCTION redis_consume_stream(stream text, target regclass DEFAULT NULL,
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
    INSERT INTO bmfredis.stream_consumers AS c (stream, target, notify, group_name, registrant)
    VALUES (stream, target, notify, group_name, current_user::regrole)
    ON CONFLICT ON CONSTRAINT stream_consumers_pkey DO UPDATE
       SET target = excluded.target, notify = excluded.notify, group_name = excluded.group_name,
           registrant = excluded.registrant;
END
$$;
COMMENT ON FUNCTION redis_consume_stream(text, regclass, text, text) IS
'The database''s bmfredis worker consumes the Redis Stream with a consumer group: each entry into target (exactly once, written as the table''s owner) and/or as NOTIFY notify, acknowledged once committed; the caller is recorded as its registrant';

CREATE OR REPLACE FUNCTION redis_stop_consuming(stream text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    who regrole;
BEGIN
    SELECT c.registrant INTO who FROM bmfredis.stream_consumers c WHERE c.stream = redis_stop_consuming.stream;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF NOT pg_has_role(current_user, who, 'USAGE') THEN
        RAISE EXCEPTION 'stream "%" is consumed for role %', stream, who
            USING ERRCODE = '42501',
                  HINT = 'Only that role (or a member of it) may stop it.';
    END IF;
    DELETE FROM bmfredis.stream_consumers c WHERE c.stream = redis_stop_consuming.stream;
    RETURN true;
END
$$;
COMMENT ON FUNCTION redis_stop_consuming(text) IS
'The worker stops consuming the stream (its consumer group stays in Redis, with what it has not read); only the role that registered it (or a member of it) may';

-- format's %I of a regrole's text quoted a quoted name again, and a
-- dropped role's row (its OID as text) failed its GRANT, which would abort
-- the update: each role as its own text, and only roles that exist.
CREATE OR REPLACE FUNCTION bmfredis.apply_capabilities(target regrole)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    held text[];
    o record;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) target::oid) THEN
        RETURN;
    END IF;
    SELECT coalesce(array_agg(capability), '{}') INTO held
      FROM bmfredis.role_capabilities WHERE role OPERATOR(pg_catalog.=) target;
    FOR o IN SELECT * FROM bmfredis.capability_objects() LOOP
        IF o.needs OPERATOR(pg_catalog.<@) held THEN
            EXECUTE format('GRANT %s ON %s TO %s', o.privilege, o.object, target::text);
        ELSE
            EXECUTE format('REVOKE %s ON %s FROM %s', o.privilege, o.object, target::text);
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION bmfredis.apply_capabilities(regrole) IS
'Makes a role''s grants on bmfredis objects what its recorded capabilities cover (used by redis_grant, redis_revoke and upgrades)';

CREATE OR REPLACE FUNCTION bmfredis.capability_objects(OUT needs text[], OUT object text, OUT privilege text)
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
    ('{admin}', 'TABLE @extschema@.redis_privileges', 'SELECT'),
    ('{admin}', 'TABLE bmfredis.entities, bmfredis.cache_rules, bmfredis.cache_cascades, bmfredis.watched_descendants', 'INSERT, UPDATE, DELETE'),
    ('{admin}', 'TABLE bmfredis.stream_consumers', 'SELECT, INSERT, UPDATE, DELETE')
$$;
COMMENT ON FUNCTION bmfredis.capability_objects() IS
'What each capability covers: the functions (EXECUTE) and tables (SELECT, and for admin the rules tables'' INSERT, UPDATE and DELETE) a role holding it is granted';

-- redis_health() says which other databases share this one's namespace
-- (the same Redis and key prefix): a new OUT column, so it is made again
-- (its grants to monitor come back below).
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
    OUT memory_note text,
    OUT prefix_shared_with text[])
RETURNS record
AS 'MODULE_PATHNAME', 'redis_health'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION redis_health() IS
'Health of the Redis server from PING and INFO (server, version, memory and eviction, with a note when cache writes are about to fail), and the other databases sharing this one''s key prefix on it; never raises for a Redis fault';
REVOKE ALL ON FUNCTION redis_health() FROM PUBLIC;

-- Roles that hold admin get the new table grants now (and monitor, redis_health again).
SELECT bmfredis.apply_capabilities(r.role)
  FROM (SELECT DISTINCT c.role FROM bmfredis.role_capabilities c) r;

-- Scripts can run what redis_command refuses without force: they need it too.
COMMENT ON FUNCTION redis_command(text[]) IS
'Runs one raw Redis command (no key prefix, keys not confined to it) and returns its reply as text, arrays as JSON; refuses server-wide commands and scripts without force; for administrators';
COMMENT ON FUNCTION redis_command(boolean, text[]) IS
'redis_command, and with force => true also the commands that harm every application on the Redis (FLUSHALL, SHUTDOWN, CONFIG SET, ...) and scripts (EVAL, EVALSHA, FCALL, ...)';

-- PostgreSQL 18 records each NOT NULL constraint by name, and a name is
-- taken once per schema: the 1.0 to 1.1 update made tables while the old
-- ones still held their names, so a database updated from 1.0 has
-- cache_rules_entity_not_null1 where a fresh install has
-- cache_rules_entity_not_null.  Give them the fresh install's names (on
-- PostgreSQL 15 to 17 there are none to rename).
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT con.conname, con.conrelid::regclass AS rel,
               regexp_replace(con.conname, '[0-9]+$', '') AS fresh
        FROM pg_catalog.pg_constraint con
        WHERE con.connamespace = 'bmfredis'::regnamespace
          AND con.conname ~ '_not_null[0-9]+$'
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                       WHERE connamespace = 'bmfredis'::regnamespace AND conname = c.fresh) THEN
            EXECUTE format('ALTER TABLE %s RENAME CONSTRAINT %I TO %I', c.rel, c.conname, c.fresh);
        END IF;
    END LOOP;
END
$$;
