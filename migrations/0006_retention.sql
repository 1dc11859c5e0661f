-- Retention, archival, anonymization and audit forensics.

-- More retention steps are recorded than the base schema allowed.
ALTER TABLE opsdash.retention_run DROP CONSTRAINT retention_run_action_check;
ALTER TABLE opsdash.retention_run ADD CONSTRAINT retention_run_action_check
    CHECK (action IN ('drop', 'archive', 'anonymize', 'move_default', 'create', 'detach',
                      'compact', 'trim', 'restore'));
CREATE INDEX ON opsdash.retention_run (status, started_at);

-- Marks a partition as done for a one-time step ('anonymized', 'compacted'), so a re-run changes
-- nothing. Written in the same transaction as the step itself.
CREATE TABLE opsdash.partition_mark (
    partition  text        NOT NULL,
    mark       text        NOT NULL CHECK (mark IN ('anonymized', 'compacted')),
    table_name text        NOT NULL,
    rows       bigint      NOT NULL DEFAULT 0,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partition, mark)
);

-- A restored archive is kept until `until` even when its day is past the retention period,
-- otherwise the next retention run would drop it again.
CREATE TABLE opsdash.retention_hold (
    partition  text PRIMARY KEY,
    table_name text        NOT NULL,
    until      timestamptz NOT NULL,
    reason     text        NOT NULL DEFAULT ''
);

-- ---------------------------------------------------------------------------------------------
-- Audit events are append-only. UPDATE, DELETE and TRUNCATE are refused unless the transaction
-- set `opsdash.retention_bypass` to 'on' (only the retention code does: anonymization and moving
-- rows out of the default partition). A custom setting can be set by any session, so this guards
-- against accidents and against application roles; PUBLIC additionally loses UPDATE/DELETE/
-- TRUNCATE, and the retention role is the table owner. Dropping an expired partition is a DDL
-- step of the owner and fires no row trigger.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION opsdash.audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('opsdash.retention_bypass', true), '') = 'on' THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    RAISE EXCEPTION 'opsdash.audit_event is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON opsdash.audit_event
    FOR EACH ROW EXECUTE FUNCTION opsdash.audit_append_only();

