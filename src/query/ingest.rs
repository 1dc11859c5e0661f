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

/// Repeats of rows written by an earlier batch. A row is identified by its writing transaction,
/// its time and every one of its columns: de-duplication guarantees one row per event and time
/// in a transaction, and two different events may share everything but one attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct RepeatDelta {
    pub ts: DateTime<Utc>,
    /// Time of the latest repeat, for `last_seen`.
    pub last: DateTime<Utc>,
    pub tx: String,
    pub row: crate::ingest::record::LogRecord,
    pub add: i32,
}

pub async fn add_repeats(conn: &mut PgConnection, rows: &[RepeatDelta]) -> Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let col =
        |f: fn(&RepeatDelta) -> Option<&str>| -> Vec<Option<&str>> { rows.iter().map(f).collect() };
    let ts: Vec<DateTime<Utc>> = rows.iter().map(|r| r.ts).collect();
    let last: Vec<DateTime<Utc>> = rows.iter().map(|r| r.last).collect();
    let tx: Vec<&str> = rows.iter().map(|r| r.tx.as_str()).collect();
    let level: Vec<i16> = rows.iter().map(|r| r.row.level.as_i16()).collect();
    let service = col(|r| Some(r.row.service.as_str()));
    let host = col(|r| r.row.host.as_deref());
    let message = col(|r| Some(r.row.message.as_str()));
    let trace_id = col(|r| r.row.trace_id.as_deref());
    let span_id = col(|r| r.row.span_id.as_deref());
    let request_id = col(|r| r.row.request_id.as_deref());
    let user_id = col(|r| r.row.user_id.as_deref());
    let route = col(|r| r.row.route.as_deref());
    let method = col(|r| r.row.method.as_deref());
    let status: Vec<Option<i16>> = rows.iter().map(|r| r.row.status).collect();
    let duration: Vec<Option<f64>> = rows.iter().map(|r| r.row.duration_ms).collect();
    let ip = col(|r| r.row.ip.as_deref());
    let user_agent = col(|r| r.row.user_agent.as_deref());
    let error_type = col(|r| r.row.error_type.as_deref());
    let attrs: Vec<Option<String>> = rows
        .iter()
        .map(|r| r.row.attrs.as_ref().map(|a| a.to_string()))
        .collect();
    let fingerprint = col(|r| r.row.fingerprint.as_deref());
    let add: Vec<i32> = rows.iter().map(|r| r.add).collect();
    // Through a function running with the owner's rights: matching the rows takes SELECT on
    // log_event, which the ingest role does not have (migrations/0021_roles.sql).
    let done: i64 = sqlx::query_scalar(
        "SELECT opsdash.add_log_repeats($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                                        $14, $15, $16, $17, $18, $19, $20, $21)",
    )
    .bind(&ts)
    .bind(&tx)
    .bind(&level)
    .bind(&service)
    .bind(&host)
    .bind(&message)
    .bind(&trace_id)
    .bind(&span_id)
    .bind(&request_id)
    .bind(&user_id)
    .bind(&route)
    .bind(&method)
    .bind(&status)
    .bind(&duration)
    .bind(&ip)
    .bind(&user_agent)
    .bind(&error_type)
    .bind(&attrs)
    .bind(&fingerprint)
    .bind(&add)
    .bind(&last)
    .fetch_one(conn)
    .await
    .context("updating repeat counts")?;
    Ok(done.max(0) as u64)
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

/// One flush's accounting: `lines = events + joined + folded + rejected + blank`, rows per
/// table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestStat {
    pub lines: i64,
    pub events: i64,
    pub folded: i64,
    pub rejected: i64,
    pub blank: i64,
    /// Continuation lines of multi-line events.
    pub joined: i64,
    pub log_rows: i64,
    pub request_rows: i64,
    /// Rows of `query_log` and `audit_event` (counted in `rows` only).
    pub other_rows: i64,
    /// Rows stored already outside their table's retention period.
    pub old_rows: i64,
}

/// One row per flush, for the KPI tab's ingest rate and the proof that no line was lost.
pub async fn record_stat(conn: &mut PgConnection, source: &str, s: &IngestStat) -> Result<()> {
    sqlx::query(
        "INSERT INTO opsdash.ingest_stat (source, rows, rejected, folded, lines, events, blank,
                                          log_rows, request_rows, old_rows, joined)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(source)
    .bind(s.log_rows + s.request_rows + s.other_rows)
    .bind(s.rejected)
    .bind(s.folded)
    .bind(s.lines)
    .bind(s.events)
    .bind(s.blank)
    .bind(s.log_rows)
    .bind(s.request_rows)
    .bind(s.old_rows)
    .bind(s.joined)
    .execute(conn)
    .await
    .context("recording ingest statistics")?;
    Ok(())
}

/// Holds the (table, partition) pairs from the retention job until `until` (`ingest --keep`),
/// in the batch's transaction: rows already outside the retention period are stored and held
/// together. An existing hold is only ever extended.
pub async fn hold_partitions(
    conn: &mut PgConnection,
    holds: &[(&str, String)],
    until: DateTime<Utc>,
    source: &str,
) -> Result<()> {
    if holds.is_empty() {
        return Ok(());
    }
    let table: Vec<&str> = holds.iter().map(|h| h.0).collect();
    let partition: Vec<&str> = holds.iter().map(|h| h.1.as_str()).collect();
    sqlx::query(
        "INSERT INTO opsdash.retention_hold AS h (partition, table_name, until, reason)
         SELECT p, t, $3, $4 FROM unnest($1::text[], $2::text[]) AS x(t, p) ORDER BY p
         ON CONFLICT (partition) DO UPDATE SET until = GREATEST(h.until, EXCLUDED.until),
             reason = CASE WHEN EXCLUDED.until > h.until THEN EXCLUDED.reason ELSE h.reason END",
    )
    .bind(&table)
    .bind(&partition)
    .bind(until)
    .bind(format!("opsdash ingest --keep ({source})"))
    .execute(conn)
    .await
    .context("holding old partitions from retention")?;
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
