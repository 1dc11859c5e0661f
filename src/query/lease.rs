//! Job leases in `opsdash.worker_lease`: one row per job, held by one instance until it stops
//! renewing. Taking a lease over from another holder bumps `epoch`; leader writes carry the epoch
//! and are refused once the lease moved (fencing), so a stalled leader that wakes up late cannot
//! overwrite the work of its successor.

use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};

/// A write was refused because this instance no longer holds the job's lease at that epoch.
#[derive(Debug, thiserror::Error)]
#[error("lease of job {job} moved on (our epoch {epoch} is stale): write refused")]
pub struct Fenced {
    pub job: String,
    pub epoch: i64,
}

/// Acquires the lease of `job` for `holder` when it is free, expired, or already ours, and
/// extends it by `ttl`. Returns the epoch we hold, or `None` when another instance holds it.
pub async fn acquire(pool: &PgPool, job: &str, holder: &str, ttl: Duration) -> Result<Option<i64>> {
    let row: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO opsdash.worker_lease AS l (job, holder, epoch, acquired_at, expires_at, updated_at)
         VALUES ($1, $2, 1, now(), clock_timestamp() + $3 * interval '1 millisecond', now())
         ON CONFLICT (job) DO UPDATE SET
             epoch = CASE WHEN l.holder = excluded.holder THEN l.epoch ELSE l.epoch + 1 END,
             acquired_at = CASE WHEN l.holder = excluded.holder THEN l.acquired_at ELSE now() END,
             holder = excluded.holder,
             expires_at = excluded.expires_at,
             updated_at = now()
         WHERE l.holder = excluded.holder OR l.holder IS NULL OR l.expires_at < clock_timestamp()
         RETURNING l.epoch",
    )
    .bind(job)
    .bind(holder)
    .bind(ttl.as_millis() as f64)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| r.0))
}

/// Extends a lease we hold at `epoch`. `false` means it is no longer ours (expired and taken).
pub async fn renew(
    pool: &PgPool,
    job: &str,
    holder: &str,
    epoch: i64,
    ttl: Duration,
) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE opsdash.worker_lease
            SET expires_at = clock_timestamp() + $4 * interval '1 millisecond', updated_at = now()
          WHERE job = $1 AND holder = $2 AND epoch = $3",
    )
    .bind(job)
    .bind(holder)
    .bind(epoch)
    .bind(ttl.as_millis() as f64)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Gives a lease up at shutdown so another instance takes over at once instead of after the TTL.
pub async fn release(pool: &PgPool, job: &str, holder: &str, epoch: i64) -> Result<()> {
    sqlx::query(
        "UPDATE opsdash.worker_lease SET holder = NULL, expires_at = now(), updated_at = now()
          WHERE job = $1 AND holder = $2 AND epoch = $3",
    )
    .bind(job)
    .bind(holder)
    .bind(epoch)
    .execute(pool)
    .await?;
    Ok(())
}

/// The fence for a leader write: call it first inside the transaction that writes. It takes a
/// share lock on the lease row, so a takeover (which updates the row) waits until this
/// transaction ends, and it fails with [`Fenced`] when the lease is not ours at `epoch` or has
/// expired.
pub async fn fence<'e>(conn: impl PgExecutor<'e>, job: &str, epoch: i64) -> Result<()> {
    let ok: Option<(i32,)> = sqlx::query_as(
        "SELECT 1 FROM opsdash.worker_lease
          WHERE job = $1 AND epoch = $2 AND holder IS NOT NULL AND expires_at > clock_timestamp()
          FOR SHARE",
    )
    .bind(job)
    .bind(epoch)
    .fetch_optional(conn)
    .await?;
    match ok {
        Some(_) => Ok(()),
        None => Err(Fenced {
            job: job.to_string(),
            epoch,
        }
        .into()),
    }
}

/// Schedule bookkeeping of a job, as shown by `opsdash worker` and the TUI.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LeaseRow {
    pub job: String,
    pub holder: Option<String>,
    pub epoch: i64,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub last_ok_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

