//! SQL of the rollup job: raw request/query rows -> per-minute rollups -> 5-minute, 30-minute,
//! hourly and daily rollups. Every step deletes and rebuilds whole buckets, so running it twice over the
//! same range gives the same rows (idempotent), and a range can be re-rolled when late rows land.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, Transaction};

/// A coarser rollup tier built from the next finer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    FiveMinutes,
    HalfHour,
    Hour,
    Day,
}

impl Tier {
    /// In build order: each tier is built from the one before it.
    pub const ALL: [Tier; 4] = [Tier::FiveMinutes, Tier::HalfHour, Tier::Hour, Tier::Day];

    pub fn seconds(self) -> i64 {
        match self {
            Tier::FiveMinutes => 300,
            Tier::HalfHour => 1800,
            Tier::Hour => 3600,
            Tier::Day => 86_400,
        }
    }

    fn table(self) -> &'static str {
        match self {
            Tier::FiveMinutes => "opsdash.rollup_5m",
            Tier::HalfHour => "opsdash.rollup_30m",
            Tier::Hour => "opsdash.rollup_1h",
            Tier::Day => "opsdash.rollup_1d",
        }
    }

    fn source(self) -> &'static str {
        match self {
            Tier::FiveMinutes => "opsdash.rollup_1m",
            Tier::HalfHour => "opsdash.rollup_5m",
            Tier::Hour => "opsdash.rollup_30m",
            Tier::Day => "opsdash.rollup_1h",
        }
    }

    fn step(self) -> &'static str {
        match self {
            Tier::FiveMinutes => "5 minutes",
            Tier::HalfHour => "30 minutes",
            Tier::Hour => "1 hour",
            Tier::Day => "1 day",
        }
    }
}

/// The current snapshot (`xmin:xmax:xip,...`): every row it can see is committed, and every row
/// it cannot see belongs to a transaction at or after its xmax or listed as in progress.
pub async fn current_snapshot(conn: &mut PgConnection) -> sqlx::Result<(String, DateTime<Utc>)> {
    sqlx::query_as("SELECT pg_current_snapshot()::text, clock_timestamp()")
        .fetch_one(conn)
        .await
}

/// The snapshot recorded by the last completed run of `job`; one at its xmin for a run recorded
/// before snapshots were kept, and one that sees nothing before the first run.
pub async fn last_snapshot(conn: &mut PgConnection, job: &str) -> sqlx::Result<String> {
    let v: Option<String> = sqlx::query_scalar(
        "SELECT coalesce(snapshot::text, greatest(tx_done, '1')::text || ':' || greatest(tx_done, '1')::text || ':')
           FROM opsdash.rollup_state WHERE job = $1",
    )
    .bind(job)
    .fetch_optional(conn)
    .await?;
    Ok(v.unwrap_or_else(|| "1:1:".to_string()))
}

/// Records a completed run: its snapshot (and that snapshot's xmin as `tx_done`) and when it
/// was taken as `updated_at`. The start, not the end: every row committed before it is rolled,
/// which readers rely on when they read the minutes from `updated_at` on from raw rows (a row
/// committed while a run works may miss it, and its minute may be before the run's end).
pub async fn save_snapshot(
    conn: &mut PgConnection,
    job: &str,
    snapshot: &str,
    started: DateTime<Utc>,
    rows: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO opsdash.rollup_state (job, tx_done, snapshot, rows_seen, updated_at)
         VALUES ($1, pg_snapshot_xmin($2::pg_snapshot), $2::pg_snapshot, $3, $4)
         ON CONFLICT (job) DO UPDATE
            SET tx_done = EXCLUDED.tx_done, snapshot = EXCLUDED.snapshot,
                rows_seen = opsdash.rollup_state.rows_seen + EXCLUDED.rows_seen,
                updated_at = EXCLUDED.updated_at",
    )
    .bind(job)
    .bind(snapshot)
    .bind(rows)
    .bind(started)
    .execute(conn)
    .await?;
    Ok(())
}

