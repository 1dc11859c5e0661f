//! Data for the TUI header: open alerts by severity and which worker jobs this instance leads.

use anyhow::Result;

use crate::db::topology::ReplicaStatus;
use crate::db::Db;
use crate::query::alerts::{open_counts, OpenCounts};

/// Open-alert counts and worker leadership, as the header shows them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderStatus {
    /// The one definition of open alerts (`query::alerts::open_counts`).
    pub alerts: OpenCounts,
    /// Jobs whose live lease is held by this instance.
    pub jobs_led: i64,
    /// Jobs with a lease row at all.
    pub jobs_total: i64,
    /// The read replica's lag, or that reads fell back to the primary (`db::topology`).
    pub replica: Option<ReplicaStatus>,
}

pub async fn header(db: &Db, instance: &str) -> Result<HeaderStatus> {
    let alerts = open_counts(&db.read).await?;
    let row: (i64, i64) = sqlx::query_as(
        "SELECT
           (SELECT count(*) FROM opsdash.worker_lease
             WHERE holder = $1 AND (expires_at IS NULL OR expires_at > now())),
           (SELECT count(*) FROM opsdash.worker_lease)",
    )
    .bind(instance)
    .fetch_one(&db.read)
    .await?;
    Ok(HeaderStatus {
        alerts,
        jobs_led: row.0,
        jobs_total: row.1,
        replica: db.topology.replica_status(),
    })
}

/// The cheapest round trip, for the header's connection state and RTT.
pub async fn ping(pool: &sqlx::PgPool) -> Result<()> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}
