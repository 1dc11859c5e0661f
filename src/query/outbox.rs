//! When the notification outbox next needs the notifier (`notify::job` sleeps until then unless
//! woken, see `worker::wake`).

use std::time::Duration;

use anyhow::Result;
use sqlx::PgPool;

/// Time until the soonest message to send or retry (zero when one is due), None when the
/// outbox holds nothing to send.
pub async fn next_due_in(pool: &PgPool) -> Result<Option<Duration>> {
    // Clamped here: greatest() in SQL skips NULLs, so an empty outbox would read as "due now".
    let secs: Option<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM min(next_attempt_at) - clock_timestamp())::float8
           FROM opsdash.notification WHERE status IN ('pending', 'sending')",
    )
    .fetch_one(pool)
    .await?;
    Ok(secs.map(|s| Duration::from_secs_f64(s.max(0.0))))
}
