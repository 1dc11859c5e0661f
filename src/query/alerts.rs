//! Alert rules, alerts, silences and the notification outbox: the SQL behind the worker, the
//! `opsdash alerts` commands and the Alerts tab.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};

use crate::alerts::{Matcher, RuleSpec};

/// A rule as stored.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: i64,
    pub spec: RuleSpec,
    pub source: String,
    pub last_eval_at: Option<DateTime<Utc>>,
    pub last_value: Option<f64>,
    pub last_error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct RuleRow {
    id: i64,
    name: String,
    description: String,
    severity: String,
    status: String,
    metric: String,
    scope: Json<BTreeMap<String, String>>,
    filter: Option<String>,
    query: Option<String>,
    operator: String,
    threshold: f64,
    window_s: i32,
    for_s: i32,
    eval_interval_s: i32,
    labels: Json<BTreeMap<String, String>>,
    group_by: Vec<String>,
    channels: Vec<String>,
    repeat_interval_s: i32,
    max_per_hour: i32,
    auto_resolve: bool,
    resolve_after_s: i32,
    runbook_url: Option<String>,
    min_count: i32,
    source: String,
    last_eval_at: Option<DateTime<Utc>>,
    last_value: Option<f64>,
    last_error: Option<String>,
}

impl From<RuleRow> for Rule {
    fn from(r: RuleRow) -> Rule {
        Rule {
            id: r.id,
            spec: RuleSpec {
                name: r.name,
                description: r.description,
                severity: r.severity,
                status: r.status,
                metric: r.metric,
                scope: r.scope.0,
                filter: r.filter,
                query: r.query,
                operator: r.operator,
                threshold: r.threshold,
                window_s: r.window_s,
                for_s: r.for_s,
                eval_interval_s: r.eval_interval_s,
                labels: r.labels.0,
                group_by: r.group_by,
                channels: r.channels,
                repeat_interval_s: r.repeat_interval_s,
                max_per_hour: r.max_per_hour,
                auto_resolve: r.auto_resolve,
                resolve_after_s: r.resolve_after_s,
                runbook_url: r.runbook_url,
                min_count: r.min_count,
            },
            source: r.source,
            last_eval_at: r.last_eval_at,
            last_value: r.last_value,
            last_error: r.last_error,
        }
    }
}

const RULE_COLUMNS: &str = "id, name, description, severity, status, metric, scope, filter, query,
    operator, threshold, window_s, for_s, eval_interval_s, labels, group_by, channels,
    repeat_interval_s, max_per_hour, auto_resolve, resolve_after_s, runbook_url, min_count, source,
    last_eval_at, last_value, last_error";

const SPEC_RECORD: &str = "name text, description text, severity text, status text, metric text,
    scope jsonb, filter text, query text, operator text, threshold float8, window_s int, for_s int,
    eval_interval_s int, labels jsonb, group_by text[], channels text[], repeat_interval_s int,
    max_per_hour int, auto_resolve bool, resolve_after_s int, runbook_url text, min_count int,
    config_hash text";

const SPEC_COLUMNS: &str = "name, description, severity, status, metric, scope, filter, query,
    operator, threshold, window_s, for_s, eval_interval_s, labels, group_by, channels,
    repeat_interval_s, max_per_hour, auto_resolve, resolve_after_s, runbook_url, min_count";

fn spec_json(spec: &RuleSpec) -> Value {
    let mut v = serde_json::to_value(spec).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("config_hash".into(), json!(spec.config_hash()));
    }
    v
}

