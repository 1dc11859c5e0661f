//! Alerts: open and past alerts of every rule, their samples and history, acknowledgement and
//! resolution, and the audit record of operator actions. Rules, silences and the outbox have
//! files of their own.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};

use crate::model::{AlertState, Severity};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlertRow {
    pub id: i64,
    pub rule_id: i64,
    pub rule_name: String,
    pub severity: Severity,
    pub labels: Json<BTreeMap<String, String>>,
    pub label_key: String,
    pub state: AlertState,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub summary: String,
    pub pending_since: DateTime<Utc>,
    pub fired_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub ack_note: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub resolve_note: Option<String>,
    pub condition_false_since: Option<DateTime<Utc>>,
    pub last_notified_at: Option<DateTime<Utc>>,
    /// Its rule is in testing mode: evaluated and shown, never notified, not counted as open.
    pub testing: bool,
    /// The sender of an external alert (Alertmanager API); None for opsdash's own.
    pub source: Option<String>,
    /// An external alert's endsAt: it resolves then unless re-sent.
    pub ends_at: Option<DateTime<Utc>>,
}

impl AlertRow {
    /// The state as every screen and listing shows it: a testing-mode alert says so.
    pub fn state_label(&self) -> String {
        if self.testing {
            format!("{} [test]", self.state)
        } else {
            self.state.to_string()
        }
    }
}

// `testing` is read from the rule at each read (not stored), so switching a rule in or out of
// testing mode marks its alerts at once, in every view.
pub const ALERT_COLUMNS: &str = "id, rule_id, rule_name, severity, labels, label_key, state, value,
    threshold, summary, pending_since, fired_at, acknowledged_at, acknowledged_by, ack_note,
    resolved_at, resolved_by, resolve_note, condition_false_since, last_notified_at,
    coalesce((SELECT r.status = 'testing' FROM opsdash.alert_rule r WHERE r.id = rule_id), false)
        AS testing, source, ends_at";

/// Open alerts by severity, real ones apart from testing-mode ones: the one count the header,
/// the KPI card, the Alerts tab and `opsdash alerts list` show (view `opsdash.open_alert`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenCounts {
    pub critical: i64,
    pub error: i64,
    pub warning: i64,
    pub info: i64,
    /// Of those, how many are firing (not pending, acknowledged or suppressed).
    pub firing: i64,
    /// Open alerts of rules in testing mode (not in the counts above).
    pub testing: i64,
}

impl OpenCounts {
    pub fn total(&self) -> i64 {
        self.critical + self.error + self.warning + self.info
    }

    /// `C1 E16 W0 I0`.
    pub fn by_severity(&self) -> String {
        format!(
            "C{} E{} W{} I{}",
            self.critical, self.error, self.warning, self.info
        )
    }

    /// Counts the alerts of a list the same way (they must be open alerts).
    pub fn of<'a>(alerts: impl IntoIterator<Item = &'a AlertRow>) -> OpenCounts {
        let mut c = OpenCounts::default();
        for a in alerts.into_iter().filter(|a| a.state.is_open()) {
            if a.testing {
                c.testing += 1;
                continue;
            }
            match a.severity {
                Severity::Critical => c.critical += 1,
                Severity::Error => c.error += 1,
                Severity::Warning => c.warning += 1,
                Severity::Info => c.info += 1,
            }
            c.firing += i64::from(a.state == AlertState::Firing);
        }
        c
    }
}

pub async fn open_counts(pool: &PgPool) -> Result<OpenCounts> {
    let r: (i64, i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE NOT testing AND severity = 'critical'),
                count(*) FILTER (WHERE NOT testing AND severity = 'error'),
                count(*) FILTER (WHERE NOT testing AND severity = 'warning'),
                count(*) FILTER (WHERE NOT testing
                                   AND severity NOT IN ('critical', 'error', 'warning')),
                count(*) FILTER (WHERE NOT testing AND state = 'firing'),
                count(*) FILTER (WHERE testing)
           FROM opsdash.open_alert",
    )
    .fetch_one(pool)
    .await?;
    Ok(OpenCounts {
        critical: r.0,
        error: r.1,
        warning: r.2,
        info: r.3,
        firing: r.4,
        testing: r.5,
    })
}

