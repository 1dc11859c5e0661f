-- opsdash base schema. Every object lives in schema `opsdash` so the dashboard can share a
-- database with an application without colliding with its tables.
CREATE SCHEMA IF NOT EXISTS opsdash;

-- Levels are stored as small integers so `level:warn+` is a plain range predicate on an index;
-- opsdash.level_name() gives psql/Grafana users the readable form.
CREATE FUNCTION opsdash.level_name(l smallint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE l WHEN 0 THEN 'trace' WHEN 1 THEN 'debug' WHEN 2 THEN 'info' WHEN 3 THEN 'warn'
                WHEN 4 THEN 'error' WHEN 5 THEN 'fatal' ELSE 'unknown' END
$$;

-- ---------------------------------------------------------------------------------------------
-- Time-series tables: range-partitioned by day on `ts`, each with a DEFAULT partition so that a
-- row with any timestamp (year 1, year 9999) is accepted instead of failing the whole COPY.
-- ---------------------------------------------------------------------------------------------

CREATE TABLE opsdash.log_event (
    id           bigserial,
    ts           timestamptz NOT NULL,
    level        smallint    NOT NULL DEFAULT 2,
    service      text        NOT NULL DEFAULT '',
    host         text,
    message      text        NOT NULL DEFAULT '',
    trace_id     text,
    span_id      text,
    request_id   text,
    user_id      text,
    route        text,
    method       text,
    status       smallint,
    duration_ms  double precision,
    ip           text,
    user_agent   text,
    error_type   text,
    attrs        jsonb,
    fingerprint  text,
    repeat_count integer     NOT NULL DEFAULT 1,
    -- Writing transaction: the live tail reads up to the snapshot xmin so rows from transactions
    -- that commit out of id order are never skipped.
    tx           xid8        NOT NULL DEFAULT pg_current_xact_id()
) PARTITION BY RANGE (ts);
CREATE TABLE opsdash.log_event_default PARTITION OF opsdash.log_event DEFAULT;
CREATE INDEX ON opsdash.log_event (ts);
CREATE INDEX ON opsdash.log_event (tx, id);
CREATE INDEX ON opsdash.log_event (level, ts);
CREATE INDEX ON opsdash.log_event (service, ts);
CREATE INDEX ON opsdash.log_event (trace_id) WHERE trace_id IS NOT NULL;
CREATE INDEX ON opsdash.log_event (user_id, ts) WHERE user_id IS NOT NULL;
CREATE INDEX ON opsdash.log_event (fingerprint, ts) WHERE fingerprint IS NOT NULL;
CREATE INDEX ON opsdash.log_event USING gin (to_tsvector('simple', message)) WITH (fastupdate = on);

CREATE TABLE opsdash.request_log (
    id          bigserial,
    ts          timestamptz NOT NULL,
    service     text        NOT NULL DEFAULT '',
    method      text        NOT NULL DEFAULT 'GET',
    route       text        NOT NULL DEFAULT '',
    status      smallint    NOT NULL DEFAULT 0,
    duration_ms double precision NOT NULL DEFAULT 0,
    bytes       bigint,
    user_id     text,
    trace_id    text,
    request_id  text,
    ip          text,
    user_agent  text,
    error_code  text,
    -- inbound: a request served by `service`; outbound: a call from `service` to an integration
    direction   text        NOT NULL DEFAULT 'inbound' CHECK (direction IN ('inbound', 'outbound')),
    integration text
) PARTITION BY RANGE (ts);
CREATE TABLE opsdash.request_log_default PARTITION OF opsdash.request_log DEFAULT;
CREATE INDEX ON opsdash.request_log (ts);
CREATE INDEX ON opsdash.request_log (service, route, ts);
CREATE INDEX ON opsdash.request_log (trace_id) WHERE trace_id IS NOT NULL;
CREATE INDEX ON opsdash.request_log (status, ts) WHERE status >= 400;
CREATE INDEX ON opsdash.request_log (duration_ms, ts) WHERE duration_ms >= 1000;
CREATE INDEX ON opsdash.request_log (user_id, ts) WHERE user_id IS NOT NULL;

CREATE TABLE opsdash.query_log (
    id          bigserial,
    ts          timestamptz NOT NULL,
    service     text        NOT NULL DEFAULT '',
    database    text,
    query       text        NOT NULL,
    fingerprint text        NOT NULL,
    duration_ms double precision NOT NULL DEFAULT 0,
    rows        bigint,
    trace_id    text
) PARTITION BY RANGE (ts);
CREATE TABLE opsdash.query_log_default PARTITION OF opsdash.query_log DEFAULT;
CREATE INDEX ON opsdash.query_log (ts);
CREATE INDEX ON opsdash.query_log (fingerprint, ts);
CREATE INDEX ON opsdash.query_log (duration_ms, ts) WHERE duration_ms >= 500;
CREATE INDEX ON opsdash.query_log (trace_id) WHERE trace_id IS NOT NULL;

CREATE TABLE opsdash.audit_event (
    id            bigserial,
    ts            timestamptz NOT NULL DEFAULT now(),
    actor         text        NOT NULL DEFAULT '',
    actor_role    text,
    action        text        NOT NULL,
    resource_type text,
    resource_id   text,
    before        jsonb,
    after         jsonb,
    changes       jsonb,
    outcome       text        NOT NULL DEFAULT 'success',
    ip            text,
    session_id    text,
    request_id    text,
    trace_id      text,
    host          text,
    -- app: ingested from an application; trigger: row-level audit trigger; opsdash: operator action
    source        text        NOT NULL DEFAULT 'app',
    tx            xid8        NOT NULL DEFAULT pg_current_xact_id()
) PARTITION BY RANGE (ts);
CREATE TABLE opsdash.audit_event_default PARTITION OF opsdash.audit_event DEFAULT;
CREATE INDEX ON opsdash.audit_event (ts);
CREATE INDEX ON opsdash.audit_event (actor, ts);
CREATE INDEX ON opsdash.audit_event (resource_type, resource_id, ts);
CREATE INDEX ON opsdash.audit_event (action, ts);
CREATE INDEX ON opsdash.audit_event (trace_id) WHERE trace_id IS NOT NULL;

CREATE TABLE opsdash.health_check (
    id          bigserial,
    ts          timestamptz NOT NULL DEFAULT now(),
    service     text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('healthy', 'degraded', 'down', 'unknown')),
    response_ms double precision,
    detail      text
) PARTITION BY RANGE (ts);
CREATE TABLE opsdash.health_check_default PARTITION OF opsdash.health_check DEFAULT;
CREATE INDEX ON opsdash.health_check (service, ts);

