-- One rule's table into the outbox (db/trigger.sql): rendered by citycache/write/triggers.py for each
-- table in the rules, applied by `bin/cli schema install` in the same transaction as db/trigger.sql.
--
-- Why generated SQL per table and not one function with dynamic SQL: plpgsql caches the plan of a
-- static statement per session, while EXECUTE plans on every call (measured in the README, *The write
-- path*). Why statement-level triggers with transition tables: one UPDATE of 100k rows costs one outbox
-- row (and at most one notification) per distinct value of the rule's columns, not 100k (DESIGN.md,
-- 4.2). Values go in as text (a char(n) without its padding): pg_listener renders the keys from them.
-- The NOTIFY payload is the first key column's value (for city the country code, DESIGN.md's contract).
--
-- The function's comment names the rule's columns: pg_listener refuses to start when they are not the
-- rules' (`bin/cli schema install` was not run after a rule changed).

CREATE OR REPLACE FUNCTION {{function}}() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    changed text;
BEGIN
    -- Each branch names only the transition tables its event has. The values are read a second time
    -- only to notify, which under load is rare: cheaper for the common commit than collecting them.
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO {{outbox}} (tbl, vals) VALUES ({{rule}}, NULL);
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO {{outbox}} (tbl, vals) SELECT {{rule}}, {{array}} FROM ({{new_values}}) AS changed_rows;
    ELSIF TG_OP = 'UPDATE' THEN
        -- A row whose key columns change invalidates its old keys and its new ones. One DISTINCT over
        -- both tables hashes once; a UNION of a 100k-row UPDATE's two sides measured ~10 % slower.
        INSERT INTO {{outbox}} (tbl, vals) SELECT {{rule}}, {{array}} FROM ({{both_values}}) AS changed_rows;
    ELSE
        INSERT INTO {{outbox}} (tbl, vals) SELECT {{rule}}, {{array}} FROM ({{old_values}}) AS changed_rows;
    END IF;
    -- Read the flag only now, with our outbox row (and so our xid) in place: see db/trigger.sql.
    -- pg_sequence_last_value is a plain expression, which plpgsql evaluates without starting an
    -- executor (a SELECT from the sequence cost each single-row commit ~7 us). NULL (never set): asleep.
    IF pg_sequence_last_value({{flag}}) IS DISTINCT FROM 0 THEN
        IF TG_OP = 'TRUNCATE' THEN
            PERFORM pg_notify('{{channel}}', '*');
        ELSIF TG_OP = 'INSERT' THEN
            FOR changed IN {{new_payloads}} LOOP
                PERFORM pg_notify('{{channel}}', changed);
            END LOOP;
        ELSIF TG_OP = 'UPDATE' THEN
            FOR changed IN {{both_payloads}} LOOP
                PERFORM pg_notify('{{channel}}', changed);
            END LOOP;
        ELSE
            FOR changed IN {{old_payloads}} LOOP
                PERFORM pg_notify('{{channel}}', changed);
            END LOOP;
        END IF;
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION {{function}}() IS {{comment}};
