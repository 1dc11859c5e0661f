//! External alerts (sent by Prometheus through the Alertmanager API v2): the SQL that stores a
//! received alert as one open row per label set, resolves it when the sender says so or when
//! its endsAt passes, and reads them back for `GET /api/v2/alerts`. The rows are ordinary
//! `opsdash.alert` rows with `source` set, under one rule of source 'external' per sender.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};

use crate::model::{AlertState, Severity};

/// The rule row that stands for one sender.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SourceRule {
    pub id: i64,
    pub name: String,
    /// enabled, disabled (nothing sent) or testing (shown, never notified).
    pub status: String,
    pub channels: Vec<String>,
    pub max_per_hour: i32,
    pub repeat_interval_s: i32,
    pub group_by: Vec<String>,
}

/// The rule name of a sender's alerts.
pub fn rule_name(source: &str) -> String {
    format!("external/{source}")
}

/// The sender's rule, made on its first alert. Its channels follow the config's channel list
/// (every channel, as Alertmanager's default route sends everything to its one receiver) while
/// the operator has not changed them from the CLI; a config without channels sends nothing.
pub async fn source_rule(
    conn: &mut PgConnection,
    source: &str,
    channels: &[String],
) -> Result<SourceRule> {
    const COLS: &str = "id, name, status, channels, max_per_hour, repeat_interval_s, group_by";
    let name = rule_name(source);
    let made: Option<SourceRule> = sqlx::query_as(&format!(
        "INSERT INTO opsdash.alert_rule AS r
             (name, description, metric, source, channels, group_by)
         VALUES ($1, $2, 'external', 'external', $3, ARRAY['alertname'])
         ON CONFLICT (name) DO UPDATE SET channels = EXCLUDED.channels, updated_at = now()
          WHERE r.source = 'external' AND r.channels IS DISTINCT FROM EXCLUDED.channels
         RETURNING {COLS}"
    ))
    .bind(&name)
    .bind(format!(
        "alerts received from {source} (Alertmanager API v2)"
    ))
    .bind(channels)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(r) = made {
        return Ok(r);
    }
    let found: Option<SourceRule> = sqlx::query_as(&format!(
        "SELECT {COLS} FROM opsdash.alert_rule WHERE name = $1 AND source = 'external'"
    ))
    .bind(&name)
    .fetch_optional(conn)
    .await?;
    found.ok_or_else(|| anyhow::anyhow!("rule {name:?} exists and is not an external alert source"))
}

