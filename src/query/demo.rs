//! SQL of the demo's writer: its coverage records (what time the demo already filled, so a
//! restart never writes a window twice), the passive services it reports, and the partitions of
//! a backfill window. Error groups and the tail's NOTIFY go through the ingest queries, as for
//! any other writer.

use anyhow::{Context, Result};
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgConnection;

/// Windows `[from, to)` of the demo's coverage records overlapping `[from, to)`.
pub async fn covered(
    conn: &mut PgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
    sqlx::query_as(
        "SELECT covered_from, covered_to FROM opsdash.demo_coverage \
         WHERE covered_to > $1 AND covered_from < $2 ORDER BY covered_from",
    )
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await
    .context("reading what the demo already wrote")
}

/// Records a new window of `kind` (backfill or live) and returns its id.
pub async fn add_coverage(
    conn: &mut PgConnection,
    kind: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    requests: i64,
) -> Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO opsdash.demo_coverage (kind, covered_from, covered_to, requests) \
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(kind)
    .bind(from)
    .bind(to)
    .bind(requests)
    .fetch_one(conn)
    .await
    .context("recording demo coverage")
}

/// Extends the live window `id` to `to`.
pub async fn extend_coverage(
    conn: &mut PgConnection,
    id: i64,
    to: DateTime<Utc>,
    requests: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE opsdash.demo_coverage SET covered_to = greatest(covered_to, $2), \
         requests = requests + $3, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(to)
    .bind(requests)
    .execute(conn)
    .await
    .context("recording demo coverage")?;
    Ok(())
}

/// The last check of one demo service.
#[derive(Debug, Clone)]
pub struct ServiceCheck<'a> {
    pub name: &'a str,
    pub ts: DateTime<Utc>,
    pub status: &'a str,
    pub response_ms: Option<f64>,
    pub detail: Option<&'a str>,
}

/// Upserts the demo's services as passive ones (their state comes with the traffic, not from
/// a probe). An older check never overwrites a newer one (backfill slices arrive newest first).
pub async fn upsert_services(
    conn: &mut PgConnection,
    checks: &[ServiceCheck<'_>],
    interval_s: i32,
) -> Result<()> {
    if checks.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
    let ts: Vec<DateTime<Utc>> = checks.iter().map(|c| c.ts).collect();
    let status: Vec<&str> = checks.iter().map(|c| c.status).collect();
    let ms: Vec<Option<f64>> = checks.iter().map(|c| c.response_ms).collect();
    let detail: Vec<Option<&str>> = checks.iter().map(|c| c.detail).collect();
    sqlx::query(
        "INSERT INTO opsdash.service AS s \
             (name, kind, target, interval_s, status, last_check, last_response_ms, last_detail) \
         SELECT n, 'passive', 'opsdash demo', $6, st, t, ms, d \
           FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::float8[], $5::text[]) \
                AS u(n, t, st, ms, d) \
         ON CONFLICT (name) DO UPDATE SET status = EXCLUDED.status, \
             last_check = EXCLUDED.last_check, last_response_ms = EXCLUDED.last_response_ms, \
             last_detail = EXCLUDED.last_detail, updated_at = now() \
         WHERE s.last_check IS NULL OR s.last_check <= EXCLUDED.last_check",
    )
    .bind(&names)
    .bind(&ts)
    .bind(&status)
    .bind(&ms)
    .bind(&detail)
    .bind(interval_s)
    .execute(conn)
    .await
    .context("updating demo services")?;
    Ok(())
}

/// Makes sure the daily partitions of every time-series table exist for `[from, to]` (a day
/// early too: a request's start can precede the window it was generated for).
pub async fn ensure_partitions(
    conn: &mut PgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("SELECT opsdash.ensure_partitions($1, $2)")
        .bind((from - TimeDelta::days(1)).date_naive())
        .bind((to + TimeDelta::days(1)).date_naive())
        .execute(conn)
        .await
        .context("creating the demo's daily partitions")?;
    Ok(())
}
