-- Performance: late-row tracking for the rollup job, histogram functions shared with Rust
-- (src/model/histogram.rs), and the views behind the Performance tab, for psql and Grafana.

-- ---------------------------------------------------------------------------------------------
-- Late rows. The rollup job re-rolls exactly the minutes touched by rows whose writing
-- transaction it has not seen yet: it remembers the snapshot xmin of its last run and reads
-- `tx >= last xmin AND tx < current xmin` (every transaction below xmin has finished, so no row
-- can still appear there). A row that arrives a day late is re-rolled like a fresh one.
-- ---------------------------------------------------------------------------------------------
ALTER TABLE opsdash.request_log ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
ALTER TABLE opsdash.query_log ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX ON opsdash.request_log (tx);
CREATE INDEX ON opsdash.query_log (tx);

CREATE TABLE opsdash.rollup_state (
    job        text PRIMARY KEY,
    -- snapshot xmin of the last completed run: rows written by transactions below it are rolled
    tx_done    xid8        NOT NULL DEFAULT '0',
    rows_seen  bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX ON opsdash.rollup_query_1m (fingerprint, bucket);
-- Covering indexes: the heatmap and the sparklines read counts only, and an index-only scan
-- skips the wide histogram column. They also serve every bucket-range lookup.
CREATE INDEX rollup_1m_counts ON opsdash.rollup_1m (bucket) INCLUDE (service, route, direction, requests, err_4xx, err_5xx);
CREATE INDEX rollup_5m_counts ON opsdash.rollup_5m (bucket) INCLUDE (service, route, direction, requests, err_4xx, err_5xx);
CREATE INDEX rollup_1h_counts ON opsdash.rollup_1h (bucket) INCLUDE (service, route, direction, requests, err_4xx, err_5xx);
CREATE INDEX rollup_1d_counts ON opsdash.rollup_1d (bucket) INCLUDE (service, route, direction, requests, err_4xx, err_5xx);

-- ---------------------------------------------------------------------------------------------
-- Histogram functions. Bucket 0 is underflow (< 1 ms), 1..281 grow by 1.04 from 1 ms, 282 is
-- overflow (>= 60 s, and NaN). Arrays are 1-based: bucket b is element b+1; trailing zeros are
-- trimmed. These must stay identical to src/model/histogram.rs (tests/perf_sql.rs checks).
-- ---------------------------------------------------------------------------------------------
-- Plain SQL (not STRICT) so the planner inlines it into the rollup's GROUP BY.
CREATE FUNCTION opsdash.latency_bucket(ms double precision) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN ms >= 60000 THEN 282
              WHEN ms < 1 THEN 0
              ELSE 1 + least(floor(ln(ms) / 0.03922071315328133::float8)::integer, 280) END
$$;

-- The value a percentile reports for a bucket (within 1.96% of every value in it).
CREATE FUNCTION opsdash.latency_bucket_value(b integer) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN b <= 0 THEN 0.5::float8
              WHEN b >= 282 THEN 60000::float8
              ELSE 2::float8 * exp((b - 1)::float8 * 0.03922071315328133::float8) * 1.04::float8
                   / (1::float8 + 1.04::float8) END
$$;

-- hist_build(bucket, count): the histogram of (bucket, count) pairs, duplicates adding up. The
-- rollup groups raw rows by (minute, endpoint, bucket) in C first, so this runs once per
-- non-empty bucket, not per request. Assigning past the end pads with NULLs; the final function
-- turns them into zeros.
CREATE FUNCTION opsdash.hist_put(state integer[], b integer, n bigint) RETURNS integer[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF b IS NOT NULL AND b >= 0 AND n IS NOT NULL THEN
        state[least(b, 282) + 1] := coalesce(state[least(b, 282) + 1], 0) + n;
    END IF;
    RETURN state;
END
$$;

CREATE FUNCTION opsdash.hist_put_final(state integer[]) RETURNS integer[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT array_replace(state, NULL, 0) $$;

CREATE AGGREGATE opsdash.hist_build(integer, bigint) (
    SFUNC = opsdash.hist_put, STYPE = integer[], INITCOND = '{0}', FINALFUNC = opsdash.hist_put_final
);

-- Element-wise sum (transition and combine function of hist_merge). plpgsql on purpose: measured
-- on 1,560 minute rows grouped into 5-minute blocks, this loop takes 180 ms where a SQL
-- `generate_series` transition takes 1,000 ms and `unnest ... WITH ORDINALITY ... GROUP BY`
-- 1,400 ms (the array stays expanded in place between calls).
CREATE FUNCTION opsdash.hist_add(state bigint[], h bigint[]) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    n integer := coalesce(cardinality(h), 0);
    m integer := coalesce(cardinality(state), 0);
BEGIN
    IF n = 0 THEN RETURN state; END IF;
    IF m = 0 THEN RETURN h; END IF;
    IF n > m THEN
        state := state || array_fill(0::bigint, ARRAY[n - m]);
    END IF;
    FOR i IN 1..n LOOP
        state[i] := state[i] + h[i];
    END LOOP;
    RETURN state;
END
$$;

CREATE FUNCTION opsdash.hist_add(state bigint[], h integer[]) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    n integer := coalesce(cardinality(h), 0);
    m integer := coalesce(cardinality(state), 0);
BEGIN
    IF n = 0 THEN RETURN state; END IF;
    IF m = 0 THEN RETURN h::bigint[]; END IF;
    IF n > m THEN
        state := state || array_fill(0::bigint, ARRAY[n - m]);
    END IF;
    FOR i IN 1..n LOOP
        state[i] := state[i] + h[i];
    END LOOP;
    RETURN state;
END
$$;

-- SELECT opsdash.hist_merge(hist) FROM opsdash.rollup_1m WHERE ...: the merged histogram.
CREATE AGGREGATE opsdash.hist_merge(integer[]) (
    SFUNC = opsdash.hist_add, STYPE = bigint[], COMBINEFUNC = opsdash.hist_add, PARALLEL = SAFE
);
CREATE AGGREGATE opsdash.hist_merge(bigint[]) (
    SFUNC = opsdash.hist_add, STYPE = bigint[], COMBINEFUNC = opsdash.hist_add, PARALLEL = SAFE
);

-- Nearest-rank percentiles (each q in 0..1) of a histogram in one pass; NULLs when empty.
CREATE FUNCTION opsdash.hist_percentiles(h bigint[], qs double precision[]) RETURNS double precision[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    total bigint := 0;
    seen  bigint := 0;
    k     integer := 1;
    nq    integer := coalesce(cardinality(qs), 0);
    ranks bigint[];
    out   double precision[] := array_fill(NULL::float8, ARRAY[greatest(nq, 1)]);
    ord   integer[];
BEGIN
    IF nq = 0 THEN RETURN '{}'; END IF;
    FOR i IN 1..coalesce(cardinality(h), 0) LOOP
        total := total + greatest(h[i], 0);
    END LOOP;
    IF total = 0 THEN RETURN out; END IF;
    -- Visit the requested quantiles in rank order, remembering where each answer goes.
    SELECT array_agg(greatest(1, ceil(least(greatest(coalesce(q, 0), 0), 1) * total))::bigint ORDER BY q NULLS FIRST, i),
           array_agg(i::integer ORDER BY q NULLS FIRST, i)
      INTO ranks, ord
      FROM unnest(qs) WITH ORDINALITY u(q, i);
    FOR i IN 1..cardinality(h) LOOP
        seen := seen + greatest(h[i], 0);
        WHILE k <= nq AND seen >= ranks[k] LOOP
            out[ord[k]] := opsdash.latency_bucket_value(i - 1);
            k := k + 1;
        END LOOP;
        EXIT WHEN k > nq;
    END LOOP;
    RETURN out;
END
$$;

CREATE FUNCTION opsdash.hist_percentile(h bigint[], q double precision) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (opsdash.hist_percentiles(h, ARRAY[q]))[1] $$;

CREATE FUNCTION opsdash.hist_percentile(h integer[], q double precision) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (opsdash.hist_percentiles(h::bigint[], ARRAY[q]))[1] $$;

-- ---------------------------------------------------------------------------------------------
-- Reading a window from the rollups: whole days from rollup_1d, whole hours from rollup_1h,
-- whole 5-minute blocks from rollup_5m, the ragged edges from rollup_1m, so a 30-day window
-- reads about a hundred rows per endpoint instead of 43,200. The window is [p_from, p_to)
-- widened to whole minutes (the minute holding p_to counts, so "now" includes the live minute).
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION opsdash.ceil_bin(step interval, t timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN date_bin(step, t, timestamptz '1970-01-01 00:00:00+00') = t THEN t
              ELSE date_bin(step, t, timestamptz '1970-01-01 00:00:00+00') + step END
$$;

CREATE FUNCTION opsdash.rollup_window(p_from timestamptz, p_to timestamptz)
RETURNS SETOF opsdash.rollup_1m
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    lo   timestamptz := date_bin('1 minute', p_from, timestamptz '1970-01-01 00:00:00+00');
    hi   timestamptz := opsdash.ceil_bin('1 minute', p_to);
    f_lo timestamptz; f_hi timestamptz;
    h_lo timestamptz; h_hi timestamptz;
    d_lo timestamptz; d_hi timestamptz;
BEGIN
    IF p_to = date_bin('1 minute', p_to, timestamptz '1970-01-01 00:00:00+00') THEN
        hi := p_to;
    END IF;
    IF hi <= lo THEN
        RETURN;
    END IF;
    -- Each coarser tier covers the whole blocks inside the finer tier's span; an empty tier
    -- collapses onto the finer tier's upper end so the finer tier covers everything.
    f_lo := opsdash.ceil_bin('5 minutes', lo);
    f_hi := date_bin('5 minutes', hi, timestamptz '1970-01-01 00:00:00+00');
    IF f_lo >= f_hi THEN f_lo := hi; f_hi := hi; END IF;
    h_lo := opsdash.ceil_bin('1 hour', f_lo);
    h_hi := date_bin('1 hour', f_hi, timestamptz '1970-01-01 00:00:00+00');
    IF h_lo >= h_hi THEN h_lo := f_hi; h_hi := f_hi; END IF;
    d_lo := opsdash.ceil_bin('1 day', h_lo);
    d_hi := date_bin('1 day', h_hi, timestamptz '1970-01-01 00:00:00+00');
    IF d_lo >= d_hi THEN d_lo := h_hi; d_hi := h_hi; END IF;
    RETURN QUERY
        SELECT * FROM opsdash.rollup_1m
         WHERE (bucket >= lo AND bucket < f_lo) OR (bucket >= f_hi AND bucket < hi)
        UNION ALL
        SELECT * FROM opsdash.rollup_5m
         WHERE (bucket >= f_lo AND bucket < h_lo) OR (bucket >= h_hi AND bucket < f_hi)
        UNION ALL
        SELECT * FROM opsdash.rollup_1h
         WHERE (bucket >= h_lo AND bucket < d_lo) OR (bucket >= d_hi AND bucket < h_hi)
        UNION ALL
        SELECT * FROM opsdash.rollup_1d WHERE bucket >= d_lo AND bucket < d_hi;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Endpoint statistics over any window (percentiles from merged histograms, clamped to the
-- observed maximum).
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION opsdash.endpoint_stats(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (service text, route text, direction text, requests bigint, rps double precision,
               avg_ms double precision, p50_ms double precision, p95_ms double precision,
               p99_ms double precision, max_ms double precision, err_4xx bigint, err_5xx bigint,
               error_pct double precision, bytes bigint)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  WITH s AS (
    SELECT w.service, w.route, w.direction, sum(w.requests)::bigint AS n,
           sum(w.err_4xx)::bigint AS e4, sum(w.err_5xx)::bigint AS e5,
           sum(w.bytes)::bigint AS b, sum(w.dur_sum) AS ds, max(w.dur_max) AS dm,
           opsdash.hist_percentiles(opsdash.hist_merge(w.hist), '{0.5,0.95,0.99}') AS p
      FROM opsdash.rollup_window(p_from, p_to) w
     GROUP BY 1, 2, 3)
  SELECT s.service, s.route, s.direction, s.n,
         -- per second of the span the rollups cover (whole minutes from p_from's minute) so far
         s.n / greatest(extract(epoch FROM (least(p_to, now())
                 - date_bin('1 minute', p_from, timestamptz '1970-01-01 00:00:00+00'))), 1)::float8,
         s.ds / nullif(s.n, 0),
         least(s.p[1], s.dm), least(s.p[2], s.dm), least(s.p[3], s.dm),
         s.dm, s.e4, s.e5,
         100.0::float8 * (s.e4 + s.e5) / nullif(s.n, 0),
         s.b
    FROM s
$$;

CREATE VIEW opsdash.endpoint_stats AS
SELECT * FROM opsdash.endpoint_stats(now() - interval '1 hour', now());

-- The original design, kept as the baseline for the benchmark and the tab's exact toggle:
-- percentile_cont over the last hour of raw rows.
CREATE VIEW opsdash.endpoint_stats_exact AS
SELECT service, method || ' ' || route AS route, direction,
       count(*) AS requests,
       count(*) / 3600.0::float8 AS rps,
       avg(duration_ms) AS avg_ms,
       percentile_cont(0.50) WITHIN GROUP (ORDER BY duration_ms) AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) AS p99_ms,
       max(duration_ms) AS max_ms,
       count(*) FILTER (WHERE status BETWEEN 400 AND 499) AS err_4xx,
       count(*) FILTER (WHERE status >= 500) AS err_5xx,
       100.0::float8 * count(*) FILTER (WHERE status >= 400) / count(*) AS error_pct,
       coalesce(sum(bytes), 0)::bigint AS bytes
  FROM opsdash.request_log
 WHERE ts >= now() - interval '1 hour'
 GROUP BY 1, 2, 3;

-- ---------------------------------------------------------------------------------------------
-- Errors
-- ---------------------------------------------------------------------------------------------
-- Error counts per time step x endpoint over a window, from the coarsest tier that divides the
-- step (a 24 h heatmap in 30-minute columns reads rollup_5m, not a day of minutes).
CREATE FUNCTION opsdash.error_heatmap(p_from timestamptz, p_to timestamptz, p_step interval)
RETURNS TABLE (bucket timestamptz, service text, route text, direction text, requests bigint,
               errors bigint, error_pct double precision)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    secs double precision := extract(epoch FROM p_step);
    tier text := CASE WHEN secs >= 86400 AND secs::bigint % 86400 = 0 THEN 'rollup_1d'
                      WHEN secs >= 3600 AND secs::bigint % 3600 = 0 THEN 'rollup_1h'
                      WHEN secs >= 300 AND secs::bigint % 300 = 0 THEN 'rollup_5m'
                      ELSE 'rollup_1m' END;
BEGIN
    RETURN QUERY EXECUTE format(
        'SELECT date_bin($3, r.bucket, timestamptz ''1970-01-01 00:00:00+00'') AS b, r.service, r.route, r.direction,
                sum(r.requests)::bigint, sum(r.err_4xx + r.err_5xx)::bigint,
                100.0::float8 * sum(r.err_4xx + r.err_5xx) / nullif(sum(r.requests), 0)
           FROM opsdash.%I r
          WHERE r.bucket >= date_bin($3, $1, timestamptz ''1970-01-01 00:00:00+00'') AND r.bucket < $2
          GROUP BY 1, 2, 3, 4', tier)
        USING p_from, p_to, p_step;
END
$$;

-- Minute x endpoint for the last hour: psql/Grafana heatmap panels read this directly.
CREATE VIEW opsdash.error_heatmap AS
SELECT bucket AS minute, service, route, direction, requests, err_4xx + err_5xx AS errors,
       100.0::float8 * (err_4xx + err_5xx) / nullif(requests, 0) AS error_pct
  FROM opsdash.rollup_1m
 WHERE bucket >= date_bin('1 minute', now() - interval '1 hour', timestamptz '1970-01-01 00:00:00+00');

-- Hour over hour, last 48 hours, all endpoints together.
CREATE VIEW opsdash.error_trend AS
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
         AS error_pct_change
  FROM h;

-- Error rate by status code over the last hour (raw rows through the partial status index;
-- the rate's denominator comes from the rollups).
CREATE VIEW opsdash.error_rate_by_status AS
WITH total AS (SELECT coalesce(sum(requests), 0) AS n FROM opsdash.endpoint_stats)
SELECT r.status, count(*) AS requests,
       100.0::float8 * count(*) / nullif((SELECT n FROM total), 0) AS pct_of_requests
  FROM opsdash.request_log r
 WHERE r.ts >= now() - interval '1 hour' AND r.status >= 400
 GROUP BY r.status;

-- ---------------------------------------------------------------------------------------------
-- Latency trends and regressions
-- ---------------------------------------------------------------------------------------------
CREATE VIEW opsdash.latency_trend AS
SELECT r.bucket AS hour, r.service, r.route, r.direction, r.requests,
       r.dur_sum / nullif(r.requests, 0) AS avg_ms,
       least(opsdash.hist_percentile(r.hist, 0.50), r.dur_max) AS p50_ms,
       least(opsdash.hist_percentile(r.hist, 0.95), r.dur_max) AS p95_ms,
       least(opsdash.hist_percentile(r.hist, 0.99), r.dur_max) AS p99_ms,
       r.dur_max AS max_ms
  FROM opsdash.rollup_1h r
 WHERE r.bucket >= date_bin('1 hour', now() - interval '24 hours', timestamptz '1970-01-01 00:00:00+00');

-- The last hour's p95 against the previous 23 hours': OK, WARNING at +10%, ALERT at +30%.
CREATE FUNCTION opsdash.latency_regression(p_now timestamptz)
RETURNS TABLE (service text, route text, direction text, p95_ms double precision,
               baseline_p95_ms double precision, change_pct double precision, status text)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT cur.service, cur.route, cur.direction, cur.p95_ms, base.p95_ms,
         100.0::float8 * (cur.p95_ms - base.p95_ms) / nullif(base.p95_ms, 0),
         CASE WHEN base.p95_ms IS NULL OR base.p95_ms = 0 THEN 'OK'
              WHEN cur.p95_ms >= base.p95_ms * 1.30 THEN 'ALERT'
              WHEN cur.p95_ms >= base.p95_ms * 1.10 THEN 'WARNING'
              ELSE 'OK' END
    FROM opsdash.endpoint_stats(p_now - interval '1 hour', p_now) cur
    LEFT JOIN opsdash.endpoint_stats(p_now - interval '24 hours', p_now - interval '1 hour') base
      ON base.service = cur.service AND base.route = cur.route AND base.direction = cur.direction
$$;

CREATE VIEW opsdash.latency_regression AS SELECT * FROM opsdash.latency_regression(now());

-- ---------------------------------------------------------------------------------------------
-- Slow requests and slow queries (raw rows through the partial duration indexes)
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION opsdash.slow_requests(p_threshold_ms double precision, p_from timestamptz,
                                      p_to timestamptz, p_limit integer)
RETURNS TABLE (ts timestamptz, service text, route text, direction text, status smallint,
               duration_ms double precision, trace_id text, request_id text, user_id text)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT r.ts, r.service, r.method || ' ' || r.route, r.direction, r.status, r.duration_ms,
         r.trace_id, r.request_id, r.user_id
    FROM opsdash.request_log r
   WHERE r.duration_ms >= p_threshold_ms AND r.ts >= p_from AND r.ts < p_to
   ORDER BY r.duration_ms DESC
   LIMIT p_limit
$$;

CREATE VIEW opsdash.slow_requests AS
SELECT * FROM opsdash.slow_requests(1000, now() - interval '1 hour', now(), 1000);

CREATE FUNCTION opsdash.slow_queries(p_threshold_ms double precision, p_from timestamptz,
                                     p_to timestamptz)
RETURNS TABLE (service text, fingerprint text, sample text, calls bigint, avg_ms double precision,
               max_ms double precision, total_ms double precision, rows_per_s double precision)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT q.service, q.fingerprint, min(q.query), count(*)::bigint, avg(q.duration_ms),
         max(q.duration_ms), sum(q.duration_ms),
         -- rows produced per second of execution: a query that returns few rows slowly stands out
         coalesce(sum(q.rows), 0) / nullif(sum(q.duration_ms) / 1000.0, 0)
    FROM opsdash.query_log q
   WHERE q.duration_ms >= p_threshold_ms AND q.ts >= p_from AND q.ts < p_to
   GROUP BY 1, 2
$$;

CREATE VIEW opsdash.slow_queries AS
SELECT * FROM opsdash.slow_queries(500, now() - interval '1 hour', now());
