-- add_log_repeats (0046) read every row of the batches its repeats name and hashed each one's
-- attrs (a jsonb of a dozen fields for journald) to find the few rows the repeats fold into:
-- ~190 repeats of 8 batches read and hashed ~28k rows, 0.3-0.5 s per batch, over half of
-- `opsdash ingest` of journald's fixtures (auto_explain: the CTE scan of `stored` and the hash
-- join's attrs keys). The join needs s.ts = f.ts as well as s.tx = f.tx: `stored` now keeps
-- only the rows at a repeat's time (filtered at the heap, before the wide row is materialized
-- or its attrs hashed). Same signature, same matches.
CREATE OR REPLACE FUNCTION opsdash.add_log_repeats(
    p_ts timestamptz[], p_tx text[], p_level smallint[], p_service text[], p_host text[],
    p_message text[], p_trace_id text[], p_span_id text[], p_request_id text[], p_user_id text[],
    p_route text[], p_method text[], p_status smallint[], p_duration_ms float8[], p_ip text[],
    p_user_agent text[], p_error_type text[], p_attrs text[], p_fingerprint text[], p_add int[],
    p_last timestamptz[]) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, opsdash, pg_temp AS $$
    WITH f AS MATERIALIZED (
        SELECT ts, tx::xid8 AS tx, level, service, host, message, trace_id, span_id, request_id,
               user_id, route, method, status, duration_ms, ip, user_agent, error_type,
               attrs::jsonb AS attrs, fingerprint, add, last
          FROM unnest(p_ts, p_tx, p_level, p_service, p_host, p_message, p_trace_id, p_span_id,
                      p_request_id, p_user_id, p_route, p_method, p_status, p_duration_ms, p_ip,
                      p_user_agent, p_error_type, p_attrs, p_fingerprint, p_add, p_last)
               AS f(ts, tx, level, service, host, message, trace_id, span_id, request_id,
                    user_id, route, method, status, duration_ms, ip, user_agent, error_type,
                    attrs, fingerprint, add, last)
    ), stored AS MATERIALIZED (
        -- The rows of the batches named, once, through the (tx, id) index, and of those only
        -- the ones at a time a repeat has (the join below needs both equal).
        SELECT e.tx, e.id, e.ts, e.level, e.service, e.host, e.message, e.trace_id, e.span_id,
               e.request_id, e.user_id, e.route, e.method, e.status, e.duration_ms, e.ip,
               e.user_agent, e.error_type, e.attrs, e.fingerprint
          FROM opsdash.log_event e
         WHERE e.tx = ANY (ARRAY(SELECT DISTINCT tx FROM f))
           AND e.ts = ANY (ARRAY(SELECT DISTINCT ts FROM f))
    ), matched AS MATERIALIZED (
        SELECT s.tx, s.id, s.ts, f.add, f.last
          FROM stored s JOIN f
            ON s.ts = f.ts AND s.tx = f.tx AND s.level = f.level
           AND s.service = f.service AND s.message = f.message
           AND (s.attrs IS NULL) = (f.attrs IS NULL)
           AND coalesce(s.attrs, '{}') = coalesce(f.attrs, '{}')
           AND s.host IS NOT DISTINCT FROM f.host
           AND s.trace_id IS NOT DISTINCT FROM f.trace_id
           AND s.span_id IS NOT DISTINCT FROM f.span_id
           AND s.request_id IS NOT DISTINCT FROM f.request_id
           AND s.user_id IS NOT DISTINCT FROM f.user_id
           AND s.route IS NOT DISTINCT FROM f.route
           AND s.method IS NOT DISTINCT FROM f.method
           AND s.status IS NOT DISTINCT FROM f.status
           AND s.duration_ms IS NOT DISTINCT FROM f.duration_ms
           AND s.ip IS NOT DISTINCT FROM f.ip
           AND s.user_agent IS NOT DISTINCT FROM f.user_agent
           AND s.error_type IS NOT DISTINCT FROM f.error_type
           AND s.fingerprint IS NOT DISTINCT FROM f.fingerprint
    ), done AS (
        UPDATE opsdash.log_event e
           SET repeat_count = e.repeat_count + m.add,
               last_seen = GREATEST(coalesce(e.last_seen, e.ts), m.last)
          FROM matched m
         WHERE e.tx = m.tx AND e.id = m.id AND e.ts = m.ts
        RETURNING 1)
    SELECT count(*) FROM done
$$;
REVOKE EXECUTE ON FUNCTION opsdash.add_log_repeats FROM PUBLIC;
