//! Operator actions (acknowledge, resolve, silence, rule status), shared by the CLI and the
//! Alerts tab. Each first asks the connection's capabilities (`Db::access`: a reader is refused
//! with one "read-only: ..." line and nothing is written), then runs in one transaction with its
//! audit event: the database role (`session_user`) as the actor, with the OS user@host and the
//! SSH client address as context.

use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::json;
use sqlx::PgConnection;

use super::engine;
use super::state::Notify;
use super::Matcher;
use crate::config::Config;
use crate::db::Db;
use crate::model::AlertState;
use crate::query::alerts::{self as q, AlertRow};
use crate::query::{rules, silences};

/// Who is acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub user: String,
    pub ip: Option<String>,
    pub host: String,
}

impl Operator {
    /// The OS user, the SSH client address (`SSH_CLIENT` or `SSH_CONNECTION`) and the host name.
    pub fn current() -> Operator {
        Operator::from_env(|k| std::env::var(k).ok())
    }

    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Operator {
        let user = os_user()
            .or_else(|| get("USER"))
            .or_else(|| get("LOGNAME"))
            .unwrap_or_else(|| "unknown".into());
        let ip = get("SSH_CLIENT")
            .or_else(|| get("SSH_CONNECTION"))
            .and_then(|v| v.split_whitespace().next().map(str::to_string))
            .filter(|s| !s.is_empty());
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| get("HOSTNAME"))
            .unwrap_or_else(|| "localhost".into());
        Operator { user, ip, host }
    }
}

