//! The `log_seal` job (issue 19): builds each log_event day's search indexes once the day has
//! ended and stopped receiving rows, then forgets the block summaries no unsealed day needs.
//!
//! Until a day is sealed its rows are searched through their blocks (`query::log_block`); the
//! indexes would cost most of every row's write while the day is written. A day is ready
//! [`GRACE`] after its end when no block was written into it for as long (lines still arriving
//! late keep it open). The build runs in one transaction that takes rows meanwhile only after
//! it (a late line waits for it), under a lock timeout: a day being written now is tried again
//! on the next run. Days that ended long ago (a restored archive, a backfill) are sealed the same
//! way once their writes stop.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::db::Db;
use crate::query::log_block as q;
use crate::worker::Job;

pub const JOB_NAME: &str = "log_seal";
pub const INTERVAL: Duration = Duration::from_secs(60);
/// How long after its end, and after its last write, a day is sealed.
pub const GRACE: Duration = Duration::from_secs(5 * 60);
/// The longest the build waits for a writer holding the day.
const LOCK_WAIT: Duration = Duration::from_secs(5);

pub fn job() -> Job {
    Job::new(JOB_NAME, INTERVAL, |ctx| async move {
        run_once(&ctx.db, GRACE).await.map(|_| ())
    })
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealReport {
    /// Partitions sealed, oldest first.
    pub sealed: Vec<String>,
    /// Blocks forgotten.
    pub forgotten: u64,
}

/// One run: seals every ready day (`grace` as [`GRACE`]; the benches and tests pass zero),
/// then forgets the blocks of sealed days. A day whose build times out waiting for a writer
/// is left for the next run.
pub async fn run_once(db: &Db, grace: Duration) -> Result<SealReport> {
    let mut conn = db.write.acquire().await.context("log_seal: connecting")?;
    let mut report = SealReport::default();
    for part in q::ready_to_seal(&mut conn, grace).await? {
        match q::seal(&mut conn, &part, LOCK_WAIT).await {
            Ok(()) => report.sealed.push(part),
            // 55P03 lock_not_available: rows are being written into the day.
            Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("55P03") => {}
            Err(e) => return Err(e).with_context(|| format!("sealing {part}")),
        }
    }
    report.forgotten = q::forget_sealed(&mut conn).await?;
    Ok(report)
}