/// The rule row of a sender by id (None: it is gone or not an external source).
pub async fn rule_by_id(conn: &mut PgConnection, id: i64) -> Result<Option<SourceRule>> {
    Ok(sqlx::query_as(
        "SELECT id, name, status, channels, max_per_hour, repeat_interval_s, group_by
           FROM opsdash.alert_rule WHERE id = $1 AND source = 'external'",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// An external alert as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExternalRow {
    pub id: i64,
    pub rule_id: i64,
    pub rule_name: String,
    pub source: String,
    pub severity: Severity,
    pub labels: Json<BTreeMap<String, String>>,
    pub annotations: Json<BTreeMap<String, String>>,
    pub label_key: String,
    pub fingerprint: String,
    pub generator_url: Option<String>,
    pub state: AlertState,
    pub summary: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub last_notified_at: Option<DateTime<Utc>>,
    pub received_count: i64,
}

const COLUMNS: &str = "id, rule_id, rule_name, source, severity, labels, annotations, label_key,
    fingerprint, generator_url, state, summary, coalesce(starts_at, pending_since) AS starts_at,
    ends_at, resolved_at, updated_at, last_notified_at, received_count";

/// One alert as the sender stated it, ready to store.
#[derive(Debug, Clone)]
pub struct Incoming<'a> {
    pub rule_id: i64,
    pub source: &'a str,
    pub alertname: &'a str,
    pub severity: Severity,
    pub labels: &'a BTreeMap<String, String>,
    pub label_key: &'a str,
    pub fingerprint: &'a str,
    pub annotations: &'a BTreeMap<String, String>,
    pub generator_url: Option<&'a str>,
    pub summary: &'a str,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// A silence matches the labels now.
    pub silenced: bool,
}

/// What storing a firing alert did.
#[derive(Debug, Clone)]
pub struct Stored {
    pub row: ExternalRow,
    /// The state before this send (None: the alert was opened by it).
    pub before: Option<AlertState>,
}

/// Stores a firing alert: opens it, or refreshes the open alert of the same label set (one
/// open alert per label set and sender, by the partial unique index on (rule_id, label_key)).
/// A re-send keeps an acknowledgement; a silence turns firing into suppressed and its end turns
/// it back. None when an operator resolved this very episode (same startsAt) by hand: the
/// sender keeps re-sending it until its rule stops firing, and a hand resolve must hold.
pub async fn store_firing(conn: &mut PgConnection, a: &Incoming<'_>) -> Result<Option<Stored>> {
    // The state before the upsert, for history and notifications; the row lock taken here
    // holds until the transaction ends, so nothing changes it in between.
    let before: Option<AlertState> = sqlx::query_scalar(
        "SELECT state FROM opsdash.alert
          WHERE rule_id = $1 AND label_key = $2 AND state <> 'resolved' FOR UPDATE",
    )
    .bind(a.rule_id)
    .bind(a.label_key)
    .fetch_optional(&mut *conn)
    .await?;
    let fresh = if a.silenced {
        AlertState::Suppressed
    } else {
        AlertState::Firing
    };
    // ON CONFLICT repeats the partial index's WHERE clause.
    let row: Option<ExternalRow> = sqlx::query_as(&format!(
        "INSERT INTO opsdash.alert AS a
             (rule_id, rule_name, severity, labels, label_key, state, summary, pending_since,
              fired_at, source, annotations, generator_url, fingerprint, starts_at, ends_at,
              last_received_at, received_count)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11, $12, $8, $13, now(), 1
          WHERE NOT EXISTS (
                SELECT 1 FROM opsdash.alert r
                 WHERE r.rule_id = $1 AND r.label_key = $5 AND r.state = 'resolved'
                   AND r.starts_at = $8 AND r.resolved_by IS DISTINCT FROM 'worker'
                   AND r.resolved_by IS DISTINCT FROM r.source)
         ON CONFLICT (rule_id, label_key) WHERE state <> 'resolved' DO UPDATE SET
             state = CASE WHEN a.state = 'firing' AND $14 THEN 'suppressed'
                          WHEN a.state = 'suppressed' AND NOT $14 THEN 'firing'
                          ELSE a.state END,
             severity = EXCLUDED.severity,
             labels = EXCLUDED.labels,
             summary = EXCLUDED.summary,
             annotations = EXCLUDED.annotations,
             generator_url = EXCLUDED.generator_url,
             fingerprint = EXCLUDED.fingerprint,
             starts_at = EXCLUDED.starts_at,
             ends_at = EXCLUDED.ends_at,
             last_received_at = now(),
             received_count = a.received_count + 1,
             updated_at = now()
         RETURNING {COLUMNS}"
    ))
    .bind(a.rule_id)
    .bind(a.alertname)
    .bind(a.severity)
    .bind(Json(a.labels))
    .bind(a.label_key)
    .bind(fresh)
    .bind(a.summary)
    .bind(a.starts_at)
    .bind(a.source)
    .bind(Json(a.annotations))
    .bind(a.generator_url)
    .bind(a.fingerprint)
    .bind(a.ends_at)
    .bind(a.silenced)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| Stored { row, before }))
}

/// Resolves the open alert of a label set because its sender said it ended (endsAt in the
/// past). Returns the row and its state before, None when no alert of that set is open.
pub async fn resolve_by_sender(
    conn: &mut PgConnection,
    rule_id: i64,
    label_key: &str,
    ends_at: DateTime<Utc>,
) -> Result<Option<(ExternalRow, AlertState)>> {
    let before: Option<(i64, AlertState)> = sqlx::query_as(
        "SELECT id, state FROM opsdash.alert
          WHERE rule_id = $1 AND label_key = $2 AND state <> 'resolved' FOR UPDATE",
    )
    .bind(rule_id)
    .bind(label_key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((id, before)) = before else {
        return Ok(None);
    };
    let row: ExternalRow = sqlx::query_as(&format!(
        "UPDATE opsdash.alert SET state = 'resolved', resolved_at = least($2, now()),
                resolved_by = source, resolve_note = 'resolved by its sender', ends_at = $2,
                last_received_at = now(), received_count = received_count + 1,
                updated_at = now()
          WHERE id = $1
          RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(ends_at)
    .fetch_one(conn)
    .await?;
    Ok(Some((row, before)))
}

/// Resolves every open external alert whose endsAt has passed without a re-send. Returns the
/// rows with their states before.
pub async fn resolve_overdue(conn: &mut PgConnection) -> Result<Vec<(ExternalRow, AlertState)>> {
    let rows: Vec<(i64, AlertState)> = sqlx::query_as(
        "SELECT id, state FROM opsdash.alert
          WHERE source IS NOT NULL AND state <> 'resolved' AND ends_at <= now()
          ORDER BY id FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let done: Vec<ExternalRow> = sqlx::query_as(&format!(
        "UPDATE opsdash.alert SET state = 'resolved', resolved_at = ends_at,
                resolved_by = 'worker', resolve_note = 'not re-sent before its endsAt',
                updated_at = now()
          WHERE id = ANY($1)
          RETURNING {COLUMNS}"
    ))
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    let before: BTreeMap<i64, AlertState> = rows.into_iter().collect();
    // Every updated id was selected above, so each has its state before.
    Ok(done
        .into_iter()
        .filter_map(|r| Some((before.get(&r.id).copied()?, r)))
        .map(|(b, r)| (r, b))
        .collect())
}

/// Open external alerts that are firing or suppressed, locked, for re-checking silences.
pub async fn silenceable_for_update(conn: &mut PgConnection) -> Result<Vec<ExternalRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM opsdash.alert
          WHERE source IS NOT NULL AND state IN ('firing', 'suppressed')
          ORDER BY id FOR UPDATE SKIP LOCKED"
    ))
    .fetch_all(conn)
    .await?)
}

