//! The notification outbox: messages waiting for their group, claimed by the notifier, their
//! attempts and dead letters; and when the notifier next needs to wake (`notify::job` sleeps
//! until then unless woken, see `worker::wake`).

use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};

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

/// Puts an alert into a message for `channel`: appended to a message of the same group still
/// waiting for its group to fill, else a new message sent after `group_wait`. Returns the
/// message id, or None when the hourly cap of the rule on this channel is reached.
#[allow(clippy::too_many_arguments)]
pub async fn enqueue(
    conn: &mut PgConnection,
    rule_id: i64,
    max_per_hour: i32,
    channel: &str,
    kind: &str,
    group_key: &str,
    alert_id: i64,
    snapshot: &Value,
    group_wait: Duration,
) -> Result<Option<i64>> {
    let appended: Option<i64> = sqlx::query_scalar(
        "UPDATE opsdash.notification
            SET payload = jsonb_set(jsonb_set(payload, '{alerts}', (payload -> 'alerts') || $4),
                                    '{alert_ids}', (payload -> 'alert_ids') || to_jsonb($5::bigint))
          WHERE channel = $1 AND group_key = $2 AND kind = $3 AND status = 'pending'
            AND attempts = 0 AND next_attempt_at > now()
            AND NOT (payload -> 'alert_ids') @> to_jsonb($5::bigint)
          RETURNING id",
    )
    .bind(channel)
    .bind(group_key)
    .bind(kind)
    .bind(Json(json!([snapshot])))
    .bind(alert_id)
    .fetch_optional(&mut *conn)
    .await?;
    if appended.is_some() {
        return Ok(appended);
    }
    if kind != "resolved" {
        let sent: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM opsdash.notification
              WHERE rule_id = $1 AND channel = $2 AND created_at > now() - interval '1 hour'
                AND kind <> 'resolved'",
        )
        .bind(rule_id)
        .bind(channel)
        .fetch_one(&mut *conn)
        .await?;
        if sent >= max_per_hour as i64 {
            return Ok(None);
        }
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO opsdash.notification
             (alert_id, rule_id, channel, kind, group_key, idempotency_key, payload, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now() + $8 * interval '1 millisecond')
         RETURNING id",
    )
    .bind(alert_id)
    .bind(rule_id)
    .bind(channel)
    .bind(kind)
    .bind(group_key)
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(Json(json!({
        "kind": kind,
        "group_key": group_key,
        "alert_ids": [alert_id],
        "alerts": [snapshot],
    })))
    .bind(group_wait.as_millis() as f64)
    .fetch_one(conn)
    .await?;
    Ok(Some(id))
}

/// A message claimed for sending.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: i64,
    pub channel: String,
    pub kind: String,
    pub group_key: Option<String>,
    pub idempotency_key: String,
    pub payload: Json<Value>,
    pub attempts: i32,
}

/// Claims due messages (`FOR UPDATE SKIP LOCKED`, so concurrent senders never take the same
/// one). A claimed message not finished within `reclaim_after` (its sender died) is due again.
pub async fn claim(pool: &PgPool, limit: i64, reclaim_after: Duration) -> Result<Vec<Claimed>> {
    Ok(sqlx::query_as(
        "UPDATE opsdash.notification n
            SET status = 'sending', attempts = n.attempts + 1,
                next_attempt_at = now() + $2 * interval '1 millisecond'
          WHERE n.id IN (SELECT id FROM opsdash.notification
                          WHERE status IN ('pending', 'sending') AND next_attempt_at <= now()
                          ORDER BY next_attempt_at, id
                          LIMIT $1 FOR UPDATE SKIP LOCKED)
          RETURNING n.id, n.channel, n.kind, n.group_key, n.idempotency_key, n.payload, n.attempts",
    )
    .bind(limit)
    .bind(reclaim_after.as_millis() as f64)
    .fetch_all(pool)
    .await?)
}

/// Result of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered,
    Retry { after: Duration },
    Dead,
}

pub async fn record_attempt(
    pool: &PgPool,
    id: i64,
    http_status: Option<i32>,
    error: Option<&str>,
    duration: Duration,
    outcome: &Outcome,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO opsdash.notification_attempt (notification_id, http_status, error, duration_ms)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(http_status)
    .bind(error)
    .bind(duration.as_secs_f64() * 1000.0)
    .execute(&mut *tx)
    .await?;
    let (status, after_ms) = match outcome {
        Outcome::Delivered => ("delivered", 0.0),
        Outcome::Retry { after } => ("pending", after.as_millis() as f64),
        Outcome::Dead => ("dead", 0.0),
    };
    sqlx::query(
        "UPDATE opsdash.notification
            SET status = $2, last_status = $3, last_error = $4,
                next_attempt_at = now() + $5 * interval '1 millisecond',
                delivered_at = CASE WHEN $2 = 'delivered' THEN now() END
          WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(http_status)
    .bind(error)
    .bind(after_ms)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub notification_id: i64,
    pub channel: String,
    pub kind: String,
    pub status: String,
    pub ts: DateTime<Utc>,
    pub http_status: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: Option<f64>,
}

/// Every delivery attempt of the messages carrying an alert, oldest first.
pub async fn attempts_for_alert(pool: &PgPool, alert_id: i64) -> Result<Vec<AttemptRow>> {
    Ok(sqlx::query_as(
        "SELECT n.id AS notification_id, n.channel, n.kind, n.status, a.ts, a.http_status, a.error,
                a.duration_ms
           FROM opsdash.notification n JOIN opsdash.notification_attempt a ON a.notification_id = n.id
          WHERE (n.payload -> 'alert_ids') @> to_jsonb($1::bigint)
          ORDER BY a.ts, a.id",
    )
    .bind(alert_id)
    .fetch_all(pool)
    .await?)
}

/// Messages that gave up (the dead-letter state), newest first.
pub async fn dead_letters(
    pool: &PgPool,
    limit: i64,
) -> Result<
    Vec<(
        i64,
        String,
        String,
        Option<i32>,
        Option<String>,
        DateTime<Utc>,
    )>,
> {
    Ok(sqlx::query_as(
        "SELECT id, channel, kind, last_status, last_error, created_at FROM opsdash.notification
          WHERE status = 'dead' ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
