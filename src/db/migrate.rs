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