pub async fn list(pool: &PgPool) -> Result<Vec<LeaseRow>> {
    Ok(sqlx::query_as(
        "SELECT job, holder, epoch, expires_at, last_run_at, next_run_at, last_ok_at, last_error
           FROM opsdash.worker_lease ORDER BY job",
    )
    .fetch_all(pool)
    .await?)
}

/// When the job is next due (None: never ran, so due now).
pub async fn next_run(pool: &PgPool, job: &str) -> Result<Option<DateTime<Utc>>> {
    let row: Option<(Option<DateTime<Utc>>,)> =
        sqlx::query_as("SELECT next_run_at FROM opsdash.worker_lease WHERE job = $1")
            .bind(job)
            .fetch_optional(pool)
            .await?;
    Ok(row.and_then(|r| r.0))
}

/// Marks the start of a run, schedules the next one and extends the lease by a full `ttl`.
/// Refused (false) unless we still hold the lease at `epoch` and it has not expired: a process
/// that stalled between taking the lease and starting the run must not start it, because another
/// instance may have taken over meanwhile. The fresh TTL gives the run a whole lease period
/// before the first renewal is due. `previous_ok`: the runs since the last recorded outcome
/// succeeded (a job faster than the lease poll records its successes this way, see the
/// scheduler's `Bookkeeping`): `last_ok_at` moves to now.
pub async fn record_start(
    pool: &PgPool,
    job: &str,
    holder: &str,
    epoch: i64,
    interval: Duration,
    ttl: Duration,
    previous_ok: bool,
) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE opsdash.worker_lease
            SET last_run_at = now(), next_run_at = now() + $4 * interval '1 millisecond',
                expires_at = clock_timestamp() + $5 * interval '1 millisecond',
                last_ok_at = CASE WHEN $6 THEN now() ELSE last_ok_at END,
                updated_at = now()
          WHERE job = $1 AND holder = $2 AND epoch = $3 AND expires_at > clock_timestamp()",
    )
    .bind(job)
    .bind(holder)
    .bind(epoch)
    .bind(interval.as_millis() as f64)
    .bind(ttl.as_millis() as f64)
    .bind(previous_ok)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Records the outcome of a run, fenced by epoch.
pub async fn record_outcome(
    pool: &PgPool,
    job: &str,
    epoch: i64,
    error: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE opsdash.worker_lease
            SET last_ok_at = CASE WHEN $3::text IS NULL THEN now() ELSE last_ok_at END,
                last_error = $3, updated_at = now()
          WHERE job = $1 AND epoch = $2",
    )
    .bind(job)
    .bind(epoch)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Heartbeat of a running instance.
pub async fn heartbeat(pool: &PgPool, instance: &str) -> Result<()> {
    let host = instance.split(':').next().unwrap_or("");
    sqlx::query(
        "INSERT INTO opsdash.worker_instance (instance, host, pid) VALUES ($1, $2, $3)
         ON CONFLICT (instance) DO UPDATE SET last_seen = now()",
    )
    .bind(instance)
    .bind(host)
    .bind(std::process::id() as i32)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn forget_instance(pool: &PgPool, instance: &str) -> Result<()> {
    sqlx::query("DELETE FROM opsdash.worker_instance WHERE instance = $1")
        .bind(instance)
        .execute(pool)
        .await?;
    Ok(())
}

/// How long until the job is next due (zero when due or never run).
pub async fn due_in(pool: &PgPool, job: &str) -> Result<Duration> {
    let ms: Option<(f64,)> = sqlx::query_as(
        "SELECT greatest(0, extract(epoch FROM next_run_at - clock_timestamp()) * 1000)::float8
           FROM opsdash.worker_lease WHERE job = $1 AND next_run_at IS NOT NULL",
    )
    .bind(job)
    .fetch_optional(pool)
    .await?;
    Ok(Duration::from_millis(ms.map(|r| r.0 as u64).unwrap_or(0)))
}
