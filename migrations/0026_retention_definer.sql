-- Retention for a worker that does not own the schema (a login role granted opsdash_worker).
-- Detaching, renaming and dropping a partition, and rewriting a log day with its error rows
-- only, is DDL, which PostgreSQL allows only the table's owner; anonymizing updates rows the
-- worker may not update (and audit rows nobody may). These functions run with the owner's
-- rights and do exactly retention's steps (worker::retention), each on one daily partition of
-- one of opsdash's own partitioned tables, named as opsdash.ensure_partition names them;
-- anything else is refused. EXECUTE goes to opsdash_worker only (not to readers, operators or
-- PUBLIC). The owner's retention calls them too (one implementation), except for the detach.
--
-- The owner itself keeps detaching with `DETACH ... CONCURRENTLY` from the retention code: that
-- form cannot run inside a function (a function always runs in a transaction block), so a
-- non-owner gets the plain DETACH under the caller's short lock_timeout instead.
--
-- The search path of each function ends in pg_temp: otherwise a caller's temporary table named
-- like a catalog (pg_class) would be found first, with the owner's rights.

-- The parent of `part` when it is `PARENT_pYYYYMMDD` for a partitioned table PARENT of the
-- opsdash schema and a real calendar day; an error otherwise.
CREATE FUNCTION opsdash.retention_partition_parent(part text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, opsdash, pg_temp AS $$
DECLARE
    m      text[] := regexp_match(part, '^([a-z0-9_]+)_p([0-9]{8})$');
    day_ok boolean := false;
    parent text;
BEGIN
    IF m IS NOT NULL THEN
        BEGIN
            day_ok := to_char(to_date(m[2], 'YYYYMMDD'), 'YYYYMMDD') = m[2];
        EXCEPTION WHEN data_exception THEN
            day_ok := false;
        END;
    END IF;
    IF NOT day_ok THEN
        RAISE EXCEPTION 'not an opsdash daily partition name: %', part
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT c.relname INTO parent
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'opsdash' AND c.relname = m[1] AND c.relkind = 'p';
    IF parent IS NULL THEN
        RAISE EXCEPTION 'opsdash.% is not a partitioned opsdash table', m[1]
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN parent;
END
$$;

-- Detaches one attached daily partition from its parent (plain DETACH, or FINALIZE of a
-- concurrent detach that was interrupted).
CREATE FUNCTION opsdash.retention_detach(part text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, opsdash, pg_temp AS $$
DECLARE
    parent  text := opsdash.retention_partition_parent(part);
    pending boolean;
BEGIN
    SELECT i.inhdetachpending INTO pending
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'opsdash'
      JOIN pg_inherits i ON i.inhrelid = c.oid
     WHERE c.relname = part AND c.relkind = 'r'
       AND i.inhparent = format('opsdash.%I', parent)::regclass;
    IF pending IS NULL THEN
        RAISE EXCEPTION 'opsdash.% is not a partition of opsdash.%', part, parent
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format('ALTER TABLE opsdash.%I DETACH PARTITION opsdash.%I%s', parent, part,
                   CASE WHEN pending THEN ' FINALIZE' ELSE '' END);
END
$$;

-- The OID of `rel`, a table of the opsdash schema that was a daily partition of `parent` and
-- is detached now: owned like its parent, not attached, with no children; an error otherwise.
CREATE FUNCTION opsdash.retention_detached_oid(rel text, parent text) RETURNS oid
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, opsdash, pg_temp AS $$
DECLARE
    rel_oid oid;
BEGIN
    SELECT c.oid INTO rel_oid
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'opsdash'
     WHERE c.relname = rel AND c.relkind = 'r' AND NOT c.relispartition
       AND c.relowner = (SELECT p.relowner FROM pg_class p
                          WHERE p.oid = format('opsdash.%I', parent)::regclass)
       AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid OR i.inhrelid = c.oid);
    IF rel_oid IS NULL THEN
        RAISE EXCEPTION 'opsdash.% is not a detached partition of opsdash.%', rel, parent
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN rel_oid;
END
$$;

-- Renames a detached daily partition to its pending-drop name, PARTITION_dropOID (see
-- query::retention::pending_drop_name), and returns that name.
CREATE FUNCTION opsdash.retention_hand_off(part text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, opsdash, pg_temp AS $$
DECLARE
    pending text := part || '_drop'
                    || opsdash.retention_detached_oid(part, opsdash.retention_partition_parent(part));
BEGIN
    EXECUTE format('ALTER TABLE opsdash.%I RENAME TO %I', part, pending);
    RETURN pending;
END
$$;

-- Drops a table handed off by retention_hand_off: the name must be PARTITION_dropOID with the
-- table's own OID, so nothing but a table retention renamed can be dropped. Gone already: done.
CREATE FUNCTION opsdash.retention_drop(pending text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, opsdash, pg_temp AS $$
DECLARE
    m      text[] := regexp_match(pending, '^(.+)_drop([0-9]{1,10})$');
    parent text;
    rel    oid;
BEGIN
    IF m IS NULL THEN
        RAISE EXCEPTION 'opsdash.% is not a table pending its drop', pending
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    parent := opsdash.retention_partition_parent(m[1]);
    IF to_regclass(format('opsdash.%I', pending)) IS NULL THEN
        RETURN;
    END IF;
    rel := opsdash.retention_detached_oid(pending, parent);
    IF rel::text <> m[2] THEN
        RAISE EXCEPTION 'opsdash.% was not named by retention (its OID is %)', pending, rel
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format('DROP TABLE opsdash.%I', pending);
END
$$;

-- An attached (not detach-pending) daily partition of `parent`; an error otherwise.
CREATE FUNCTION opsdash.retention_check_attached(part text, parent text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, opsdash, pg_temp AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'opsdash'
          JOIN pg_inherits i ON i.inhrelid = c.oid
         WHERE c.relname = part AND c.relkind = 'r' AND NOT i.inhdetachpending
           AND i.inhparent = format('opsdash.%I', parent)::regclass) THEN
        RAISE EXCEPTION 'opsdash.% is not an attached partition of opsdash.%', part, parent
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- Rewrites one log_event day with its rows of level >= min_level only, as one step of the
-- caller's transaction (query::retention::compact_log_partition): the rows are copied to a new
-- table while the old day is locked against writes (only that day), then the parent is locked
-- briefly (under the caller's lock_timeout) to swap the tables. Returns {kept, removed}.
CREATE FUNCTION opsdash.retention_compact_log(part text, min_level smallint) RETURNS bigint[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, opsdash, pg_temp AS $$
DECLARE
    parent text := opsdash.retention_partition_parent(part);
    lo     timestamptz := to_date(right(part, 8), 'YYYYMMDD')::timestamp AT TIME ZONE 'UTC';
    hi     timestamptz := lo + interval '1 day';
    kept_t text := part || '_k';
    n_all  bigint;
    n_kept bigint;
BEGIN
    IF parent <> 'log_event' THEN
        RAISE EXCEPTION 'opsdash.% is not a log_event partition', part
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM opsdash.retention_check_attached(part, parent);
    EXECUTE format('LOCK TABLE opsdash.%I IN SHARE MODE', part);
    EXECUTE format('SELECT count(*) FROM opsdash.%I', part) INTO n_all;
    -- Indexes exist before the swap (ATTACH adopts them instead of building them under the
    -- parent's lock), and the bounds as a CHECK let ATTACH skip its validation scan.
    EXECUTE format('CREATE TABLE opsdash.%I (LIKE opsdash.log_event INCLUDING DEFAULTS '
                   'INCLUDING CONSTRAINTS INCLUDING INDEXES)', kept_t);
    EXECUTE format('INSERT INTO opsdash.%I SELECT * FROM opsdash.%I WHERE level >= $1', kept_t, part)
        USING min_level;
    GET DIAGNOSTICS n_kept = ROW_COUNT;
    EXECUTE format('ALTER TABLE opsdash.%I ADD CONSTRAINT %I CHECK (ts >= %L AND ts < %L)',
                   kept_t, kept_t || '_bounds', lo, hi);
    EXECUTE format('ALTER TABLE opsdash.log_event DETACH PARTITION opsdash.%I', part);
    EXECUTE format('DROP TABLE opsdash.%I', part);
    EXECUTE format('ALTER TABLE opsdash.%I RENAME TO %I', kept_t, part);
    EXECUTE format('ALTER TABLE opsdash.log_event ATTACH PARTITION opsdash.%I FOR VALUES FROM (%L) TO (%L)',
                   part, lo, hi);
    RETURN ARRAY[n_kept, n_all - n_kept];
END
$$;

-- The pseudonym of a user id or actor: 'anon:' and 16 hex digits of HMAC-SHA256 under the key
-- whose padded halves are opad/ipad (query::retention::pseudonym computes the same). NULL and
-- pseudonyms stay as they are. Plain SQL, so the planner inlines it into the UPDATEs below.
CREATE FUNCTION opsdash.retention_pseudonym(v text, opad bytea, ipad bytea) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN v IS NULL OR v LIKE 'anon:%' THEN v
                ELSE 'anon:' || pg_catalog.left(pg_catalog.encode(pg_catalog.sha256(
                         opad || pg_catalog.sha256(ipad || pg_catalog.convert_to(v, 'UTF8'))), 'hex'), 16)
           END
$$;

-- Anonymizes one attached daily partition of log_event, request_log or audit_event: user ids
-- (and application actors) to pseudonyms, addresses cut (or removed), the named keys dropped
-- from attrs / before / after. Rows written by opsdash itself and by the audit trigger name
-- staff and keep their actor. Passes audit_event's append-only trigger for this statement
-- only. Returns the rows updated.
CREATE FUNCTION opsdash.retention_anonymize(part text, opad bytea, ipad bytea, fields text[],
                                            remove_ip boolean) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, opsdash, pg_temp AS $$
DECLARE
    parent  text := opsdash.retention_partition_parent(part);
    ip_expr text := CASE WHEN remove_ip THEN 'NULL' ELSE 'opsdash.cut_ip(ip)' END;
    bypass  text := coalesce(current_setting('opsdash.retention_bypass', true), '');
    n       bigint;
BEGIN
    IF length(opad) <> 64 OR length(ipad) <> 64 THEN
        RAISE EXCEPTION 'the HMAC pads must be 64 bytes each' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM opsdash.retention_check_attached(part, parent);
    PERFORM set_config('opsdash.retention_bypass', 'on', true);
    IF parent = 'log_event' THEN
        EXECUTE format('UPDATE opsdash.%I SET user_id = opsdash.retention_pseudonym(user_id, $1, $2), '
                       'ip = %s, attrs = attrs - $3', part, ip_expr)
            USING opad, ipad, fields;
    ELSIF parent = 'request_log' THEN
        EXECUTE format('UPDATE opsdash.%I SET user_id = opsdash.retention_pseudonym(user_id, $1, $2), '
                       'ip = %s', part, ip_expr)
            USING opad, ipad;
    ELSIF parent = 'audit_event' THEN
        EXECUTE format('UPDATE opsdash.%I SET actor = CASE WHEN source = ''app'' '
                       'THEN opsdash.retention_pseudonym(actor, $1, $2) ELSE actor END, '
                       'ip = %s, before = before - $3, after = after - $3', part, ip_expr)
            USING opad, ipad, fields;
    ELSE
        RAISE EXCEPTION 'opsdash.% holds no personal data to anonymize', parent
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM set_config('opsdash.retention_bypass', bypass, true);
    RETURN n;
END
$$;

REVOKE EXECUTE ON FUNCTION opsdash.retention_detach(text), opsdash.retention_hand_off(text),
    opsdash.retention_drop(text), opsdash.retention_compact_log(text, smallint),
    opsdash.retention_anonymize(text, bytea, bytea, text[], boolean) FROM PUBLIC;

COMMENT ON FUNCTION opsdash.retention_detach(text) IS
  'Retention: detaches one daily partition of an opsdash table (owner''s rights, for opsdash_worker).';
COMMENT ON FUNCTION opsdash.retention_hand_off(text) IS
  'Retention: renames a detached daily partition to PARTITION_dropOID and returns that name.';
COMMENT ON FUNCTION opsdash.retention_drop(text) IS
  'Retention: drops a table renamed by retention_hand_off.';
COMMENT ON FUNCTION opsdash.retention_compact_log(text, smallint) IS
  'Retention: rewrites one log_event day with its error rows only; returns {kept, removed}.';
COMMENT ON FUNCTION opsdash.retention_anonymize(text, bytea, bytea, text[], boolean) IS
  'Retention: pseudonymizes one day of log_event, request_log or audit_event; returns the rows updated.';

-- apply_role_grants (0021) grants EXECUTE on every function of the schema to opsdash_reader,
-- and `opsdash db grant` re-runs it. Rather than repeat its whole body here, the function of
-- earlier migrations keeps working under another name and the new apply_role_grants runs it,
-- then takes the retention functions back from readers and gives them to the worker.
ALTER FUNCTION opsdash.apply_role_grants() RENAME TO apply_role_grants_before_0026;

CREATE FUNCTION opsdash.apply_role_grants() RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT opsdash.apply_role_grants_before_0026() THEN
        RETURN false;
    END IF;
    REVOKE EXECUTE ON FUNCTION opsdash.retention_detach(text), opsdash.retention_hand_off(text),
        opsdash.retention_drop(text), opsdash.retention_compact_log(text, smallint),
        opsdash.retention_anonymize(text, bytea, bytea, text[], boolean),
        opsdash.apply_role_grants_before_0026() FROM opsdash_reader;
    GRANT EXECUTE ON FUNCTION opsdash.retention_detach(text), opsdash.retention_hand_off(text),
        opsdash.retention_drop(text), opsdash.retention_compact_log(text, smallint),
        opsdash.retention_anonymize(text, bytea, bytea, text[], boolean) TO opsdash_worker;
    -- Retention's trim of unpartitioned tables deletes expired silences and ingest statistics.
    GRANT DELETE ON opsdash.silence, opsdash.ingest_stat TO opsdash_worker;
    RETURN true;
END
$$;
REVOKE EXECUTE ON FUNCTION opsdash.apply_role_grants(), opsdash.apply_role_grants_before_0026()
    FROM PUBLIC;
COMMENT ON FUNCTION opsdash.apply_role_grants() IS
  'Grants the opsdash_reader/_operator/_ingest/_worker roles their privileges on the schema; opsdash db grant calls it.';
SELECT opsdash.apply_role_grants();