/// Alerts for the list: open ones (view `opsdash.open_alert`; all when `include_resolved`),
/// most severe and most urgent first, then oldest.
pub async fn list_alerts(
    pool: &PgPool,
    include_resolved: bool,
    limit: i64,
) -> Result<Vec<AlertRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ALERT_COLUMNS} FROM opsdash.alert
          WHERE $1 OR id IN (SELECT id FROM opsdash.open_alert)
          ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'error' THEN 1 WHEN 'warning' THEN 2 ELSE 3 END,
                   CASE state WHEN 'firing' THEN 0 WHEN 'pending' THEN 1 WHEN 'acknowledged' THEN 2
                              WHEN 'suppressed' THEN 3 ELSE 4 END,
                   coalesce(fired_at, pending_since), id
          LIMIT $2"
    ))
    .bind(include_resolved)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn alert(pool: &PgPool, id: i64) -> Result<Option<AlertRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ALERT_COLUMNS} FROM opsdash.alert WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// Open alerts of a rule, locked for the evaluation that will update them.
pub async fn open_alerts_for_update(
    conn: &mut PgConnection,
    rule_id: i64,
) -> Result<Vec<AlertRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ALERT_COLUMNS} FROM opsdash.alert
          WHERE rule_id = $1 AND state <> 'resolved' FOR UPDATE"
    ))
    .bind(rule_id)
    .fetch_all(conn)
    .await?)
}

/// The transaction's clock: one evaluation stamps every row it writes with the same time.
pub async fn transaction_now(conn: &mut PgConnection) -> Result<DateTime<Utc>> {
    Ok(sqlx::query_scalar("SELECT now()").fetch_one(conn).await?)
}

/// A new alert as the evaluation opens it.
pub struct NewAlert<'a> {
    pub rule_id: i64,
    pub rule_name: &'a str,
    pub severity: Severity,
    pub labels: &'a BTreeMap<String, String>,
    pub label_key: &'a str,
    pub state: AlertState,
    pub value: Option<f64>,
    pub threshold: f64,
    pub summary: &'a str,
    pub now: DateTime<Utc>,
    /// The lease epoch fencing the write.
    pub epoch: i64,
}

/// Opens an alert; None when an open alert of the rule with that label set already exists.
pub async fn insert_alert(conn: &mut PgConnection, a: &NewAlert<'_>) -> Result<Option<AlertRow>> {
    // ON CONFLICT repeats the partial index's WHERE: one open alert per (rule, label set).
    Ok(sqlx::query_as(&format!(
        "INSERT INTO opsdash.alert
             (rule_id, rule_name, severity, labels, label_key, state, value, threshold, summary,
              pending_since, fired_at, last_eval_at, epoch)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                 CASE WHEN $6 IN ('firing', 'suppressed') THEN $10 END, $10, $11)
         ON CONFLICT (rule_id, label_key) WHERE state <> 'resolved' DO NOTHING
         RETURNING {ALERT_COLUMNS}"
    ))
    .bind(a.rule_id)
    .bind(a.rule_name)
    .bind(a.severity)
    .bind(Json(a.labels))
    .bind(a.label_key)
    .bind(a.state)
    .bind(a.value)
    .bind(a.threshold)
    .bind(a.summary)
    .bind(a.now)
    .bind(a.epoch)
    .fetch_optional(conn)
    .await?)
}

/// What an evaluation changes on an open alert.
pub struct AlertUpdate<'a> {
    /// The new state, None to keep it.
    pub state: Option<AlertState>,
    /// The measured value, None to keep the last one.
    pub value: Option<f64>,
    pub summary: &'a str,
    pub condition_false_since: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
    /// The lease epoch fencing the write.
    pub epoch: i64,
}

