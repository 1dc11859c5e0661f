-- Statement samples from pg_stat_statements (issue 14, item 8): one query_log row stands for
-- `calls` executions of one statement during a sampling interval, `duration_ms` their mean.
-- A row from a server's log or an application is one execution (calls = 1), so the
-- slow-query view weighs both kinds the same way.
ALTER TABLE opsdash.query_log ADD COLUMN calls bigint NOT NULL DEFAULT 1;

CREATE OR REPLACE FUNCTION opsdash.slow_queries(p_threshold_ms double precision,
                                                p_from timestamptz, p_to timestamptz)
RETURNS TABLE (service text, fingerprint text, sample text, calls bigint, avg_ms double precision,
               max_ms double precision, total_ms double precision, rows_per_s double precision)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT q.service, q.fingerprint, min(q.query), sum(q.calls)::bigint,
         sum(q.duration_ms * q.calls) / nullif(sum(q.calls), 0),
         max(q.duration_ms), sum(q.duration_ms * q.calls),
         -- rows produced per second of execution: a query that returns few rows slowly stands out
         coalesce(sum(q.rows), 0) / nullif(sum(q.duration_ms * q.calls) / 1000.0, 0)
    FROM opsdash.query_log q
   WHERE q.duration_ms >= p_threshold_ms AND q.ts >= p_from AND q.ts < p_to
   GROUP BY 1, 2
$$;
