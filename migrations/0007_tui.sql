-- Views behind the Health tab, so psql and Grafana users get the same answers as the dashboard.

-- Uptime per checked service: share of checks that found it up (healthy or degraded) over the
-- last 24 hours, 7 days and 30 days; checks with status 'unknown' are not counted.
CREATE VIEW opsdash.service_uptime AS
SELECT h.service,
       avg((h.status IN ('healthy', 'degraded'))::int::float8)
         FILTER (WHERE h.ts >= now() - interval '24 hours') AS up_24h,
       avg((h.status IN ('healthy', 'degraded'))::int::float8)
         FILTER (WHERE h.ts >= now() - interval '7 days') AS up_7d,
       avg((h.status IN ('healthy', 'degraded'))::int::float8) AS up_30d,
       count(*) AS checks_30d
  FROM opsdash.health_check h
 WHERE h.ts >= now() - interval '30 days' AND h.status <> 'unknown'
 GROUP BY h.service;

-- Integrations (outbound calls) over the last 24 hours. A call failed when it got no answer
-- (status 0), an error status, or an error code.
CREATE VIEW opsdash.integration_stats_24h AS
SELECT coalesce(nullif(integration, ''), route) AS integration,
       count(*) AS calls_24h,
       avg((status BETWEEN 1 AND 399 AND error_code IS NULL)::int::float8) AS success_24h,
       avg(duration_ms) AS avg_ms_24h,
       count(*) FILTER (WHERE ts >= now() - interval '1 hour'
                          AND NOT (status BETWEEN 1 AND 399 AND error_code IS NULL)) AS errors_1h,
       max(ts) AS last_call
  FROM opsdash.request_log
 WHERE direction = 'outbound' AND ts >= now() - interval '24 hours'
 GROUP BY 1;
