-- add_log_repeats (0021) found the rows to add repeats to by a hash join on (ts, tx, level,
-- service, message) over a sequential scan of every log_event partition, then compared the other
-- columns pair by pair, casting the attrs text to jsonb again for every pair. Each batch with
-- repeats read the whole table (quadratic over a run), and rows sharing ts and message but not
-- attrs (syslog structured data, sshd lines of one second) made ~100 pairs per repeat: 0.5-1 s
-- per batch, 4-5k rows/s end to end for such logs. Same signature and the same matching rule
-- (every column equal, NULLs equal); now attrs is cast once per repeat and is part of the hash
-- key (NULL and non-NULL kept apart by its own key), and only the rows of the batches named
-- (`tx`, through the (tx, id) index) are read.
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
    ), done AS (
        UPDATE opsdash.log_event e
           SET repeat_count = e.repeat_count + f.add,
               last_seen = GREATEST(coalesce(e.last_seen, e.ts), f.last)
          FROM f
         WHERE e.tx = ANY (ARRAY(SELECT DISTINCT tx FROM f))
           AND e.ts = f.ts AND e.tx = f.tx AND e.level = f.level
           AND e.service = f.service AND e.message = f.message
           AND (e.attrs IS NULL) = (f.attrs IS NULL)
           AND coalesce(e.attrs, '{}') = coalesce(f.attrs, '{}')
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
           AND e.fingerprint IS NOT DISTINCT FROM f.fingerprint
        RETURNING 1)
    SELECT count(*) FROM done
$$;
REVOKE EXECUTE ON FUNCTION opsdash.add_log_repeats FROM PUBLIC;
