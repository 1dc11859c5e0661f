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