/// The login name of the real user id (not spoofable through $USER).
fn os_user() -> Option<String> {
    // SAFETY: getpwuid returns a pointer into static storage or null; we copy the name at once
    // and do not keep the pointer.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr((*pw).pw_name)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

fn note(n: Option<&str>) -> Option<&str> {
    n.map(str::trim).filter(|s| !s.is_empty())
}

/// Acknowledges a firing alert. When someone was first, the error says who and when.
pub async fn acknowledge(
    db: &Db,
    op: &Operator,
    id: i64,
    note_text: Option<&str>,
) -> Result<AlertRow> {
    db.access.check_operate("acknowledging")?;
    let mut tx = db.write.begin().await?;
    let row = acknowledge_in(&mut tx, op, id, note(note_text)).await?;
    tx.commit().await?;
    Ok(row)
}

async fn acknowledge_in(
    tx: &mut PgConnection,
    op: &Operator,
    id: i64,
    note: Option<&str>,
) -> Result<AlertRow> {
    let row = q::acknowledge(tx, id, &op.user, note).await?;
    q::audit_operator_action(
        tx,
        &op.user,
        op.ip.as_deref(),
        &op.host,
        "alert.acknowledge",
        "alert",
        &id.to_string(),
        json!({ "state": [AlertState::Firing, AlertState::Acknowledged], "note": note, "rule": row.rule_name }),
    )
    .await?;
    Ok(row)
}

/// Resolves an open alert; channels that were told it fired are told it resolved.
pub async fn resolve(
    db: &Db,
    cfg: &Config,
    op: &Operator,
    id: i64,
    note_text: Option<&str>,
) -> Result<AlertRow> {
    db.access.check_operate("resolving")?;
    let mut tx = db.write.begin().await?;
    let row = resolve_in(&mut tx, cfg, op, id, note(note_text)).await?;
    tx.commit().await?;
    Ok(row)
}

async fn resolve_in(
    tx: &mut PgConnection,
    cfg: &Config,
    op: &Operator,
    id: i64,
    note: Option<&str>,
) -> Result<AlertRow> {
    let (row, prev) = q::resolve(tx, id, &op.user, note).await?;
    let rule: Option<rules::Rule> = rules::rule_by_id(tx, row.rule_id).await?;
    if let (Some(rule), Some(_)) = (rule, row.last_notified_at) {
        engine::enqueue_for_alert(tx, cfg, rule.id, &rule.spec, &row, Notify::Resolved).await?;
    }
    q::audit_operator_action(
        tx,
        &op.user,
        op.ip.as_deref(),
        &op.host,
        "alert.resolve",
        "alert",
        &id.to_string(),
        json!({ "state": [prev, AlertState::Resolved], "note": note, "rule": row.rule_name }),
    )
    .await?;
    Ok(row)
}

/// What an action on several alerts did: the alerts it changed, and those it left with why
/// (someone else was first, it is no longer firing...).
#[derive(Debug, Default)]
pub struct Bulk {
    pub done: Vec<i64>,
    pub skipped: Vec<(i64, String)>,
}

impl Bulk {
    /// One line for the status bar: `12 alerts acknowledged, 3 skipped (alert 7 was already...)`.
    pub fn summary(&self, verb: &str) -> String {
        let n = self.done.len();
        let mut s = format!("{n} alert{} {verb}", if n == 1 { "" } else { "s" });
        if let Some((_, why)) = self.skipped.first() {
            s.push_str(&format!(", {} skipped ({why}", self.skipped.len()));
            if self.skipped.len() > 1 {
                s.push_str(", …");
            }
            s.push(')');
        }
        s
    }
}

/// Runs `one` on each alert in one transaction: an alert the action does not apply to any more
/// (`ActionRefused`: changed by someone else meanwhile) is skipped and said; any other error
/// rolls the whole action back.
macro_rules! each_alert {
    ($tx:ident, $ids:expr, $id:ident => $one:expr) => {{
        let mut bulk = Bulk::default();
        for &$id in $ids {
            match $one {
                Ok(_) => bulk.done.push($id),
                Err(e) => match e.downcast::<q::ActionRefused>() {
                    Ok(refused) => bulk.skipped.push(($id, refused.to_string())),
                    Err(e) => return Err(e),
                },
            }
        }
        bulk
    }};
}

/// Acknowledges several firing alerts at once, each audited as a single acknowledgement.
pub async fn acknowledge_many(
    db: &Db,
    op: &Operator,
    ids: &[i64],
    note_text: Option<&str>,
) -> Result<Bulk> {
    db.access.check_operate("acknowledging")?;
    let mut tx = db.write.begin().await?;
    let bulk = each_alert!(tx, ids, id => acknowledge_in(&mut tx, op, id, note(note_text)).await);
    tx.commit().await?;
    Ok(bulk)
}

/// Resolves several open alerts at once, each audited (and notified) as a single resolution.
pub async fn resolve_many(
    db: &Db,
    cfg: &Config,
    op: &Operator,
    ids: &[i64],
    note_text: Option<&str>,
) -> Result<Bulk> {
    db.access.check_operate("resolving")?;
    let mut tx = db.write.begin().await?;
    let bulk = each_alert!(tx, ids, id => resolve_in(&mut tx, cfg, op, id, note(note_text)).await);
    tx.commit().await?;
    Ok(bulk)
}

/// Silences alerts whose labels match every matcher, from now for `duration`.
pub async fn silence(
    db: &Db,
    op: &Operator,
    matchers: &[Matcher],
    duration: Duration,
    comment: &str,
) -> Result<i64> {
    db.access.check_operate("silencing")?;
    if duration.is_zero() {
        bail!("a silence needs a duration, e.g. 1h");
    }
    let mut tx = db.write.begin().await?;
    let id = silences::create_silence(&mut tx, matchers, None, duration, &op.user, comment).await?;
    q::audit_operator_action(
        &mut tx,
        &op.user,
        op.ip.as_deref(),
        &op.host,
        "silence.create",
        "silence",
        &id.to_string(),
        json!({
            "matchers": matchers.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
            "duration_s": duration.as_secs(),
            "comment": comment,
        }),
    )
    .await?;
    rules::evaluate_rules_with_alerts_now(&mut tx, AlertState::Firing.name()).await?;
    tx.commit().await?;
    Ok(id)
}

/// Ends a silence now; alerts it suppressed that still fire notify again.
pub async fn expire_silence(db: &Db, op: &Operator, id: i64) -> Result<()> {
    db.access.check_operate("expiring a silence")?;
    let mut tx = db.write.begin().await?;
    silences::expire_silence(&mut tx, id, &op.user).await?;
    q::audit_operator_action(
        &mut tx,
        &op.user,
        op.ip.as_deref(),
        &op.host,
        "silence.expire",
        "silence",
        &id.to_string(),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Enables, disables or sets a rule to testing.
pub async fn set_rule_status(db: &Db, op: &Operator, name: &str, status: &str) -> Result<()> {
    db.access.check_operate("changing a rule")?;
    let mut tx = db.write.begin().await?;
    if !rules::set_rule_status(&mut tx, name, status).await? {
        bail!("no rule named {name:?}");
    }
    q::audit_operator_action(
        &mut tx,
        &op.user,
        op.ip.as_deref(),
        &op.host,
        "alert_rule.status",
        "alert_rule",
        name,
        json!({ "status": status }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Removes a rule managed from the CLI. The rule is kept, marked removed, with all its alerts
/// and their history; its open alerts are resolved (nothing evaluates them any more). The audit
/// event records the definition removed and what happened to its alerts.
pub async fn remove_rule(db: &Db, op: &Operator, name: &str) -> Result<rules::Removed> {
    db.access.check_operate("removing a rule")?;
    let mut tx = db.write.begin().await?;
    let removed = rules::remove_cli_rule(&mut tx, name, &op.user).await?;
    q::audit_operator_action(
        &mut tx,
        &op.user,
        op.ip.as_deref(),
        &op.host,
        "alert_rule.remove",
        "alert_rule",
        name,
        json!({
            "rule_id": removed.rule_id,
            "removed": removed.spec,
            "alerts_kept": removed.alerts_kept,
            "alerts_resolved": removed.resolved,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_client_address_is_taken_from_the_environment() {
        let op = Operator::from_env(|k| match k {
            "SSH_CONNECTION" => Some("203.0.113.9 50022 10.0.0.1 22".into()),
            _ => None,
        });
        assert_eq!(op.ip.as_deref(), Some("203.0.113.9"));
        let op = Operator::from_env(|k| (k == "SSH_CLIENT").then(|| "2001:db8::1 4000 22".into()));
        assert_eq!(op.ip.as_deref(), Some("2001:db8::1"));
        assert!(!op.user.is_empty());
        assert_eq!(Operator::from_env(|_| None).ip, None);
    }
}