/// Writes the config's rules into `alert_rule` (source 'config'): a rule is rewritten only when
/// its definition changed. Config rules no longer in the config are disabled (their history
/// stays).
pub async fn sync_config_rules(pool: &PgPool, specs: &[RuleSpec]) -> Result<u64> {
    let records: Vec<Value> = specs.iter().map(spec_json).collect();
    let updates = SPEC_COLUMNS
        .split(',')
        .map(|c| c.trim())
        .map(|c| format!("{c} = excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let n = sqlx::query(&format!(
        "INSERT INTO opsdash.alert_rule AS r ({SPEC_COLUMNS}, config_hash, source)
         SELECT {SPEC_COLUMNS}, config_hash, 'config' FROM jsonb_to_recordset($1) AS x({SPEC_RECORD})
         ON CONFLICT (name) DO UPDATE SET {updates}, config_hash = excluded.config_hash,
             source = 'config', next_eval_at = now(), updated_at = now(),
             removed_at = NULL, removed_by = NULL
         WHERE r.config_hash IS DISTINCT FROM excluded.config_hash"
    ))
    .bind(Json(&records))
    .execute(pool)
    .await?
    .rows_affected();
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    sqlx::query(
        "UPDATE opsdash.alert_rule SET status = 'disabled', config_hash = NULL, updated_at = now()
          WHERE source = 'config' AND status <> 'disabled' AND name <> ALL ($1)",
    )
    .bind(&names)
    .execute(pool)
    .await?;
    Ok(n)
}

/// Adds or replaces a rule managed from the CLI; refuses to touch a rule the config names.
pub async fn upsert_cli_rule(pool: &PgPool, spec: &RuleSpec) -> Result<i64> {
    let mut rec = spec_json(spec);
    if let Some(o) = rec.as_object_mut() {
        o.insert("config_hash".into(), Value::Null);
    }
    let updates = SPEC_COLUMNS
        .split(',')
        .map(|c| c.trim())
        .map(|c| format!("{c} = excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let id: Option<i64> = sqlx::query_scalar(&format!(
        "INSERT INTO opsdash.alert_rule AS r ({SPEC_COLUMNS}, source)
         SELECT {SPEC_COLUMNS}, 'cli' FROM jsonb_to_recordset($1) AS x({SPEC_RECORD})
         ON CONFLICT (name) DO UPDATE SET {updates}, next_eval_at = now(), updated_at = now(),
             removed_at = NULL, removed_by = NULL
         WHERE r.source = 'cli'
         RETURNING id"
    ))
    .bind(Json(vec![rec]))
    .fetch_optional(pool)
    .await?;
    match id {
        Some(id) => Ok(id),
        None => bail!(
            "rule {:?} is defined in the config file; change it there",
            spec.name
        ),
    }
}

pub async fn rules(pool: &PgPool) -> Result<Vec<Rule>> {
    let rows: Vec<RuleRow> = sqlx::query_as(&format!(
        "SELECT {RULE_COLUMNS} FROM opsdash.alert_rule WHERE removed_at IS NULL ORDER BY name"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Rule::from).collect())
}

pub async fn rule_by_name(pool: &PgPool, name: &str) -> Result<Option<Rule>> {
    let row: Option<RuleRow> = sqlx::query_as(&format!(
        "SELECT {RULE_COLUMNS} FROM opsdash.alert_rule WHERE name = $1 AND removed_at IS NULL"
    ))
    .bind(name)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Rule::from))
}

