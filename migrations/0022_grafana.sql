-- Grafana reads the same views as psql (with the opsdash_reader role, see the README): its
-- time-series and heatmap panels look for a column named `time`, and its query editor shows
-- comments. The views that are series over time gain a `time` column (appended, so psql users'
-- column positions stay); every view and the functions behind them say what they answer.

CREATE OR REPLACE VIEW opsdash.error_heatmap AS
SELECT bucket AS minute, service, route, direction, requests, err_4xx + err_5xx AS errors,
       100.0::float8 * (err_4xx + err_5xx) / nullif(requests, 0) AS error_pct,
       bucket AS time
  FROM opsdash.rollup_1m
 WHERE bucket >= date_bin('1 minute', now() - interval '1 hour', timestamptz '1970-01-01 00:00:00+00');

CREATE OR REPLACE VIEW opsdash.error_trend AS
WITH h AS (
  SELECT bucket AS hour, sum(requests)::bigint AS requests,
         sum(err_4xx)::bigint AS err_4xx, sum(err_5xx)::bigint AS err_5xx
    FROM opsdash.rollup_1h
   WHERE bucket >= date_bin('1 hour', now() - interval '48 hours', timestamptz '1970-01-01 00:00:00+00')
   GROUP BY 1)
SELECT hour, requests, err_4xx, err_5xx,
       100.0::float8 * (err_4xx + err_5xx) / nullif(requests, 0) AS error_pct,
       100.0::float8 * (err_4xx + err_5xx) / nullif(requests, 0)
         - lag(100.0::float8 * (err_4xx + err_5xx) / nullif(requests, 0)) OVER (ORDER BY hour)
         AS error_pct_change,
       hour AS time
  FROM h;

CREATE OR REPLACE VIEW opsdash.latency_trend AS
SELECT r.bucket AS hour, r.service, r.route, r.direction, r.requests,
       r.dur_sum / nullif(r.requests, 0) AS avg_ms,
       least(opsdash.hist_percentile(r.hist, 0.50), r.dur_max) AS p50_ms,
       least(opsdash.hist_percentile(r.hist, 0.95), r.dur_max) AS p95_ms,
       least(opsdash.hist_percentile(r.hist, 0.99), r.dur_max) AS p99_ms,
       r.dur_max AS max_ms,
       r.bucket AS time
  FROM opsdash.rollup_1h r
 WHERE r.bucket >= date_bin('1 hour', now() - interval '24 hours', timestamptz '1970-01-01 00:00:00+00');

CREATE OR REPLACE VIEW opsdash.slow_requests AS
SELECT s.*, s.ts AS time
  FROM opsdash.slow_requests(1000, now() - interval '1 hour', now(), 1000) s;

COMMENT ON VIEW opsdash.endpoint_stats IS
  'Per endpoint over the last hour, from the rollups: requests, rps, avg/p50/p95/p99/max ms, 4xx/5xx, error %. For any window: opsdash.endpoint_stats(from, to).';
COMMENT ON VIEW opsdash.endpoint_stats_exact IS
  'endpoint_stats computed with percentile_cont over the last hour of raw request_log rows (slower; the baseline).';
COMMENT ON VIEW opsdash.error_heatmap IS
  'Requests and errors per minute x endpoint, last hour; `time` is the minute (Grafana heatmap). Any window and step: opsdash.error_heatmap(from, to, step).';
COMMENT ON VIEW opsdash.error_trend IS
  'All endpoints per hour, last 48 hours: requests, 4xx, 5xx, error % and its change from the hour before; `time` is the hour.';
COMMENT ON VIEW opsdash.error_rate_by_status IS
  'Error responses by status code over the last hour, with their share of all requests.';
COMMENT ON VIEW opsdash.latency_trend IS
  'Latency per hour x endpoint, last 24 hours: avg/p50/p95/p99/max ms from merged histograms; `time` is the hour.';
