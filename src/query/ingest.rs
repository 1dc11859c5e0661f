//! SQL of the ingest pipeline: partitions, repeat counts of de-duplicated rows, error groups,
//! ingest statistics and the NOTIFY that wakes the live tail. The bulk rows themselves go in
//! with COPY (see `ingest::writer`).

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;

/// Creates the daily partitions of `tables` for `days` (moving rows of those days out of the
/// default partition).
pub async fn ensure_partitions(
    conn: &mut PgConnection,
    tables: &[&str],
    days: &[NaiveDate],
) -> Result<()> {
    let tables: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
    sqlx::query(
        "SELECT count(opsdash.ensure_partition(t, d))
           FROM unnest($1::text[]) AS t, unnest($2::date[]) AS d",
    )
    .bind(&tables)
    .bind(days)
    .execute(conn)
    .await
    .context("creating daily partitions")?;
    Ok(())
}

/// Makes the current transaction's commit wait for the WAL flush, whatever the session's
/// `synchronous_commit` says.
pub async fn durable_commit(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("SET LOCAL synchronous_commit = on")
        .execute(conn)
        .await
        .context("making the batch's commit durable")?;
    Ok(())
}

/// Repeats of rows written by an earlier batch. A row is identified by its writing transaction
/// plus its key: de-duplication guarantees one row per key and timestamp in a transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct RepeatDelta {
    pub ts: DateTime<Utc>,
    pub tx: String,
    pub service: String,
    pub level: i16,
    pub message: String,
    pub add: i32,
}

pub async fn add_repeats(conn: &mut PgConnection, rows: &[RepeatDelta]) -> Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let ts: Vec<DateTime<Utc>> = rows.iter().map(|r| r.ts).collect();
    let tx: Vec<&str> = rows.iter().map(|r| r.tx.as_str()).collect();
    let service: Vec<&str> = rows.iter().map(|r| r.service.as_str()).collect();
    let level: Vec<i16> = rows.iter().map(|r| r.level).collect();
    let message: Vec<&str> = rows.iter().map(|r| r.message.as_str()).collect();
    let add: Vec<i32> = rows.iter().map(|r| r.add).collect();
    let done = sqlx::query(
        "UPDATE opsdash.log_event e SET repeat_count = e.repeat_count + f.add
           FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::smallint[], $5::text[],
                       $6::int[]) AS f(ts, tx, service, level, message, add)
          WHERE e.ts = f.ts AND e.tx = f.tx::xid8 AND e.service = f.service
            AND e.level = f.level AND e.message = f.message",
    )
    .bind(&ts)
    .bind(&tx)
    .bind(&service)
    .bind(&level)
    .bind(&message)
    .bind(&add)
    .execute(conn)
    .await
    .context("updating repeat counts")?;
    Ok(done.rows_affected())
}

/// One batch's occurrences of one error group.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorGroupDelta {
    pub fingerprint: String,
    pub service: String,
    pub error_type: Option<String>,
    pub sample_message: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub count: i64,
}