pub async fn rule_by_id(conn: &mut PgConnection, id: i64) -> Result<Option<Rule>> {
    let row: Option<RuleRow> = sqlx::query_as(&format!(
        "SELECT {RULE_COLUMNS} FROM opsdash.alert_rule WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Rule::from))
}

/// Rules due for evaluation (enabled or testing).
pub async fn due_rules(pool: &PgPool) -> Result<Vec<Rule>> {
    let rows: Vec<RuleRow> = sqlx::query_as(&format!(
        "SELECT {RULE_COLUMNS} FROM opsdash.alert_rule
          WHERE status <> 'disabled' AND removed_at IS NULL AND next_eval_at <= now()
            AND source <> 'external'
          ORDER BY next_eval_at"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Rule::from).collect())
}

/// Time until the soonest enabled rule is due (zero when one is overdue), None without rules.
pub async fn next_due_in(pool: &PgPool) -> Result<Option<std::time::Duration>> {
    let secs: Option<f64> = sqlx::query_scalar(
        // Clamped here, not with greatest(): greatest() skips NULL, so "no rules" read as "due now".
        "SELECT extract(epoch FROM min(next_eval_at) - clock_timestamp())::float8
           FROM opsdash.alert_rule
          WHERE status <> 'disabled' AND removed_at IS NULL AND source <> 'external'",
    )
    .fetch_one(pool)
    .await?;
    Ok(secs.map(|s| std::time::Duration::from_secs_f64(s.max(0.0))))
}

/// Enables, disables or sets a rule to testing. Returns false when no rule has that name.
pub async fn set_rule_status(conn: &mut PgConnection, name: &str, status: &str) -> Result<bool> {
    if !matches!(status, "enabled" | "disabled" | "testing") {
        bail!("status {status:?} is not one of enabled, disabled, testing");
    }
    let n = sqlx::query(
        "UPDATE opsdash.alert_rule SET status = $2, next_eval_at = now(), updated_at = now()
          WHERE name = $1 AND removed_at IS NULL",
    )
    .bind(name)
    .bind(status)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Records a failed evaluation: the error shows on the rule and the next try waits one interval.
pub async fn record_rule_error(pool: &PgPool, rule_id: i64, error: &str) -> Result<()> {
    sqlx::query(
        "UPDATE opsdash.alert_rule SET last_eval_at = now(), last_error = $2,
                next_eval_at = now() + eval_interval_s * interval '1 second'
          WHERE id = $1",
    )
    .bind(rule_id)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records a successful evaluation at `now` with the largest measured value.
pub async fn record_rule_evaluated(
    conn: &mut PgConnection,
    rule_id: i64,
    now: DateTime<Utc>,
    top: Option<f64>,
) -> Result<()> {
    sqlx::query(
        // The next evaluation stays on the rule's grid (due time + interval) instead of
        // drifting by each run's lateness and cost; after a stall it restarts from now.
        "UPDATE opsdash.alert_rule SET last_eval_at = $2, last_value = $3, last_error = NULL,
                next_eval_at = CASE
                    WHEN next_eval_at + eval_interval_s * interval '1 second' > $2
                    THEN next_eval_at + eval_interval_s * interval '1 second'
                    ELSE $2 + eval_interval_s * interval '1 second' END
          WHERE id = $1",
    )
    .bind(rule_id)
    .bind(now)
    .bind(top)
    .execute(conn)
    .await?;
    Ok(())
}

/// Makes every rule with an alert in `state` due now, so that a silence created or ended applies
/// at the next tick rather than at each rule's next interval.
pub async fn evaluate_rules_with_alerts_now(conn: &mut PgConnection, state: &str) -> Result<()> {
    sqlx::query(
        "UPDATE opsdash.alert_rule SET next_eval_at = now()
          WHERE id IN (SELECT rule_id FROM opsdash.alert WHERE state = $1)
            AND source <> 'external'",
    )
    .bind(state)
    .execute(conn)
    .await?;
    Ok(())
}

/// What removing a rule did.
#[derive(Debug, Clone, PartialEq)]
pub struct Removed {
    pub rule_id: i64,
    /// The rule's definition as it was, for the audit event.
    pub spec: RuleSpec,
    /// Alerts of the rule kept with their history (all of them).
    pub alerts_kept: i64,
    /// Open alerts resolved by the removal (nothing would ever evaluate them again).
    pub resolved: Vec<i64>,
}

/// Removes a rule managed from the CLI: the rule is marked removed (gone from the rule lists
/// and never evaluated again), its alerts and their history stay, and its open alerts are
/// resolved by `actor` with a note saying why. Refuses a rule the config names.
pub async fn remove_cli_rule(conn: &mut PgConnection, name: &str, actor: &str) -> Result<Removed> {
    let row: Option<RuleRow> = sqlx::query_as(&format!(
        "SELECT {RULE_COLUMNS} FROM opsdash.alert_rule WHERE name = $1 AND removed_at IS NULL
            FOR UPDATE"
    ))
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(rule) = row.map(Rule::from) else {
        bail!("no rule named {name:?}");
    };
    if rule.source == "config" {
        bail!("rule {name:?} is defined in the config file; remove it there");
    }
    sqlx::query(
        "UPDATE opsdash.alert_rule SET removed_at = now(), removed_by = $2, status = 'disabled',
                updated_at = now()
          WHERE id = $1",
    )
    .bind(rule.id)
    .bind(actor)
    .execute(&mut *conn)
    .await?;
    let note = "rule removed";
    let resolved: Vec<(i64, String, Option<f64>)> = sqlx::query_as(
        "WITH open AS (SELECT id, state FROM opsdash.alert
                        WHERE rule_id = $1 AND state <> 'resolved' FOR UPDATE)
         UPDATE opsdash.alert a SET state = 'resolved', resolved_at = now(), resolved_by = $2,
                resolve_note = $3, updated_at = now()
           FROM open WHERE a.id = open.id
         RETURNING a.id, open.state, a.value",
    )
    .bind(rule.id)
    .bind(actor)
    .bind(note)
    .fetch_all(&mut *conn)
    .await?;
    for (id, from, value) in &resolved {
        record_history(conn, *id, Some(from), "resolved", actor, Some(note), *value).await?;
    }
    let alerts_kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM opsdash.alert WHERE rule_id = $1")
            .bind(rule.id)
            .fetch_one(&mut *conn)
            .await?;
    Ok(Removed {
        rule_id: rule.id,
        spec: rule.spec,
        alerts_kept,
        resolved: resolved.into_iter().map(|r| r.0).collect(),
    })
}

// ------------------------------------------------------------------------------------------
// Alerts
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlertRow {
    pub id: i64,
    pub rule_id: i64,
    pub rule_name: String,
    pub severity: String,
    pub labels: Json<BTreeMap<String, String>>,
    pub label_key: String,
    pub state: String,
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
            self.state.clone()
        }
    }
}

// `testing` is read from the rule at each read (not stored), so switching a rule in or out of
// testing mode marks its alerts at once, in every view.
const ALERT_COLUMNS: &str = "id, rule_id, rule_name, severity, labels, label_key, state, value,
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
        for a in alerts.into_iter().filter(|a| a.state != "resolved") {
            if a.testing {
                c.testing += 1;
                continue;
            }
            match a.severity.as_str() {
                "critical" => c.critical += 1,
                "error" => c.error += 1,
                "warning" => c.warning += 1,
                _ => c.info += 1,
            }
            c.firing += i64::from(a.state == "firing");
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
    pub severity: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub label_key: &'a str,
    pub state: &'a str,
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
    pub state: Option<&'a str>,
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
    pub from_state: Option<String>,
    pub to_state: String,
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
    from: Option<&str>,
    to: &str,
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
    NotFiring { id: i64, state: String },
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
                Some("firing"),
                "acknowledged",
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
    String,
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
        Some((state, _, _, rby, rat)) if state == "resolved" => ActionRefused::AlreadyResolved {
            id,
            by: rby.unwrap_or_else(|| "worker".into()),
            at: when(rat),
        },
        Some((state, aby, aat, _, _)) if state == "acknowledged" => {
            ActionRefused::AlreadyAcknowledged {
                id,
                by: aby.unwrap_or_default(),
                at: when(aat),
            }
        }
        Some((state, ..)) => ActionRefused::NotFiring { id, state },
    })
}

/// Resolves an open alert by hand. Returns the alert as it was resolved.
pub async fn resolve(
    conn: &mut PgConnection,
    id: i64,
    actor: &str,
    note: Option<&str>,
) -> Result<(AlertRow, String)> {
    let prev: Option<(String,)> = sqlx::query_as(
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
    record_history(conn, id, Some(&prev), "resolved", actor, note, row.value).await?;
    Ok((row, prev))
}

// ------------------------------------------------------------------------------------------
// Silences
// ------------------------------------------------------------------------------------------

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
    evaluate_rules_with_alerts_now(conn, "suppressed").await
}

// ------------------------------------------------------------------------------------------
// Outbox
// ------------------------------------------------------------------------------------------

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
