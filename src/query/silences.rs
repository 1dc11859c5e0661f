//! Silences: Alertmanager-style label matchers with a time window that keep matching alerts
//! from notifying.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};

use crate::model::rule::{silence_matches, Matcher};
use crate::model::AlertState;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SilenceRow {
    pub id: i64,
    pub matchers: Json<Vec<Matcher>>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
    pub expired_at: Option<DateTime<Utc>>,
    pub expired_by: Option<String>,
    pub state: String,
}

const SILENCE_COLUMNS: &str =
    "id, matchers, starts_at, ends_at, created_by, comment, expired_at, expired_by, state";

pub async fn active_silences(conn: &mut PgConnection) -> Result<Vec<SilenceRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {SILENCE_COLUMNS} FROM opsdash.silence_state WHERE state = 'active'"
    ))
    .fetch_all(conn)
    .await?)
}

pub async fn silences(pool: &PgPool, include_expired: bool) -> Result<Vec<SilenceRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {SILENCE_COLUMNS} FROM opsdash.silence_state
          WHERE $1 OR state <> 'expired' ORDER BY ends_at DESC LIMIT 500"
    ))
    .bind(include_expired)
    .fetch_all(pool)
    .await?)
}

pub async fn create_silence(
    conn: &mut PgConnection,
    matchers: &[Matcher],
    starts_at: Option<DateTime<Utc>>,
    duration: Duration,
    creator: &str,
    comment: &str,
) -> Result<i64> {
    if matchers.is_empty() {
        bail!("a silence needs at least one matcher");
    }
    Ok(sqlx::query_scalar(
        "INSERT INTO opsdash.silence (matchers, starts_at, ends_at, created_by, comment)
         VALUES ($1, coalesce($2, now()), coalesce($2, now()) + $3 * interval '1 second', $4, $5)
         RETURNING id",
    )
    .bind(Json(matchers))
    .bind(starts_at)
    .bind(duration.as_secs_f64())
    .bind(creator)
    .bind(comment)
    .fetch_one(conn)
    .await?)
}

/// Ends a silence now. Alerts it suppressed fire (and notify) again at their next evaluation if
/// their condition still holds.
pub async fn expire_silence(conn: &mut PgConnection, id: i64, actor: &str) -> Result<()> {
    let n = sqlx::query(
        "UPDATE opsdash.silence SET expired_at = now(), expired_by = $2,
                ends_at = least(ends_at, now())
          WHERE id = $1 AND expired_at IS NULL AND ends_at > now()",
    )
    .bind(id)
    .bind(actor)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if n == 0 {
        bail!("silence {id} does not exist or has already expired");
    }
    // The rules it may have covered: their alerts notify again if they still fire.
    super::rules::evaluate_rules_with_alerts_now(conn, AlertState::Suppressed.name()).await
}

/// How many open alerts a silence with these matchers would match now: the labels of every
/// alert not resolved, tried with the engine's own `silence_matches` (so the silence editor's
/// preview and the evaluation can never disagree on a regex dialect or an absent label).
pub async fn preview_count(pool: &PgPool, matchers: &[Matcher]) -> Result<usize> {
    let labels: Vec<Json<BTreeMap<String, String>>> =
        sqlx::query_scalar("SELECT labels FROM opsdash.alert WHERE state <> 'resolved'")
            .fetch_all(pool)
            .await?;
    Ok(labels
        .iter()
        .filter(|l| silence_matches(matchers, &l.0))
        .count())
}
