-- Least-privilege roles, so a shared PostgreSQL can let many people look and few people touch:
--   opsdash_reader    every panel, view and function, and export (SELECT on the schema)
--   opsdash_operator  reader + acknowledge / resolve / silence, error-group triage, rule changes,
--                     each with its audit_event row
--   opsdash_ingest    writes log lines, requests and queries (COPY), error-group counts, ingest
--                     statistics and checkpoints, and NOTIFY; it cannot read the log rows back
--   opsdash_worker    reader + what the background jobs write (alerts, outbox, rollups, leases,
--                     health checks, retention bookkeeping)
-- They are NOLOGIN groups: `opsdash db grant ROLE USER` makes a login role a member.
--
-- Roles belong to the cluster, not the database, so each is created only when missing, and only
-- when the migrating role may create roles (a managed database's owner often may). When it may
-- not, the grants are skipped with a notice; once an administrator has created the roles,
-- `opsdash db grant` applies them (opsdash.apply_role_grants below).
DO $$
DECLARE
    r text;
    may_create boolean;
BEGIN
    SELECT rolsuper OR rolcreaterole INTO may_create FROM pg_roles WHERE rolname = current_user;
    FOREACH r IN ARRAY ARRAY['opsdash_reader', 'opsdash_operator', 'opsdash_ingest', 'opsdash_worker'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            IF may_create THEN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            ELSE
                RAISE NOTICE 'role % is missing and % may not create roles: grants skipped', r, current_user;
            END IF;
        END IF;
    END LOOP;
END
$$;

-- Partitions are created on demand by whoever writes a row for a new day. Creating and
-- attaching a partition takes ownership of the parent, so ensure_partition runs with its
-- owner's rights; it only ever creates opsdash's own daily partitions.
ALTER FUNCTION opsdash.ensure_partition(text, date) SECURITY DEFINER SET search_path = pg_catalog, opsdash;
ALTER FUNCTION opsdash.ensure_partitions(date, date) SECURITY DEFINER SET search_path = pg_catalog, opsdash;
REVOKE EXECUTE ON FUNCTION opsdash.ensure_partition(text, date) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION opsdash.ensure_partitions(date, date) FROM PUBLIC;

-- Repeats of a line stored by an earlier batch add to that row's repeat_count. The UPDATE has to
-- find the row by all its columns, which would take SELECT on log_event: the ingest role gets
-- this one function instead, which matches rows but returns only how many it updated.
CREATE FUNCTION opsdash.add_log_repeats(
    p_ts timestamptz[], p_tx text[], p_level smallint[], p_service text[], p_host text[],
    p_message text[], p_trace_id text[], p_span_id text[], p_request_id text[], p_user_id text[],
    p_route text[], p_method text[], p_status smallint[], p_duration_ms float8[], p_ip text[],
    p_user_agent text[], p_error_type text[], p_attrs text[], p_fingerprint text[], p_add int[],
    p_last timestamptz[]) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, opsdash AS $$
    WITH done AS (
        UPDATE opsdash.log_event e
           SET repeat_count = e.repeat_count + f.add,
               last_seen = GREATEST(coalesce(e.last_seen, e.ts), f.last)
          FROM unnest(p_ts, p_tx, p_level, p_service, p_host, p_message, p_trace_id, p_span_id,
                      p_request_id, p_user_id, p_route, p_method, p_status, p_duration_ms, p_ip,
                      p_user_agent, p_error_type, p_attrs, p_fingerprint, p_add, p_last)
               AS f(ts, tx, level, service, host, message, trace_id, span_id, request_id,
                    user_id, route, method, status, duration_ms, ip, user_agent, error_type,
                    attrs, fingerprint, add, last)
         WHERE e.ts = f.ts AND e.tx = f.tx::xid8 AND e.level = f.level
           AND e.service = f.service AND e.message = f.message
           AND e.host IS NOT DISTINCT FROM f.host
           AND e.trace_id IS NOT DISTINCT FROM f.trace_id
           AND e.span_id IS NOT DISTINCT FROM f.span_id
           AND e.request_id IS NOT DISTINCT FROM f.request_id
           AND e.user_id IS NOT DISTINCT FROM f.user_id
           AND e.route IS NOT DISTINCT FROM f.route
           AND e.method IS NOT DISTINCT FROM f.method
           AND e.status IS NOT DISTINCT FROM f.status
           AND e.duration_ms IS NOT DISTINCT FROM f.duration_ms
           AND e.ip IS NOT DISTINCT FROM f.ip
           AND e.user_agent IS NOT DISTINCT FROM f.user_agent
           AND e.error_type IS NOT DISTINCT FROM f.error_type
           AND e.attrs IS NOT DISTINCT FROM f.attrs::jsonb
           AND e.fingerprint IS NOT DISTINCT FROM f.fingerprint
        RETURNING 1)
    SELECT count(*) FROM done
$$;
REVOKE EXECUTE ON FUNCTION opsdash.add_log_repeats FROM PUBLIC;

-- The grants themselves, kept in one function so `opsdash db grant` can re-apply them (after an
-- administrator created the roles, or after a later migration added tables).
-- No SET search_path: sqlx's _sqlx_migrations lives in the migrating session's schema
-- (usually public), found through the caller's path; everything else is qualified.
CREATE FUNCTION opsdash.apply_role_grants() RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    versions regclass := to_regclass('_sqlx_migrations');
BEGIN
    IF (SELECT count(*) FROM pg_roles WHERE rolname IN
            ('opsdash_reader', 'opsdash_operator', 'opsdash_ingest', 'opsdash_worker')) < 4 THEN
        RETURN false;
    END IF;
    GRANT USAGE ON SCHEMA opsdash TO opsdash_reader, opsdash_operator, opsdash_ingest, opsdash_worker;
    -- Every role checks the schema version at start (see db::access).
    IF versions IS NOT NULL THEN
        EXECUTE format('GRANT SELECT ON %s TO opsdash_reader, opsdash_operator, opsdash_ingest, opsdash_worker',
                       versions);
    END IF;

    -- Reader: everything, read-only. Partitions are read through their parent (privileges are
    -- checked on the parent only); the default privileges cover tables and views added later.
    GRANT SELECT ON ALL TABLES IN SCHEMA opsdash TO opsdash_reader;
    GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA opsdash TO opsdash_reader;
    REVOKE EXECUTE ON FUNCTION opsdash.ensure_partition(text, date), opsdash.ensure_partitions(date, date),
        opsdash.add_log_repeats, opsdash.apply_role_grants() FROM opsdash_reader;
    ALTER DEFAULT PRIVILEGES IN SCHEMA opsdash GRANT SELECT ON TABLES TO opsdash_reader;

    -- Operator: reader plus exactly what the operator actions write (alerts::operator,
    -- query::error_groups::transition), each action with its audit row.
    GRANT opsdash_reader TO opsdash_operator;
    GRANT UPDATE (state, acknowledged_at, acknowledged_by, ack_note, resolved_at, resolved_by,
                  resolve_note, updated_at)
        ON opsdash.alert TO opsdash_operator;
    GRANT INSERT ON opsdash.alert_history, opsdash.silence, opsdash.notification,
        opsdash.audit_event TO opsdash_operator;
    GRANT UPDATE (expired_at, expired_by, ends_at) ON opsdash.silence TO opsdash_operator;
    -- Rule changes: status from the Alerts tab and the CLI, CLI-managed rules, and "evaluate
    -- now" (next_eval_at) after a silence.
    GRANT INSERT, UPDATE ON opsdash.alert_rule TO opsdash_operator;
    -- A resolve re-queues a pending "firing" message as "resolved" (alerts::engine::enqueue).
    GRANT UPDATE ON opsdash.notification TO opsdash_operator;
    GRANT UPDATE (status, note, assignee, resolved_at, regressed, updated_at)
        ON opsdash.error_group TO opsdash_operator;
    GRANT USAGE ON ALL SEQUENCES IN SCHEMA opsdash TO opsdash_operator;

    -- Ingest: rows in, never out. COPY into a partitioned parent checks INSERT on the parent
    -- only, so partitions created later need nothing more.
    GRANT INSERT ON opsdash.log_event, opsdash.request_log, opsdash.query_log, opsdash.audit_event,
        opsdash.ingest_stat TO opsdash_ingest;
    -- Error groups and checkpoints are upserted (ON CONFLICT ... DO UPDATE reads the old row).
    GRANT SELECT, INSERT, UPDATE ON opsdash.error_group, opsdash.error_group_user,
        opsdash.ingest_checkpoint, opsdash.retention_hold TO opsdash_ingest;
    GRANT USAGE ON ALL SEQUENCES IN SCHEMA opsdash TO opsdash_ingest;
    GRANT EXECUTE ON FUNCTION opsdash.ensure_partition(text, date), opsdash.ensure_partitions(date, date),
        opsdash.add_log_repeats TO opsdash_ingest;

    -- Worker: reader plus the tables its jobs keep (alerts, outbox, rollups, leases, health,
    -- retention bookkeeping). Dropping and detaching old partitions is DDL, which PostgreSQL
    -- allows only the tables' owner: retention's drop phase runs where the owner connects.
    GRANT opsdash_reader TO opsdash_worker;
    GRANT INSERT, UPDATE, DELETE ON opsdash.alert, opsdash.alert_history, opsdash.alert_sample,
        opsdash.alert_rule, opsdash.notification, opsdash.notification_attempt,
        opsdash.worker_lease, opsdash.worker_instance, opsdash.service, opsdash.health_check,
        opsdash.rollup_1m, opsdash.rollup_5m, opsdash.rollup_30m, opsdash.rollup_1h,
        opsdash.rollup_1d, opsdash.rollup_query_1m, opsdash.rollup_kpi_1m,
        opsdash.rollup_users_1h, opsdash.rollup_state, opsdash.retention_run,
        opsdash.partition_mark, opsdash.retention_hold TO opsdash_worker;
    -- Audit rows of its own actions; query_log rows of the pg_stat_statements sampler.
    GRANT INSERT ON opsdash.audit_event, opsdash.query_log TO opsdash_worker;
    GRANT USAGE ON ALL SEQUENCES IN SCHEMA opsdash TO opsdash_worker;
    GRANT EXECUTE ON FUNCTION opsdash.ensure_partition(text, date), opsdash.ensure_partitions(date, date)
        TO opsdash_worker;
    ALTER DEFAULT PRIVILEGES IN SCHEMA opsdash GRANT USAGE ON SEQUENCES
        TO opsdash_operator, opsdash_ingest, opsdash_worker;
    RETURN true;
END
$$;
REVOKE EXECUTE ON FUNCTION opsdash.apply_role_grants() FROM PUBLIC;
SELECT opsdash.apply_role_grants();