-- Per-minute rollups per service+route with a fixed log-scale latency histogram (bucket counts),
-- so percentiles over any window merge histograms instead of sorting raw rows.
CREATE TABLE opsdash.rollup_1m (
    bucket      timestamptz NOT NULL,
    service     text        NOT NULL,
    route       text        NOT NULL,
    direction   text        NOT NULL DEFAULT 'inbound',
    requests    bigint      NOT NULL DEFAULT 0,
    err_4xx     bigint      NOT NULL DEFAULT 0,
    err_5xx     bigint      NOT NULL DEFAULT 0,
    bytes       bigint      NOT NULL DEFAULT 0,
    dur_sum     double precision NOT NULL DEFAULT 0,
    dur_max     double precision NOT NULL DEFAULT 0,
    hist        integer[]   NOT NULL DEFAULT '{}',
    PRIMARY KEY (bucket, service, route, direction)
) PARTITION BY RANGE (bucket);
CREATE TABLE opsdash.rollup_1m_default PARTITION OF opsdash.rollup_1m DEFAULT;

CREATE TABLE opsdash.rollup_5m (LIKE opsdash.rollup_1m INCLUDING DEFAULTS, PRIMARY KEY (bucket, service, route, direction));
CREATE TABLE opsdash.rollup_1h (LIKE opsdash.rollup_1m INCLUDING DEFAULTS, PRIMARY KEY (bucket, service, route, direction));
CREATE TABLE opsdash.rollup_1d (LIKE opsdash.rollup_1m INCLUDING DEFAULTS, PRIMARY KEY (bucket, service, route, direction));