CREATE FUNCTION opsdash.audit_no_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('opsdash.retention_bypass', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'opsdash.audit_event is append-only: TRUNCATE refused'
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON opsdash.audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION opsdash.audit_no_truncate();

REVOKE UPDATE, DELETE, TRUNCATE ON opsdash.audit_event FROM PUBLIC;

-- ensure_partition moves rows out of the default partition with DELETE ... RETURNING; for
-- audit_event that DELETE must pass the append-only trigger. Same function as in 0001 plus the
-- bypass, restored to its previous value before returning. Keep the two in step.
CREATE OR REPLACE FUNCTION opsdash.ensure_partition(parent text, day date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    part   text := parent || '_p' || to_char(day, 'YYYYMMDD');
    lo     timestamptz := day::timestamp AT TIME ZONE 'UTC';
    hi     timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
    keycol text;
    moved  bigint;
    bypass text := coalesce(current_setting('opsdash.retention_bypass', true), '');
BEGIN
    IF to_regclass('opsdash.' || part) IS NOT NULL THEN
        RETURN part;
    END IF;
    -- Per-table relation lock, as in 0001 (it also refreshes our view of the catalog).
    EXECUTE format('LOCK TABLE opsdash.%I IN SHARE UPDATE EXCLUSIVE MODE', parent || '_default');
    IF to_regclass('opsdash.' || part) IS NOT NULL THEN
        RETURN part;
    END IF;
    SELECT a.attname INTO keycol
      FROM pg_partitioned_table p
      JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
     WHERE p.partrelid = ('opsdash.' || parent)::regclass;
    EXECUTE format('CREATE TABLE opsdash.%I (LIKE opsdash.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                   part, parent);
    PERFORM set_config('opsdash.retention_bypass', 'on', true);
    EXECUTE format('WITH m AS (DELETE FROM opsdash.%I WHERE %I >= $1 AND %I < $2 RETURNING *) '
                   'INSERT INTO opsdash.%I SELECT * FROM m', parent || '_default', keycol, keycol, part)
        USING lo, hi;
    GET DIAGNOSTICS moved = ROW_COUNT;
    PERFORM set_config('opsdash.retention_bypass', bypass, true);
    EXECUTE format('ALTER TABLE opsdash.%I ATTACH PARTITION opsdash.%I FOR VALUES FROM (%L) TO (%L)',
                   parent, part, lo, hi);
    IF moved > 0 THEN
        INSERT INTO opsdash.retention_run (finished_at, table_name, partition, action, range_start, range_end, rows, status)
        VALUES (now(), parent, part, 'move_default', lo, hi, moved, 'ok');
    END IF;
    RETURN part;
END
$$;

-- "Who deleted resource X": the lookup is by resource id (the type is often not known to the
-- operator), newest first; a partial index keeps it small.
CREATE INDEX audit_event_deleted_resource ON opsdash.audit_event (resource_id, ts DESC)
    WHERE action = 'delete';

-- ---------------------------------------------------------------------------------------------
-- Row-level audit trigger for application tables (`opsdash audit install TABLE`).
-- before/after are the row as JSON, `changes` the names of the columns an UPDATE changed, the
-- actor is the session setting `opsdash.actor` (SET opsdash.actor = 'alice' in the application's
-- transaction) or else the database user, ts the transaction time. The trigger arguments are
-- the table's primary-key columns, joined with ',' into resource_id.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION opsdash.audit_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, opsdash AS $$
DECLARE
    b   jsonb;
    a   jsonb;
    ch  jsonb;
    row jsonb;
    rid text;
    i   integer;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN b := to_jsonb(OLD); END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN a := to_jsonb(NEW); END IF;
    IF TG_OP = 'UPDATE' THEN
        SELECT coalesce(jsonb_agg(k ORDER BY k), '[]'::jsonb) INTO ch
          FROM jsonb_object_keys(a) AS k
         WHERE a -> k IS DISTINCT FROM b -> k;
    END IF;
    row := coalesce(a, b);
    IF TG_NARGS > 0 THEN
        rid := row ->> TG_ARGV[0];
        FOR i IN 1 .. TG_NARGS - 1 LOOP
            rid := rid || ',' || coalesce(row ->> TG_ARGV[i], '');
        END LOOP;
    END IF;
    INSERT INTO opsdash.audit_event (ts, actor, actor_role, action, resource_type, resource_id,
                                     before, after, changes, ip, source)
    VALUES (transaction_timestamp(),
            coalesce(nullif(current_setting('opsdash.actor', true), ''), session_user::text),
            session_user::text, lower(TG_OP), TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, rid,
            b, a, ch, host(inet_client_addr()), 'trigger');
    RETURN NULL;
END
$$;

-- Installs (or re-installs) the audit trigger on `tbl`; returns its primary-key columns.
CREATE FUNCTION opsdash.audit_install(tbl regclass) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    pk   text[];
    args text;
BEGIN
    IF (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.oid = tbl) = 'opsdash' THEN
        RAISE EXCEPTION 'refusing to audit % : opsdash''s own tables are not application tables', tbl;
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = tbl) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', tbl;
    END IF;
    SELECT coalesce(array_agg(a.attname::text ORDER BY k.ord), '{}') INTO pk
      FROM pg_index x
      CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
     WHERE x.indrelid = tbl AND x.indisprimary;
    SELECT string_agg(quote_literal(c), ', ') INTO args FROM unnest(pk) AS c;
    EXECUTE format('CREATE OR REPLACE TRIGGER opsdash_audit AFTER INSERT OR UPDATE OR DELETE ON %s '
                   'FOR EACH ROW EXECUTE FUNCTION opsdash.audit_row(%s)', tbl, coalesce(args, ''));
    RETURN pk;
END
$$;

-- Removes the audit trigger; returns whether one was installed.
CREATE FUNCTION opsdash.audit_uninstall(tbl regclass) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    had boolean;
BEGIN
    SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = tbl AND tgname = 'opsdash_audit') INTO had;
    EXECUTE format('DROP TRIGGER IF EXISTS opsdash_audit ON %s', tbl);
    RETURN had;
END
$$;

-- Tables carrying the audit trigger, for `opsdash audit list`.
CREATE VIEW opsdash.audited_tables AS
SELECT t.tgrelid::regclass::text AS table_name
  FROM pg_trigger t
 WHERE t.tgname = 'opsdash_audit' AND NOT t.tgisinternal;

-- Cuts an IP address for anonymization: IPv4 to its /24, IPv6 to its /48 network address.
-- Text that is not an address is removed. Cutting a cut address changes nothing (idempotent).
CREATE FUNCTION opsdash.cut_ip(ip text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    a inet;
BEGIN
    IF ip IS NULL OR ip = '' THEN
        RETURN ip;
    END IF;
    IF ip !~ '^[0-9A-Fa-f:.]+(/[0-9]+)?$' THEN
        RETURN NULL;
    END IF;
    BEGIN
        a := ip::inet;
    EXCEPTION WHEN others THEN
        RETURN NULL;
    END;
    RETURN host(network(set_masklen(a, CASE WHEN family(a) = 4 THEN 24 ELSE 48 END)));
END
$$;