/// Minutes holding request, query or log rows that the snapshot `since` could not see (written
/// by a transaction at or after its xmax, or by one it listed as in progress), with how many such
/// rows each has. Both conditions are index scans on `tx`, however far back a long-open
/// transaction holds the snapshot's xmin.
pub async fn touched_minutes(
    conn: &mut PgConnection,
    since: &str,
) -> sqlx::Result<Vec<(DateTime<Utc>, i64)>> {
    sqlx::query_as(
        "WITH s AS (SELECT $1::pg_snapshot AS s),
              x AS (SELECT pg_snapshot_xmax(s) AS xmax,
                           ARRAY(SELECT pg_snapshot_xip(s)) AS xip FROM s)
         SELECT m, sum(n)::bigint FROM (
            SELECT date_bin('1 minute', ts, timestamptz '1970-01-01 00:00:00+00') AS m, count(*) AS n
              FROM opsdash.request_log
             WHERE tx >= (SELECT xmax FROM x) OR tx = ANY ((SELECT xip FROM x)::xid8[]) GROUP BY 1
            UNION ALL
            SELECT date_bin('1 minute', ts, timestamptz '1970-01-01 00:00:00+00'), count(*)
              FROM opsdash.query_log
             WHERE tx >= (SELECT xmax FROM x) OR tx = ANY ((SELECT xip FROM x)::xid8[]) GROUP BY 1
            UNION ALL
            SELECT date_bin('1 minute', ts, timestamptz '1970-01-01 00:00:00+00'), count(*)
              FROM opsdash.log_event
             WHERE tx >= (SELECT xmax FROM x) OR tx = ANY ((SELECT xip FROM x)::xid8[]) GROUP BY 1
         ) t GROUP BY m ORDER BY m",
    )
    .bind(since)
    .fetch_all(conn)
    .await
}

/// Serializes rollup writers: two runs rebuilding the same buckets would collide on the keys.
/// Also gives the transaction room to aggregate an hour of raw rows in memory instead of
/// spilling to disk.
pub async fn lock(tx: &mut Transaction<'_, Postgres>) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('opsdash.rollup'))")
        .execute(&mut **tx)
        .await?;
    sqlx::query("SET LOCAL work_mem = '64MB'")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Rebuilds `rollup_1m` and `rollup_query_1m` for minutes in `[lo, hi)` from raw rows, grouping
/// on the server. Returns the number of raw request rows rolled.
pub async fn roll_minutes(
    tx: &mut Transaction<'_, Postgres>,
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
) -> sqlx::Result<i64> {
    sqlx::query("DELETE FROM opsdash.rollup_1m WHERE bucket >= $1 AND bucket < $2")
        .bind(lo)
        .bind(hi)
        .execute(&mut **tx)
        .await?;
    // Inner GROUP BY counts per latency bucket; the outer one folds those into one dense array.
    let rows: Option<i64> = sqlx::query_scalar(
        "WITH ins AS (
           INSERT INTO opsdash.rollup_1m
                  (bucket, service, route, direction, requests, err_4xx, err_5xx, bytes, dur_sum, dur_max, hist)
           SELECT bucket, service, route, direction, sum(n), sum(e4), sum(e5), sum(b), sum(ds), max(dm),
                  opsdash.hist_build(lb, n)
             FROM (SELECT date_bin('1 minute', ts, timestamptz '1970-01-01 00:00:00+00') AS bucket,
                          service, method || ' ' || route AS route, direction,
                          opsdash.latency_bucket(duration_ms) AS lb,
                          count(*) AS n,
                          count(*) FILTER (WHERE status BETWEEN 400 AND 499) AS e4,
                          count(*) FILTER (WHERE status >= 500) AS e5,
                          coalesce(sum(bytes), 0) AS b,
                          sum(duration_ms) AS ds,
                          max(duration_ms) AS dm
                     FROM opsdash.request_log
                    WHERE ts >= $1 AND ts < $2
                    GROUP BY 1, 2, 3, 4, 5) g
            GROUP BY 1, 2, 3, 4
           RETURNING requests)
         SELECT sum(requests)::bigint FROM ins",
    )
    .bind(lo)
    .bind(hi)
    .fetch_one(&mut **tx)
    .await?;

    sqlx::query("DELETE FROM opsdash.rollup_query_1m WHERE bucket >= $1 AND bucket < $2")
        .bind(lo)
        .bind(hi)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO opsdash.rollup_query_1m
                (bucket, service, fingerprint, sample, calls, dur_sum, dur_max, rows_sum)
         SELECT date_bin('1 minute', ts, timestamptz '1970-01-01 00:00:00+00'), service, fingerprint,
                min(query), sum(calls)::int8, sum(duration_ms * calls), max(duration_ms),
                coalesce(sum(rows), 0)
           FROM opsdash.query_log
          WHERE ts >= $1 AND ts < $2
          GROUP BY 1, 2, 3",
    )
    .bind(lo)
    .bind(hi)
    .execute(&mut **tx)
    .await?;
    Ok(rows.unwrap_or(0))
}