/// Moves an open external alert between firing and suppressed (a silence began or ended).
pub async fn set_state(conn: &mut PgConnection, id: i64, state: AlertState) -> Result<ExternalRow> {
    Ok(sqlx::query_as(&format!(
        "UPDATE opsdash.alert SET state = $2, updated_at = now() WHERE id = $1
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(state)
    .fetch_one(conn)
    .await?)
}

/// Open external alerts (all states but resolved), oldest first, for `GET /api/v2/alerts`.
pub async fn open(pool: &PgPool, limit: i64) -> Result<Vec<ExternalRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM opsdash.alert
          WHERE source IS NOT NULL AND state <> 'resolved'
          ORDER BY coalesce(starts_at, pending_since), id LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// External alerts with a fingerprint, newest first (resolved ones included), for tests and
/// `opsdash alerts` callers that follow one alert.
pub async fn by_fingerprint(pool: &PgPool, fingerprint: &str) -> Result<Vec<ExternalRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM opsdash.alert
          WHERE source IS NOT NULL AND fingerprint = $1 ORDER BY id DESC"
    ))
    .bind(fingerprint)
    .fetch_all(pool)
    .await?)
}

/// The time the database stamps rows with.
pub async fn now(conn: &mut PgConnection) -> Result<DateTime<Utc>> {
    Ok(sqlx::query_scalar("SELECT now()").fetch_one(conn).await?)
}

// ------------------------------------------------------------------------------------------
// Silences as the Alertmanager API shows them
// ------------------------------------------------------------------------------------------

/// A silence with its end time as stored (the API takes and returns endsAt, not a duration).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SilenceApiRow {
    pub id: i64,
    pub matchers: Json<Vec<crate::alerts::Matcher>>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
    pub created_at: DateTime<Utc>,
    pub expired_at: Option<DateTime<Utc>>,
    pub state: String,
}

const SILENCE_COLUMNS: &str =
    "id, matchers, starts_at, ends_at, created_by, comment, created_at, expired_at, state";

/// Silences not expired, plus those that expired in the last `keep_expired_s` seconds (as
/// Alertmanager keeps expired silences for a while), newest end first.
pub async fn silences(pool: &PgPool, keep_expired_s: i64) -> Result<Vec<SilenceApiRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {SILENCE_COLUMNS} FROM opsdash.silence_state
          WHERE state <> 'expired' OR ends_at > now() - $1 * interval '1 second'
          ORDER BY ends_at DESC LIMIT 1000"
    ))
    .bind(keep_expired_s as f64)
    .fetch_all(pool)
    .await?)
}

pub async fn silence(pool: &PgPool, id: i64) -> Result<Option<SilenceApiRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {SILENCE_COLUMNS} FROM opsdash.silence_state WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// Whether silence `id` exists (None: it does not), and whether it has yet to end, locked
/// against a concurrent expiry.
pub async fn silence_live(conn: &mut PgConnection, id: i64) -> Result<Option<(bool,)>> {
    Ok(sqlx::query_as(
        "SELECT expired_at IS NULL AND ends_at > now() FROM opsdash.silence WHERE id = $1
            FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Creates a silence with the start and end the API was given.
pub async fn create_silence(
    conn: &mut PgConnection,
    matchers: &[crate::alerts::Matcher],
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    created_by: &str,
    comment: &str,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO opsdash.silence (matchers, starts_at, ends_at, created_by, comment)
         VALUES ($1, greatest($2, now()), $3, $4, $5) RETURNING id",
    )
    .bind(Json(matchers))
    .bind(starts_at)
    .bind(ends_at)
    .bind(created_by)
    .bind(comment)
    .fetch_one(conn)
    .await?)
}