/// Applies an evaluation's outcome to an open alert and returns the row as written.
pub async fn update_alert(
    conn: &mut PgConnection,
    id: i64,
    u: &AlertUpdate<'_>,
) -> Result<AlertRow> {
    Ok(sqlx::query_as(&format!(
        "UPDATE opsdash.alert SET
             state = coalesce($2, state),
             value = coalesce($3, value),
             summary = $4,
             condition_false_since = $5,
             fired_at = CASE WHEN $2 IN ('firing', 'suppressed') AND fired_at IS NULL THEN $6 ELSE fired_at END,
             resolved_at = CASE WHEN $2 = 'resolved' THEN $6 ELSE resolved_at END,
             resolved_by = CASE WHEN $2 = 'resolved' THEN 'worker' ELSE resolved_by END,
             last_eval_at = $6, epoch = $7, updated_at = now()
         WHERE id = $1
         RETURNING {ALERT_COLUMNS}"
    ))
    .bind(id)
    .bind(u.state)
    .bind(u.value)
    .bind(u.summary)
    .bind(u.condition_false_since)
    .bind(u.now)
    .bind(u.epoch)
    .fetch_one(conn)
    .await?)
}

/// Marks that a notification about the alert was just queued (for its repeat interval).
pub async fn mark_notified(conn: &mut PgConnection, alert_id: i64) -> Result<()> {
    sqlx::query("UPDATE opsdash.alert SET last_notified_at = now() WHERE id = $1")
        .bind(alert_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn record_sample(
    conn: &mut PgConnection,
    alert_id: i64,
    ts: DateTime<Utc>,
    value: f64,
) -> Result<()> {
    sqlx::query("INSERT INTO opsdash.alert_sample (alert_id, ts, value) VALUES ($1, $2, $3)")
        .bind(alert_id)
        .bind(ts)
        .bind(value)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn prune_samples(pool: &PgPool, keep: Duration) -> Result<()> {
    sqlx::query("DELETE FROM opsdash.alert_sample WHERE ts < now() - $1 * interval '1 second'")
        .bind(keep.as_secs_f64())
        .execute(pool)
        .await?;
    Ok(())
}

/// Measured values of an alert (oldest first, at most `limit`, the latest ones).
pub async fn samples(
    pool: &PgPool,
    alert_id: i64,
    limit: i64,
) -> Result<Vec<(DateTime<Utc>, f64)>> {
    let mut rows: Vec<(DateTime<Utc>, f64)> = sqlx::query_as(
        "SELECT ts, value FROM opsdash.alert_sample WHERE alert_id = $1 ORDER BY ts DESC LIMIT $2",
    )
    .bind(alert_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.reverse();
    Ok(rows)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HistoryRow {
    pub ts: DateTime<Utc>,
    pub from_state: Option<AlertState>,
    pub to_state: AlertState,
    pub actor: String,
    pub note: Option<String>,
    pub value: Option<f64>,
}

pub async fn history(pool: &PgPool, alert_id: i64) -> Result<Vec<HistoryRow>> {
    Ok(sqlx::query_as(
        "SELECT ts, from_state, to_state, actor, note, value FROM opsdash.alert_history
          WHERE alert_id = $1 ORDER BY ts, id",
    )
    .bind(alert_id)
    .fetch_all(pool)
    .await?)
}

pub async fn record_history(
    conn: &mut PgConnection,
    alert_id: i64,
    from: Option<AlertState>,
    to: AlertState,
    actor: &str,
    note: Option<&str>,
    value: Option<f64>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO opsdash.alert_history (alert_id, from_state, to_state, actor, note, value)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(alert_id)
    .bind(from)
    .bind(to)
    .bind(actor)
    .bind(note)
    .bind(value)
    .execute(conn)
    .await?;
    Ok(())
}

/// Who did what to an alert, when an operator action could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ActionRefused {
    #[error("alert {0} does not exist")]
    NoSuchAlert(i64),
    #[error("alert {id} was already acknowledged by {by} at {at}")]
    AlreadyAcknowledged { id: i64, by: String, at: String },
    #[error("alert {id} was already resolved by {by} at {at}")]
    AlreadyResolved { id: i64, by: String, at: String },
    #[error("alert {id} is {state}, not firing: only a firing alert can be acknowledged")]
    NotFiring { id: i64, state: AlertState },
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "an unknown time".into())
}

/// Acknowledges a firing alert. Two operators at once: the conditional UPDATE lets exactly one
/// through; the other is told who was first.
pub async fn acknowledge(
    conn: &mut PgConnection,
    id: i64,
    actor: &str,
    note: Option<&str>,
) -> Result<AlertRow> {
    let row: Option<AlertRow> = sqlx::query_as(&format!(
        "UPDATE opsdash.alert SET state = 'acknowledged', acknowledged_at = now(),
                acknowledged_by = $2, ack_note = $3, updated_at = now()
          WHERE id = $1 AND state = 'firing'
          RETURNING {ALERT_COLUMNS}"
    ))
    .bind(id)
    .bind(actor)
    .bind(note)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(a) => {
            record_history(
                conn,
                id,
                Some(AlertState::Firing),
                AlertState::Acknowledged,
                actor,
                note,
                a.value,
            )
            .await?;
            Ok(a)
        }
        None => Err(refusal(conn, id).await?.into()),
    }
}

type WhoRow = (
    AlertState,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<DateTime<Utc>>,
);

async fn refusal(conn: &mut PgConnection, id: i64) -> Result<ActionRefused> {
    let cur: Option<WhoRow> = sqlx::query_as(
        "SELECT state, acknowledged_by, acknowledged_at, resolved_by, resolved_at
               FROM opsdash.alert WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(match cur {
        None => ActionRefused::NoSuchAlert(id),
        Some((AlertState::Resolved, _, _, rby, rat)) => ActionRefused::AlreadyResolved {
            id,
            by: rby.unwrap_or_else(|| "worker".into()),
            at: when(rat),
        },
        Some((AlertState::Acknowledged, aby, aat, _, _)) => ActionRefused::AlreadyAcknowledged {
            id,
            by: aby.unwrap_or_default(),
            at: when(aat),
        },
        Some((state, ..)) => ActionRefused::NotFiring { id, state },
    })
}

/// Resolves an open alert by hand. Returns the alert as it was resolved.
pub async fn resolve(
    conn: &mut PgConnection,
    id: i64,
    actor: &str,
    note: Option<&str>,
) -> Result<(AlertRow, AlertState)> {
    let prev: Option<(AlertState,)> = sqlx::query_as(
        "SELECT state FROM opsdash.alert WHERE id = $1 AND state <> 'resolved' FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((prev,)) = prev else {
        return Err(refusal(conn, id).await?.into());
    };
    let row: AlertRow = sqlx::query_as(&format!(
        "UPDATE opsdash.alert SET state = 'resolved', resolved_at = now(), resolved_by = $2,
                resolve_note = $3, updated_at = now()
          WHERE id = $1 RETURNING {ALERT_COLUMNS}"
    ))
    .bind(id)
    .bind(actor)
    .bind(note)
    .fetch_one(&mut *conn)
    .await?;
    record_history(
        conn,
        id,
        Some(prev),
        AlertState::Resolved,
        actor,
        note,
        row.value,
    )
    .await?;
    Ok((row, prev))
}

// ------------------------------------------------------------------------------------------
// Operator actions on the record
// ------------------------------------------------------------------------------------------

/// Writes the audit event of an operator action (source 'opsdash').
#[allow(clippy::too_many_arguments)]
/// The actor is the database role (`session_user`, which `SET ROLE` cannot change): the one
/// identity the server vouches for. `os_user`@`host` goes to `session_id` and the SSH client
/// address to `ip`, as the context of where the action was typed.
pub async fn audit_operator_action(
    conn: &mut PgConnection,
    os_user: &str,
    ip: Option<&str>,
    host: &str,
    action: &str,
    resource_type: &str,
    resource_id: &str,
    changes: Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO opsdash.audit_event
             (actor, actor_role, action, resource_type, resource_id, changes, outcome, ip, host,
              session_id, source)
         VALUES (session_user, 'operator', $2, $3, $4, $5, 'success', $6, $7, $1 || '@' || $7,
                 'opsdash')",
    )
    .bind(os_user)
    .bind(action)
    .bind(resource_type)
    .bind(resource_id)
    .bind(Json(changes))
    .bind(ip)
    .bind(host)
    .execute(conn)
    .await?;
    Ok(())
}
