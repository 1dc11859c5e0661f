-- Worker wake-ups (src/worker/wake.rs): the alert evaluator and the notifier tick every 250 ms
-- but look at the database only when told something changed or when their own next due time
-- comes. These triggers tell them, on channel opsdash_worker with the topic as payload. Inside
-- one transaction PostgreSQL folds identical notifications into one, delivered at commit.

CREATE FUNCTION opsdash.notify_worker() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('opsdash_worker', TG_ARGV[0]);
    RETURN NULL;
END
$$;

-- A message entered the outbox.
CREATE TRIGGER notification_wakes_worker
    AFTER INSERT ON opsdash.notification
    FOR EACH STATEMENT EXECUTE FUNCTION opsdash.notify_worker('outbox');

-- A message became due sooner than planned (a retry scheduled before the reclaim time). The
-- notifier's own claim only ever moves next_attempt_at later.
CREATE TRIGGER notification_due_sooner_wakes_worker
    AFTER UPDATE OF next_attempt_at, status ON opsdash.notification
    FOR EACH ROW
    WHEN (NEW.status IN ('pending', 'sending') AND NEW.next_attempt_at < OLD.next_attempt_at)
    EXECUTE FUNCTION opsdash.notify_worker('outbox');

-- A rule appeared, changed status, or became due sooner (the evaluator itself only moves
-- next_eval_at later).
CREATE TRIGGER alert_rule_added_wakes_worker
    AFTER INSERT ON opsdash.alert_rule
    FOR EACH STATEMENT EXECUTE FUNCTION opsdash.notify_worker('rules');

CREATE TRIGGER alert_rule_due_sooner_wakes_worker
    AFTER UPDATE ON opsdash.alert_rule
    FOR EACH ROW
    WHEN (NEW.status IS DISTINCT FROM OLD.status OR NEW.next_eval_at < OLD.next_eval_at)
    EXECUTE FUNCTION opsdash.notify_worker('rules');

-- KPI latency from rollups: the histogram (src/model/histogram.rs buckets) of inbound request
-- durations per minute, so the KPI tab's p95 (last hour, the hour before, per minute) merges
-- 120 small arrays instead of sorting two hours of raw rows. The rollup job fills it for the
-- minutes it rebuilds within LATENCY_KEPT_HOURS (src/query/rollup.rs); NULL elsewhere (no
-- inbound request, or older than the KPI tab reads).
ALTER TABLE opsdash.rollup_kpi_1m ADD COLUMN latency_hist integer[];

UPDATE opsdash.rollup_kpi_1m k SET latency_hist = h.hist
  FROM (SELECT bucket, opsdash.hist_build(lb, n) AS hist
          FROM (SELECT date_bin('1 minute', ts, timestamptz '1970-01-01 00:00:00+00') AS bucket,
                       opsdash.latency_bucket(duration_ms) AS lb, count(*) AS n
                  FROM opsdash.request_log
                 WHERE direction = 'inbound' AND ts >= now() - interval '3 hours'
                 GROUP BY 1, 2) g
         GROUP BY bucket) h
 WHERE k.bucket = h.bucket;
