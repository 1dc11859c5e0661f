//! The database side of `GET /metrics`: outbox depth and dead letters, the worker's jobs as
//! their lease rows show them, and open alerts by state. Each query reads a small table or an
//! index, so a scrape every few seconds costs little.

use anyhow::Result;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// Notification outbox messages per status (pending, sending, dead), delivered ones left out.
pub async fn outbox(pool: &PgPool) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT status, count(*) FROM opsdash.notification
          WHERE status IN ('pending', 'sending', 'dead')
          GROUP BY status ORDER BY status",
    )
    .fetch_all(pool)
    .await?)
}

/// One worker job as its lease row tells it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub job: String,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_ok_at: Option<DateTime<Utc>>,
    /// The last run failed (its error is on the row).
    pub failing: bool,
}

pub async fn jobs(pool: &PgPool) -> Result<Vec<JobRow>> {
    Ok(sqlx::query_as(
        "SELECT job, last_run_at, last_ok_at, last_error IS NOT NULL AS failing
           FROM opsdash.worker_lease ORDER BY job",
    )
    .fetch_all(pool)
    .await?)
}

/// Alerts not resolved, per state and severity (the resolved ones are history, counted by
/// nobody's pager).
pub async fn alerts(pool: &PgPool) -> Result<Vec<(String, String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT state, severity, count(*) FROM opsdash.alert
          WHERE state <> 'resolved' GROUP BY state, severity ORDER BY state, severity",
    )
    .fetch_all(pool)
    .await?)
}

/// The receiver's cheap probe of the primary: does it answer at all.
pub async fn ping(pool: &PgPool) -> Result<()> {
    sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(pool)
        .await?;
    Ok(())
}