CREATE TABLE opsdash.rollup_query_1m (
    bucket      timestamptz NOT NULL,
    service     text        NOT NULL,
    fingerprint text        NOT NULL,
    sample      text        NOT NULL,
    calls       bigint      NOT NULL DEFAULT 0,
    dur_sum     double precision NOT NULL DEFAULT 0,
    dur_max     double precision NOT NULL DEFAULT 0,
    rows_sum    bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, service, fingerprint)
);

-- ---------------------------------------------------------------------------------------------
-- Error grouping
-- ---------------------------------------------------------------------------------------------
CREATE TABLE opsdash.error_group (
    fingerprint    text PRIMARY KEY,
    service        text        NOT NULL DEFAULT '',
    error_type     text,
    sample_message text        NOT NULL DEFAULT '',
    first_seen     timestamptz NOT NULL,
    last_seen      timestamptz NOT NULL,
    count          bigint      NOT NULL DEFAULT 0,
    affected_users bigint      NOT NULL DEFAULT 0,
    status         text        NOT NULL DEFAULT 'new'
                   CHECK (status IN ('new', 'acknowledged', 'in-progress', 'resolved', 'ignored')),
    regressed      boolean     NOT NULL DEFAULT false,
    assignee       text,
    note           text,
    resolved_at    timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON opsdash.error_group (last_seen);
CREATE INDEX ON opsdash.error_group (status, last_seen);
-- Distinct users per group, so affected_users is exact without scanning log_event.
CREATE TABLE opsdash.error_group_user (
    fingerprint text NOT NULL REFERENCES opsdash.error_group (fingerprint) ON DELETE CASCADE,
    user_id     text NOT NULL,
    PRIMARY KEY (fingerprint, user_id)
);

-- ---------------------------------------------------------------------------------------------
-- Services and checks
-- ---------------------------------------------------------------------------------------------
CREATE TABLE opsdash.service (
    name            text PRIMARY KEY,
    kind            text        NOT NULL DEFAULT 'http' CHECK (kind IN ('http', 'tcp', 'postgres', 'passive')),
    target          text        NOT NULL DEFAULT '',
    expected_status integer,
    interval_s      integer     NOT NULL DEFAULT 30,
    timeout_ms      integer     NOT NULL DEFAULT 5000,
    retries         integer     NOT NULL DEFAULT 1,
    status          text        NOT NULL DEFAULT 'unknown'
                    CHECK (status IN ('healthy', 'degraded', 'down', 'unknown')),
    last_check      timestamptz,
    last_response_ms double precision,
    last_detail     text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------------------------------------
-- Alerting
-- ---------------------------------------------------------------------------------------------
CREATE TABLE opsdash.alert_rule (
    id                bigserial PRIMARY KEY,
    name              text        NOT NULL UNIQUE,
    description       text        NOT NULL DEFAULT '',
    severity          text        NOT NULL DEFAULT 'warning'
                      CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    status            text        NOT NULL DEFAULT 'enabled'
                      CHECK (status IN ('enabled', 'disabled', 'testing')),
    metric            text        NOT NULL,
    scope             jsonb       NOT NULL DEFAULT '{}',
    filter            text,
    query             text,
    operator          text        NOT NULL DEFAULT 'gt' CHECK (operator IN ('gt', 'gte', 'lt', 'lte', 'eq', 'ne')),
    threshold         double precision NOT NULL DEFAULT 0,
    window_s          integer     NOT NULL DEFAULT 300,
    for_s             integer     NOT NULL DEFAULT 0,
    eval_interval_s   integer     NOT NULL DEFAULT 30,
    labels            jsonb       NOT NULL DEFAULT '{}',
    group_by          text[]      NOT NULL DEFAULT '{}',
    channels          text[]      NOT NULL DEFAULT '{}',
    repeat_interval_s integer     NOT NULL DEFAULT 3600,
    max_per_hour      integer     NOT NULL DEFAULT 10,
    auto_resolve      boolean     NOT NULL DEFAULT true,
    resolve_after_s   integer     NOT NULL DEFAULT 300,
    runbook_url       text,
    source            text        NOT NULL DEFAULT 'config' CHECK (source IN ('config', 'cli')),
    next_eval_at      timestamptz NOT NULL DEFAULT now(),
    last_eval_at      timestamptz,
    last_value        double precision,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE opsdash.alert (
    id               bigserial PRIMARY KEY,
    rule_id          bigint      NOT NULL REFERENCES opsdash.alert_rule (id) ON DELETE CASCADE,
    rule_name        text        NOT NULL,
    severity         text        NOT NULL,
    labels           jsonb       NOT NULL DEFAULT '{}',
    -- canonical text of `labels` (sorted key=value), the identity of the alert within its rule
    label_key        text        NOT NULL DEFAULT '',
    state            text        NOT NULL
                     CHECK (state IN ('pending', 'firing', 'acknowledged', 'resolved', 'suppressed')),
    value            double precision,
    threshold        double precision,
    summary          text        NOT NULL DEFAULT '',
    pending_since    timestamptz NOT NULL DEFAULT now(),
    fired_at         timestamptz,
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    ack_note         text,
    resolved_at      timestamptz,
    resolved_by      text,
    resolve_note     text,
    condition_false_since timestamptz,
    last_eval_at     timestamptz,
    last_notified_at timestamptz,
    -- lease epoch of the worker that last wrote this row (fencing against a stale leader)
    epoch            bigint      NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- One open alert per (rule, label set), enforced by the database. ON CONFLICT must repeat the WHERE.
CREATE UNIQUE INDEX alert_open_uniq ON opsdash.alert (rule_id, label_key) WHERE state <> 'resolved';
CREATE INDEX ON opsdash.alert (state, severity);
CREATE INDEX ON opsdash.alert (resolved_at);

CREATE TABLE opsdash.alert_history (
    id         bigserial PRIMARY KEY,
    alert_id   bigint      NOT NULL REFERENCES opsdash.alert (id) ON DELETE CASCADE,
    ts         timestamptz NOT NULL DEFAULT now(),
    from_state text,
    to_state   text        NOT NULL,
    actor      text        NOT NULL DEFAULT 'worker',
    note       text,
    value      double precision
);
CREATE INDEX ON opsdash.alert_history (alert_id, ts);

CREATE TABLE opsdash.silence (
    id         bigserial PRIMARY KEY,
    matchers   jsonb       NOT NULL,
    starts_at  timestamptz NOT NULL DEFAULT now(),
    ends_at    timestamptz NOT NULL,
    created_by text        NOT NULL,
    comment    text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    expired_at timestamptz,
    expired_by text
);
CREATE INDEX ON opsdash.silence (ends_at);

-- Outbox: one row per message to send; workers claim rows with FOR UPDATE SKIP LOCKED.
CREATE TABLE opsdash.notification (
    id              bigserial PRIMARY KEY,
    alert_id        bigint REFERENCES opsdash.alert (id) ON DELETE SET NULL,
    channel         text        NOT NULL,
    kind            text        NOT NULL DEFAULT 'firing' CHECK (kind IN ('firing', 'resolved', 'repeat', 'test')),
    group_key       text,
    idempotency_key text        NOT NULL UNIQUE,
    payload         jsonb       NOT NULL DEFAULT '{}',
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'delivered', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    last_status     integer,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX ON opsdash.notification (status, next_attempt_at);
CREATE INDEX ON opsdash.notification (alert_id);

CREATE TABLE opsdash.notification_attempt (
    id              bigserial PRIMARY KEY,
    notification_id bigint      NOT NULL REFERENCES opsdash.notification (id) ON DELETE CASCADE,
    ts              timestamptz NOT NULL DEFAULT now(),
    http_status     integer,
    error           text,
    duration_ms     double precision
);
CREATE INDEX ON opsdash.notification_attempt (notification_id);

-- ---------------------------------------------------------------------------------------------
-- Worker coordination and housekeeping
-- ---------------------------------------------------------------------------------------------
-- A lease per job: the holder renews it; a takeover bumps `epoch`, and leader writes carry the
-- epoch so a stale leader's late writes can be refused (fencing).
CREATE TABLE opsdash.worker_lease (
    job          text PRIMARY KEY,
    holder       text,
    epoch        bigint      NOT NULL DEFAULT 0,
    acquired_at  timestamptz,
    expires_at   timestamptz,
    last_run_at  timestamptz,
    next_run_at  timestamptz,
    last_ok_at   timestamptz,
    last_error   text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE opsdash.worker_instance (
    instance   text PRIMARY KEY,
    host       text        NOT NULL,
    pid        integer     NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE opsdash.retention_run (
    id           bigserial PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    table_name   text        NOT NULL,
    partition    text,
    action       text        NOT NULL CHECK (action IN ('drop', 'archive', 'anonymize', 'move_default', 'create')),
    range_start  timestamptz,
    range_end    timestamptz,
    rows         bigint,
    archive_path text,
    archive_bytes bigint,
    sha256       text,
    status       text        NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'failed')),
    error        text
);
CREATE INDEX ON opsdash.retention_run (table_name, started_at);

-- Ingest runs, so the KPI tab can show the ingest rate and bad-line counts.
CREATE TABLE opsdash.ingest_stat (
    ts        timestamptz NOT NULL DEFAULT now(),
    source    text        NOT NULL,
    rows      bigint      NOT NULL,
    rejected  bigint      NOT NULL DEFAULT 0,
    folded    bigint      NOT NULL DEFAULT 0
);
CREATE INDEX ON opsdash.ingest_stat (ts);

-- ---------------------------------------------------------------------------------------------
-- Partition management
-- ---------------------------------------------------------------------------------------------
-- Creates the daily partition of `parent` holding `day`, if missing. Rows already sitting in the
-- default partition for that day are moved into the new partition first (otherwise CREATE ...
-- PARTITION OF fails with a constraint violation on the default partition).
CREATE FUNCTION opsdash.ensure_partition(parent text, day date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    part   text := parent || '_p' || to_char(day, 'YYYYMMDD');
    lo     timestamptz := day::timestamp AT TIME ZONE 'UTC';
    hi     timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
    keycol text;
    moved  bigint;
BEGIN
    IF to_regclass('opsdash.' || part) IS NOT NULL THEN
        RETURN part;
    END IF;
    -- Serialize partition creation per table across concurrent ingests and workers. A relation
    -- lock (unlike an advisory lock) also refreshes our view of the catalog, so the re-check
    -- below sees a partition another session just committed. SHARE UPDATE EXCLUSIVE does not
    -- conflict with the ROW EXCLUSIVE lock of concurrent COPY/INSERT.
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
    EXECUTE format('WITH m AS (DELETE FROM opsdash.%I WHERE %I >= $1 AND %I < $2 RETURNING *) '
                   'INSERT INTO opsdash.%I SELECT * FROM m', parent || '_default', keycol, keycol, part)
        USING lo, hi;
    GET DIAGNOSTICS moved = ROW_COUNT;
    EXECUTE format('ALTER TABLE opsdash.%I ATTACH PARTITION opsdash.%I FOR VALUES FROM (%L) TO (%L)',
                   parent, part, lo, hi);
    IF moved > 0 THEN
        INSERT INTO opsdash.retention_run (finished_at, table_name, partition, action, range_start, range_end, rows, status)
        VALUES (now(), parent, part, 'move_default', lo, hi, moved, 'ok');
    END IF;
    RETURN part;
END
$$;

-- The partitioned tables, in one place, so workers and tests iterate the same list.
CREATE VIEW opsdash.partitioned_tables AS
SELECT c.relname::text AS table_name
  FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'opsdash';

-- Creates partitions for every partitioned table from `from_day` to `to_day` inclusive.
CREATE FUNCTION opsdash.ensure_partitions(from_day date, to_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    t text;
    d date;
    n integer := 0;
BEGIN
    FOR t IN SELECT table_name FROM opsdash.partitioned_tables LOOP
        d := from_day;
        WHILE d <= to_day LOOP
            PERFORM opsdash.ensure_partition(t, d);
            n := n + 1;
            d := d + 1;
        END LOOP;
    END LOOP;
    RETURN n;
END
$$;

SELECT opsdash.ensure_partitions((now() AT TIME ZONE 'UTC')::date - 2, (now() AT TIME ZONE 'UTC')::date + 7);
