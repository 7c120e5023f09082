-- Cache invalidation at the source: every committed change to `city` leaves an outbox row per
-- country code it touched, in the same transaction. A NOTIFY city_updates '<CODE>' wake-up follows
-- only while the flag city_listener_asleep says a pg_listener may be asleep (DESIGN.md, guarantee 8).
--
-- Why an outbox: NOTIFY reaches only sessions listening at commit time. The outbox row is the
-- durable record; pg_listener deletes it only after Kafka acknowledged the event (DESIGN.md, 4.1).
-- Why statement-level triggers with transition tables: one UPDATE of 100k rows costs one outbox
-- row (and at most one notification) per distinct code, not 100k of each (DESIGN.md, 4.2).
-- Why a lean outbox (one text column, no sequence, no index): the listener takes rows by ctid, so
-- writers pay neither a sequence nor the right-most btree page (DESIGN.md, 7: 0.79 -> 0.87).
--
-- The handshake (see citycache/write/wakeup.py): the flag is a sequence, so it is read and set outside
-- MVCC: every writer sees the newest value whatever its isolation level, and the listener's setval is
-- visible at once, before its transaction ends. A writer reads it only after its own outbox row
-- exists, so it already holds an xid: a listener that sets the flag and then waits for every xid in
-- flight has waited for every writer that could still have read "awake".
--
-- Idempotent: safe to apply twice. It replaces any older trigger on `city` that notifies
-- city_updates (the seed's row-level one, city_invalidate_v1) and turns a v1 outbox into the lean
-- shape in place, keeping its pending rows. Functions and triggers carry a version suffix.

BEGIN;
SELECT pg_advisory_xact_lock(hashtext('city-cache db/trigger.sql'));

CREATE TABLE IF NOT EXISTS city_outbox (
    code text NOT NULL  -- a country code, or '*' after TRUNCATE
);
-- v1 had an id (bigserial primary key) and created_at; commit times now come from
-- pg_xact_commit_timestamp(xmin). Dropping the id also drops its sequence and index.
ALTER TABLE city_outbox DROP COLUMN IF EXISTS id, DROP COLUMN IF EXISTS created_at;
-- A queue table: vacuum it after a few thousand dead rows whatever its size, so its pages stay few.
ALTER TABLE city_outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000);

-- 1: writers must NOTIFY (a listener may be asleep); 0: a listener is draining and will look again.
-- Starts at 1, the safe value: a listener clears it only while it is awake.
CREATE SEQUENCE IF NOT EXISTS city_listener_asleep MINVALUE 0 MAXVALUE 1 START 1 NO CYCLE;

CREATE OR REPLACE FUNCTION city_invalidate_v2() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    changed text;
BEGIN
    -- Each branch names only the transition tables its event has. Codes are taken as stored: the
    -- table's CHECK keeps them uppercase and pg_listener normalizes them anyway. The codes are read
    -- a second time only to notify, which under load is rare: cheaper for the common commit than
    -- collecting them (RETURNING into an array measured ~20 % more time in the trigger).
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO city_outbox (code) VALUES ('*');
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO city_outbox (code) SELECT DISTINCT countrycode FROM new_rows;
    ELSIF TG_OP = 'UPDATE' THEN
        -- A city moved to another country invalidates both codes. One DISTINCT over both tables
        -- hashes once; a UNION of a 100k-row UPDATE's two sides measured ~10 % slower.
        INSERT INTO city_outbox (code) SELECT DISTINCT countrycode FROM (
            SELECT countrycode FROM old_rows UNION ALL SELECT countrycode FROM new_rows) AS touched;
    ELSE
        INSERT INTO city_outbox (code) SELECT DISTINCT countrycode FROM old_rows;
    END IF;
    -- Read the flag only now, with our outbox row (and so our xid) in place: see the header.
    -- pg_sequence_last_value (what the pg_sequences view reads) is a plain expression, which
    -- plpgsql evaluates without starting an executor: a SELECT from the sequence cost each
    -- single-row commit ~7 us of the ~23 us this trigger took. NULL (never set) means asleep.
    IF pg_sequence_last_value('city_listener_asleep') IS DISTINCT FROM 0 THEN
        IF TG_OP = 'TRUNCATE' THEN
            PERFORM pg_notify('city_updates', '*');
        ELSIF TG_OP = 'INSERT' THEN
            FOR changed IN SELECT DISTINCT countrycode FROM new_rows LOOP
                PERFORM pg_notify('city_updates', changed);
            END LOOP;
        ELSIF TG_OP = 'UPDATE' THEN
            FOR changed IN SELECT DISTINCT countrycode FROM (
                    SELECT countrycode FROM old_rows UNION ALL SELECT countrycode FROM new_rows) AS touched LOOP
                PERFORM pg_notify('city_updates', changed);
            END LOOP;
        ELSE
            FOR changed IN SELECT DISTINCT countrycode FROM old_rows LOOP
                PERFORM pg_notify('city_updates', changed);
            END LOOP;
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

-- Replace older triggers that notify city_updates (the seed's row trigger, v1).
DO $$
DECLARE
    old record;
BEGIN
    FOR old IN
        SELECT t.tgname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
        WHERE t.tgrelid = 'city'::regclass AND NOT t.tgisinternal
          AND p.prosrc LIKE '%city_updates%' AND p.proname <> 'city_invalidate_v2'
    LOOP
        EXECUTE format('DROP TRIGGER %I ON city', old.tgname);
    END LOOP;
END;
$$;
-- v1 goes too, unless something else still uses it (the benchmarks' copies of city did).
DO $$
BEGIN
    DROP FUNCTION IF EXISTS city_invalidate_v1();
EXCEPTION WHEN dependent_objects_still_exist THEN
    RAISE NOTICE 'city_invalidate_v1 kept: other triggers still use it';
END;
$$;

-- Created only when missing, never replaced: CAPTURE_MODE=logical disables them (citycache/write/replication.py),
-- and applying this file again (ops.seed --reload does) must leave them disabled.
DO $$
DECLARE
    wanted text[][] := ARRAY[
        ['city_invalidate_insert_v2', 'INSERT', 'REFERENCING NEW TABLE AS new_rows'],
        ['city_invalidate_update_v2', 'UPDATE', 'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows'],
        ['city_invalidate_delete_v2', 'DELETE', 'REFERENCING OLD TABLE AS old_rows'],
        ['city_invalidate_truncate_v2', 'TRUNCATE', '']];
BEGIN
    FOR i IN 1 .. array_length(wanted, 1) LOOP
        IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'city'::regclass AND tgname = wanted[i][1]) THEN
            EXECUTE format('CREATE TRIGGER %I AFTER %s ON city %s FOR EACH STATEMENT'
                           ' EXECUTE FUNCTION city_invalidate_v2()', wanted[i][1], wanted[i][2], wanted[i][3]);
        END IF;
    END LOOP;
END;
$$;

COMMIT;
