-- Spans received over OTLP/HTTP (`opsdash serve`, POST /v1/traces): every span of a trace, so
-- the trace view draws the real waterfall (parent/child nesting, start offsets, durations).
-- Partitioned by day on the span's start like the other time series: retention drops a day at
-- a time, and ensure_partitions (which walks opsdash.partitioned_tables) makes its days ahead.
CREATE TABLE opsdash.span (
    ts             timestamptz NOT NULL,
    trace_id       text        NOT NULL,
    span_id        text        NOT NULL,
    parent_span_id text,
    name           text        NOT NULL DEFAULT '',
    kind           text        NOT NULL DEFAULT 'internal'
                   CHECK (kind IN ('unspecified', 'internal', 'server', 'client', 'producer', 'consumer')),
    service        text        NOT NULL DEFAULT '',
    duration_ms    double precision NOT NULL DEFAULT 0,
    status         text        NOT NULL DEFAULT 'unset' CHECK (status IN ('unset', 'ok', 'error')),
    status_message text,
    attrs          jsonb,
    -- An exporter retries a request it got no 2xx for: the insert skips spans already stored
    -- (the key holds the partition column, as a unique key on a partitioned table must).
    UNIQUE (trace_id, span_id, ts)
) PARTITION BY RANGE (ts);
CREATE TABLE opsdash.span_default PARTITION OF opsdash.span DEFAULT;
CREATE INDEX ON opsdash.span (ts);
CREATE INDEX ON opsdash.span (service, ts);

SELECT opsdash.ensure_partition('span', d::date)
  FROM generate_series((now() AT TIME ZONE 'UTC')::date - 2, (now() AT TIME ZONE 'UTC')::date + 7,
                       interval '1 day') AS d;

COMMENT ON TABLE opsdash.span IS
  'Spans received over OTLP (trace_id, span_id, parent_span_id, kind, service, start ts, duration_ms, status): the trace view''s waterfall.';

-- The receiver writes spans as the ingest role (rows in, never out: ON CONFLICT DO NOTHING
-- needs no SELECT); readers see them through the default privileges of 0021.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'opsdash_ingest') THEN
        GRANT INSERT ON opsdash.span TO opsdash_ingest;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'opsdash_reader') THEN
        GRANT SELECT ON opsdash.span TO opsdash_reader;
    END IF;
END
$$;
