//! Data for the TUI header: firing alerts by severity and which worker jobs this instance leads.

use anyhow::Result;

use crate::db::Db;

/// Firing-alert counts and worker leadership, as the header shows them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderStatus {
    pub critical: i64,
    pub error: i64,
    pub warning: i64,
    pub info: i64,
    /// Jobs whose live lease is held by this instance.
    pub jobs_led: i64,
    /// Jobs with a lease row at all.
    pub jobs_total: i64,
}

pub async fn header(db: &Db, instance: &str) -> Result<HeaderStatus> {
    let row: (i64, i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT
           (SELECT count(*) FROM opsdash.alert WHERE state = 'firing' AND severity = 'critical'),
           (SELECT count(*) FROM opsdash.alert WHERE state = 'firing' AND severity = 'error'),
           (SELECT count(*) FROM opsdash.alert WHERE state = 'firing' AND severity = 'warning'),
           (SELECT count(*) FROM opsdash.alert WHERE state = 'firing' AND severity = 'info'),
           (SELECT count(*) FROM opsdash.worker_lease
             WHERE holder = $1 AND (expires_at IS NULL OR expires_at > now())),
           (SELECT count(*) FROM opsdash.worker_lease)",
    )
    .bind(instance)
    .fetch_one(&db.read)
    .await?;
    Ok(HeaderStatus {
        critical: row.0,
        error: row.1,
        warning: row.2,
        info: row.3,
        jobs_led: row.4,
        jobs_total: row.5,
    })
}

/// The cheapest round trip, for the header's connection state and RTT.
pub async fn ping(pool: &sqlx::PgPool) -> Result<()> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}
