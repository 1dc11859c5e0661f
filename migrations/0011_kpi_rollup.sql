-- KPI counters from rollups, so the KPI tab's first paint does not scan a day or two of raw rows.
--
-- rollup_kpi_1m: one row per minute (whatever the number of services or endpoints) with the
-- counts the KPI tab shows. Filled by the rollup job for the minutes it rebuilds (it deletes and
-- re-inserts whole minutes, like rollup_1m), so it is exact for every minute before the job's
-- last run; the dashboard reads raw rows only after that.
CREATE TABLE opsdash.rollup_kpi_1m (
    bucket        timestamptz PRIMARY KEY,
    -- inbound requests and those answered 5xx (the requests/min and error-rate counters)
    requests      bigint NOT NULL DEFAULT 0,
    errors_5xx    bigint NOT NULL DEFAULT 0,
    -- requests over 1 s (any direction), queries over 500 ms
    slow_requests bigint NOT NULL DEFAULT 0,
    slow_queries  bigint NOT NULL DEFAULT 0,
    -- log rows at level error or fatal, and log lines stored (repeat_count summed)
    error_logs    bigint NOT NULL DEFAULT 0,
    log_lines     bigint NOT NULL DEFAULT 0
);

-- rollup_users_1h: who made a request in each hour (distinct user ids), so "active users 24 h"
-- is a distinct count over 24 small sets instead of a day of requests. Only ever added to (a
-- user seen stays seen), so the job inserts what the minutes it rebuilds hold, ON CONFLICT DO
-- NOTHING; hours older than the KPI tab reads are pruned by the job.
CREATE TABLE opsdash.rollup_users_1h (
    bucket  timestamptz NOT NULL,
    user_id text        NOT NULL,
    PRIMARY KEY (bucket, user_id)
);

-- Existing data: what the KPI tab reads (60 days of counters, 3 days of users), so a database
-- whose rollup job already ran is covered at once.
INSERT INTO opsdash.rollup_kpi_1m (bucket, requests, errors_5xx, slow_requests, slow_queries, error_logs, log_lines)
SELECT bucket, sum(requests), sum(errors_5xx), sum(slow_requests), sum(slow_queries), sum(error_logs), sum(log_lines)
  FROM (SELECT date_bin('1 minute', ts, timestamptz '1970-01-01 00:00:00+00') AS bucket,
               count(*) FILTER (WHERE direction = 'inbound') AS requests,
               count(*) FILTER (WHERE direction = 'inbound' AND status >= 500) AS errors_5xx,
               count(*) FILTER (WHERE duration_ms > 1000) AS slow_requests,
               0::bigint AS slow_queries, 0::bigint AS error_logs, 0::bigint AS log_lines
          FROM opsdash.request_log WHERE ts >= now() - interval '60 days' GROUP BY 1
        UNION ALL
        SELECT date_bin('1 minute', ts, timestamptz '1970-01-01 00:00:00+00'), 0, 0, 0,
               count(*) FILTER (WHERE duration_ms > 500), 0, 0
          FROM opsdash.query_log WHERE ts >= now() - interval '60 days' GROUP BY 1
        UNION ALL
        SELECT date_bin('1 minute', ts, timestamptz '1970-01-01 00:00:00+00'), 0, 0, 0, 0,
               count(*) FILTER (WHERE level >= 4), coalesce(sum(repeat_count), 0)
          FROM opsdash.log_event WHERE ts >= now() - interval '60 days' GROUP BY 1) t
 GROUP BY bucket;

INSERT INTO opsdash.rollup_users_1h (bucket, user_id)
SELECT date_bin('1 hour', ts, timestamptz '1970-01-01 00:00:00+00'), user_id
  FROM opsdash.request_log
 WHERE user_id IS NOT NULL AND ts >= now() - interval '3 days'
 GROUP BY 1, 2;