/// The rollup job's name: its snapshots and run times are read by the KPI and alert queries,
/// so the name lives here with them.
pub const JOB_NAME: &str = "rollup";

/// How long the KPI rollups keep what the KPI tab may read: counters for the longest range and
/// the period before it (30 + 30 days), users for 24 h and the 24 h before.
pub const KPI_KEPT_DAYS: i32 = 62;
pub const USERS_KEPT_DAYS: i32 = 3;
/// The per-minute latency histograms are kept for the KPI tab's last hour and the hour before
/// it, with room to spare.
pub const LATENCY_KEPT_HOURS: i32 = 3;

/// Rebuilds `rollup_kpi_1m` for minutes in `[lo, hi)` (with the latency histograms of recent
/// minutes, migration 0012) and adds the users those minutes saw to `rollup_users_1h` (see
/// migration 0011).
pub async fn roll_kpi_minutes(
    tx: &mut Transaction<'_, Postgres>,
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM opsdash.rollup_kpi_1m WHERE bucket >= $1 AND bucket < $2")
        .bind(lo)
        .bind(hi)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO opsdash.rollup_kpi_1m
                (bucket, requests, errors_5xx, slow_requests, slow_queries, error_logs, log_lines,
                 trace_rows, debug_rows, info_rows, warn_rows, error_rows, fatal_rows)
         SELECT bucket, sum(requests), sum(errors_5xx), sum(slow_requests), sum(slow_queries),
                sum(error_logs), sum(log_lines), sum(trace_rows), sum(debug_rows), sum(info_rows),
                sum(warn_rows), sum(error_rows), sum(fatal_rows)
           FROM (SELECT date_bin('1 minute', ts, timestamptz '1970-01-01 00:00:00+00') AS bucket,
                        count(*) FILTER (WHERE direction = 'inbound') AS requests,
                        count(*) FILTER (WHERE direction = 'inbound' AND status >= 500) AS errors_5xx,
                        count(*) FILTER (WHERE duration_ms > 1000) AS slow_requests,
                        0::bigint AS slow_queries, 0::bigint AS error_logs, 0::bigint AS log_lines,
                        0::bigint AS trace_rows, 0::bigint AS debug_rows, 0::bigint AS info_rows,
                        0::bigint AS warn_rows, 0::bigint AS error_rows, 0::bigint AS fatal_rows
                   FROM opsdash.request_log WHERE ts >= $1 AND ts < $2 GROUP BY 1
                 UNION ALL
                 SELECT date_bin('1 minute', ts, timestamptz '1970-01-01 00:00:00+00'), 0, 0, 0,
                        coalesce(sum(calls) FILTER (WHERE duration_ms > 500), 0)::int8, 0, 0,
                        0, 0, 0, 0, 0, 0
                   FROM opsdash.query_log WHERE ts >= $1 AND ts < $2 GROUP BY 1
                 UNION ALL
                 -- Rows per level as model::Level::from_i16 maps them, for the Logs volume
                 -- histogram (migration 0062).
                 SELECT date_bin('1 minute', ts, timestamptz '1970-01-01 00:00:00+00'), 0, 0, 0, 0,
                        count(*) FILTER (WHERE level >= 4), coalesce(sum(repeat_count), 0),
                        count(*) FILTER (WHERE level <= 0), count(*) FILTER (WHERE level = 1),
                        count(*) FILTER (WHERE level = 2), count(*) FILTER (WHERE level = 3),
                        count(*) FILTER (WHERE level = 4), count(*) FILTER (WHERE level >= 5)
                   FROM opsdash.log_event WHERE ts >= $1 AND ts < $2 GROUP BY 1) t
          WHERE bucket >= now() - make_interval(days => $3)
          GROUP BY bucket",
    )
    .bind(lo)
    .bind(hi)
    .bind(KPI_KEPT_DAYS)
    .execute(&mut **tx)
    .await?;
    // Inner GROUP BY counts per latency bucket; hist_build folds them into one array.
    sqlx::query(
        "UPDATE opsdash.rollup_kpi_1m k SET latency_hist = h.hist
           FROM (SELECT bucket, opsdash.hist_build(lb, n) AS hist
                   FROM (SELECT date_bin('1 minute', ts, timestamptz '1970-01-01 00:00:00+00') AS bucket,
                                opsdash.latency_bucket(duration_ms) AS lb, count(*) AS n
                           FROM opsdash.request_log
                          WHERE ts >= greatest($1, now() - make_interval(hours => $3)) AND ts < $2
                            AND direction = 'inbound'
                          GROUP BY 1, 2) g
                  GROUP BY bucket) h
          WHERE k.bucket = h.bucket",
    )
    .bind(lo)
    .bind(hi)
    .bind(LATENCY_KEPT_HOURS)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO opsdash.rollup_users_1h (bucket, user_id)
         SELECT date_bin('1 hour', ts, timestamptz '1970-01-01 00:00:00+00'), user_id
           FROM opsdash.request_log
          WHERE ts >= greatest($1, now() - make_interval(days => $3)) AND ts < $2
            AND user_id IS NOT NULL
          GROUP BY 1, 2
         ON CONFLICT DO NOTHING",
    )
    .bind(lo)
    .bind(hi)
    .bind(USERS_KEPT_DAYS)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Drops KPI rollup rows older than the KPI tab reads.
