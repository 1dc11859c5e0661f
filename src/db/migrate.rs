//! Schema migrations, embedded in the binary and applied at start-up.

use anyhow::{Context, Result};
use sqlx::PgPool;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Applies pending migrations; a no-op when the schema is current. Concurrent callers are
/// serialized by sqlx's advisory lock.
pub async fn run(pool: &PgPool) -> Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("applying database migrations")?;
    Ok(())
}

/// The newest migration this build carries.
pub fn latest() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Applies pending migrations through a transaction-mode pooler, where sqlx's session advisory
/// lock cannot work: its lock and unlock may reach different server connections, leaving the
/// lock held on one that the next start is handed, which then waits for ever. Unlocked,
/// concurrent first starts can both try a pending migration; the loser fails in one line
/// (the migration already exists) and its next start finds the schema current.
pub async fn run_without_session_lock(pool: &PgPool) -> Result<()> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_locking(false);
    migrator
        .run(pool)
        .await
        .context("applying database migrations")?;
    Ok(())
}