/// Upserts the batch's error groups in one statement. A resolved group that occurs again
/// (after it was resolved) is flagged `regressed` and goes back to `new`. Rows are taken in
/// fingerprint order so concurrent ingests lock groups in the same order (no deadlock).
pub async fn upsert_error_groups(
    conn: &mut PgConnection,
    groups: &[ErrorGroupDelta],
) -> Result<()> {
    if groups.is_empty() {
        return Ok(());
    }
    let fp: Vec<&str> = groups.iter().map(|g| g.fingerprint.as_str()).collect();
    let service: Vec<&str> = groups.iter().map(|g| g.service.as_str()).collect();
    let error_type: Vec<Option<&str>> = groups.iter().map(|g| g.error_type.as_deref()).collect();
    let sample: Vec<&str> = groups.iter().map(|g| g.sample_message.as_str()).collect();
    let first: Vec<DateTime<Utc>> = groups.iter().map(|g| g.first_seen).collect();
    let last: Vec<DateTime<Utc>> = groups.iter().map(|g| g.last_seen).collect();
    let count: Vec<i64> = groups.iter().map(|g| g.count).collect();
    sqlx::query(
        "INSERT INTO opsdash.error_group AS g
                (fingerprint, service, error_type, sample_message, first_seen, last_seen, count)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                              $5::timestamptz[], $6::timestamptz[], $7::bigint[])
          ORDER BY 1
         ON CONFLICT (fingerprint) DO UPDATE SET
             count = g.count + EXCLUDED.count,
             first_seen = LEAST(g.first_seen, EXCLUDED.first_seen),
             last_seen = GREATEST(g.last_seen, EXCLUDED.last_seen),
             sample_message = CASE WHEN EXCLUDED.last_seen >= g.last_seen
                                   THEN EXCLUDED.sample_message ELSE g.sample_message END,
             error_type = COALESCE(g.error_type, EXCLUDED.error_type),
             regressed = g.regressed OR (g.status = 'resolved'
                         AND EXCLUDED.last_seen > COALESCE(g.resolved_at, '-infinity')),
             status = CASE WHEN g.status = 'resolved'
                                AND EXCLUDED.last_seen > COALESCE(g.resolved_at, '-infinity')
                           THEN 'new' ELSE g.status END,
             updated_at = now()",
    )
    .bind(&fp)
    .bind(&service)
    .bind(&error_type)
    .bind(&sample)
    .bind(&first)
    .bind(&last)
    .bind(&count)
    .execute(conn)
    .await
    .context("updating error groups")?;
    Ok(())
}

/// Records which users an error group affected and counts the users new to each group. Only
/// rows actually inserted are counted, so concurrent ingests never count a user twice.
pub async fn add_error_group_users(
    conn: &mut PgConnection,
    pairs: &[(String, String)],
) -> Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let fp: Vec<&str> = pairs.iter().map(|p| p.0.as_str()).collect();
    let user: Vec<&str> = pairs.iter().map(|p| p.1.as_str()).collect();
    sqlx::query(
        "WITH added AS (
             INSERT INTO opsdash.error_group_user (fingerprint, user_id)
             SELECT DISTINCT f, u FROM unnest($1::text[], $2::text[]) AS x(f, u) ORDER BY 1, 2
             ON CONFLICT DO NOTHING
             RETURNING fingerprint)
         UPDATE opsdash.error_group g SET affected_users = g.affected_users + a.n
           FROM (SELECT fingerprint, count(*) AS n FROM added GROUP BY fingerprint) a
          WHERE g.fingerprint = a.fingerprint",
    )
    .bind(&fp)
    .bind(&user)
    .execute(conn)
    .await
    .context("updating affected users")?;
    Ok(())
}

/// One row per flush, for the KPI tab's ingest rate.
pub async fn record_stat(
    conn: &mut PgConnection,
    source: &str,
    rows: i64,
    rejected: i64,
    folded: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO opsdash.ingest_stat (source, rows, rejected, folded) VALUES ($1, $2, $3, $4)",
    )
    .bind(source)
    .bind(rows)
    .bind(rejected)
    .bind(folded)
    .execute(conn)
    .await
    .context("recording ingest statistics")?;
    Ok(())
}

/// Queues the batch's one NOTIFY (delivered at commit) and returns the writing transaction id,
/// which identifies the batch's rows later (repeat counts).
pub async fn notify_logs(conn: &mut PgConnection, payload: &str) -> Result<String> {
    let (tx,): (String,) =
        sqlx::query_as("SELECT pg_current_xact_id()::text FROM (SELECT pg_notify($1, $2)) AS n")
            .bind(crate::db::LOGS_CHANNEL)
            .bind(payload)
            .fetch_one(conn)
            .await
            .context("notifying listeners")?;
    Ok(tx)
}