pub async fn prune_kpi(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM opsdash.rollup_kpi_1m WHERE bucket < now() - make_interval(days => $1)",
    )
    .bind(KPI_KEPT_DAYS)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM opsdash.rollup_users_1h WHERE bucket < now() - make_interval(days => $1)",
    )
    .bind(USERS_KEPT_DAYS)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Rebuilds `tier` for buckets in `[lo, hi)` (aligned to the tier) from the next finer tier,
/// summing histograms element-wise on the server (`opsdash.hist_merge`).
pub async fn roll_tier(
    tx: &mut Transaction<'_, Postgres>,
    tier: Tier,
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
) -> sqlx::Result<()> {
    let (dst, src, step) = (tier.table(), tier.source(), tier.step());
    sqlx::query(&format!(
        "DELETE FROM {dst} WHERE bucket >= $1 AND bucket < $2"
    ))
    .bind(lo)
    .bind(hi)
    .execute(&mut **tx)
    .await?;
    // Table names and steps are the constants above, never user input.
    sqlx::query(&format!(
        "INSERT INTO {dst}
                (bucket, service, route, direction, requests, err_4xx, err_5xx, bytes, dur_sum, dur_max, hist)
         SELECT date_bin('{step}', bucket, timestamptz '1970-01-01 00:00:00+00'), service, route, direction,
                sum(requests), sum(err_4xx), sum(err_5xx), sum(bytes), sum(dur_sum), max(dur_max),
                coalesce(opsdash.hist_merge(hist)::integer[], '{{}}')
           FROM {src} WHERE bucket >= $1 AND bucket < $2
          GROUP BY 1, 2, 3, 4"
    ))
    .bind(lo)
    .bind(hi)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
