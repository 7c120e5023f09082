-- Cache invalidation at the source, the part every rule's table shares: the outbox and the flag.
-- `bin/cli schema install` applies this file and, for each table in the rules (invalidation.toml),
-- db/table_trigger.sql, in one transaction. Names in double braces come from citycache/write/dbnames.py.
--
-- Why an outbox: NOTIFY reaches only sessions listening at commit time. The outbox row is the
-- durable record; pg_listener deletes it only after Kafka acknowledged the event (DESIGN.md, 4.1).
-- Why the values and not the keys: a statement writes one row per distinct value of its rule's key
-- columns, however many keys the rule has (city's two keys both come from countrycode); pg_listener
-- renders the keys. vals NULL means TRUNCATE: every key under the rule's prefixes.
-- Why a lean outbox (no sequence, no index): the listener takes rows by ctid, so writers pay neither
-- a sequence nor the right-most btree page (DESIGN.md, 7: 0.79 -> 0.87).
--
-- The flag (see citycache/write/wakeup.py) is a sequence, so it is read and set outside MVCC: every
-- writer sees the newest value whatever its isolation level, and the listener's setval is visible at
-- once, before its transaction ends. A writer reads it only after its own outbox row exists, so it
-- already holds an xid: a listener that sets the flag and then waits for every xid in flight has
-- waited for every writer that could still have read "awake".
--
-- Idempotent: safe to apply twice. Version 2 (city only: city_outbox, city_listener_asleep) is
-- replaced in place: its pending rows move into the new outbox before it is dropped.

CREATE TABLE IF NOT EXISTS {{outbox}} (
    tbl  text NOT NULL,  -- the rule's table, as the rules file names it
    vals text[]          -- its key columns' values, in the rule's order; NULL after TRUNCATE
);
-- A queue table: vacuum it after a few thousand dead rows whatever its size, so its pages stay few.
ALTER TABLE {{outbox}} SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000);

-- 1: writers must NOTIFY (a listener may be asleep); 0: a listener is draining and will look again.
-- Starts at 1, the safe value: a listener clears it only while it is awake.
CREATE SEQUENCE IF NOT EXISTS {{flag}} MINVALUE 0 MAXVALUE 1 START 1 NO CYCLE;

-- Version 2's pieces on city: its triggers go first (writers of city wait for this transaction from
-- here on), then its pending rows move over ('*' was its TRUNCATE), then its outbox and flag go.
DO $$
DECLARE
    old record;
BEGIN
    IF to_regclass('city') IS NOT NULL THEN
        FOR old IN
            SELECT t.tgname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
            WHERE t.tgrelid = 'city'::regclass AND NOT t.tgisinternal
              AND (p.prosrc LIKE '%{{channel}}%' OR p.proname = '{{v2_function}}')
              AND p.proname NOT LIKE '{{function_prefix}}%'
        LOOP
            EXECUTE format('DROP TRIGGER %I ON city', old.tgname);
        END LOOP;
    END IF;
    IF to_regclass('{{v2_outbox}}') IS NOT NULL THEN
        INSERT INTO {{outbox}} (tbl, vals)
        SELECT 'city', CASE WHEN code = '*' THEN NULL ELSE ARRAY[btrim(code)] END FROM {{v2_outbox}};
        DROP TABLE {{v2_outbox}};
    END IF;
    DROP SEQUENCE IF EXISTS {{v2_flag}};
END;
$$;
-- The v2 function goes too, unless something else still uses it.
DO $$
BEGIN
    DROP FUNCTION IF EXISTS {{v2_function}}();
    DROP FUNCTION IF EXISTS city_invalidate_v1();
EXCEPTION WHEN dependent_objects_still_exist THEN
    RAISE NOTICE 'an older city_invalidate function kept: other triggers still use it';
END;
$$;