COMMENT ON VIEW opsdash.latency_regression IS
  'Last hour''s p95 per endpoint against the previous 23 hours: OK, WARNING at +10%, ALERT at +30%.';
COMMENT ON VIEW opsdash.slow_requests IS
  'Requests over 1000 ms in the last hour, slowest first; `time` is the request time. Other thresholds: opsdash.slow_requests(ms, from, to, limit).';
COMMENT ON VIEW opsdash.slow_queries IS
  'Query fingerprints with calls over 500 ms in the last hour: calls, avg/max/total ms, rows per second.';
COMMENT ON VIEW opsdash.alert_stats IS
  'Open alerts per state and severity (testing rules apart), with the oldest one''s pending time.';
COMMENT ON VIEW opsdash.open_alert IS
  'Every alert not resolved: pending, firing, acknowledged or suppressed.';
COMMENT ON VIEW opsdash.silence_state IS
  'Silences with their state as operators see it: pending, active or expired.';
COMMENT ON VIEW opsdash.service_uptime IS
  'Share of health checks that found each service up (healthy or degraded) over 24 hours, 7 and 30 days.';
COMMENT ON VIEW opsdash.integration_stats_24h IS
  'Outbound calls per integration over 24 hours: calls, success share, avg ms, errors in the last hour, last call.';
COMMENT ON VIEW opsdash.partitioned_tables IS
  'The opsdash tables partitioned by day.';
COMMENT ON VIEW opsdash.audited_tables IS
  'Application tables with the opsdash row-level audit trigger installed.';

COMMENT ON FUNCTION opsdash.endpoint_stats(timestamptz, timestamptz) IS
  'endpoint_stats over any window [from, to): percentiles from merged histograms, clamped to the observed maximum.';
COMMENT ON FUNCTION opsdash.error_heatmap(timestamptz, timestamptz, interval) IS
  'Requests and errors per step x endpoint over [from, to); bucket is the step start. In Grafana: SELECT bucket AS time, ... FROM opsdash.error_heatmap($__timeFrom(), $__timeTo(), ''1 minute'').';
COMMENT ON FUNCTION opsdash.latency_regression(timestamptz) IS
  'p95 of the hour before `now` per endpoint against the 23 hours before it.';
COMMENT ON FUNCTION opsdash.slow_requests(double precision, timestamptz, timestamptz, integer) IS
  'Requests slower than ms in [from, to), slowest first, at most limit rows.';
COMMENT ON FUNCTION opsdash.slow_queries(double precision, timestamptz, timestamptz) IS
  'Query fingerprints with calls slower than ms in [from, to).';
COMMENT ON FUNCTION opsdash.rollup_window(timestamptz, timestamptz) IS
  'Rollup rows covering [from, to) widened to whole minutes: whole days from rollup_1d, hours from rollup_1h, 5-minute blocks from rollup_5m, the edges from rollup_1m.';
COMMENT ON FUNCTION opsdash.level_name(smallint) IS
  'The name of a stored log level (0 trace .. 5 fatal).';
COMMENT ON FUNCTION opsdash.hist_percentile(bigint[], double precision) IS
  'A percentile (0..1) of a merged latency histogram, in ms.';
COMMENT ON FUNCTION opsdash.hist_percentile(integer[], double precision) IS
  'A percentile (0..1) of one rollup row''s latency histogram, in ms.';
COMMENT ON FUNCTION opsdash.ensure_partition(text, date) IS
  'Creates the daily partition of an opsdash table (runs with the owner''s rights, for ingest and worker roles).';
COMMENT ON FUNCTION opsdash.add_log_repeats IS
  'Adds repeat counts to log rows stored by an earlier batch, without giving the ingest role SELECT on log_event.';
COMMENT ON FUNCTION opsdash.apply_role_grants() IS
  'Grants the opsdash_reader/_operator/_ingest/_worker roles their privileges on the schema; opsdash db grant calls it.';
