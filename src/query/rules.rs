//! Alert rules: the definitions from the config and the CLI, when each is due, and what its
//! last evaluation said. The SQL behind the worker's engine, `opsdash alerts rules` and the
//! Alerts tab's rule view.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};

use crate::model::rule::RuleSpec;
use crate::model::{AlertState, Severity};

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
    severity: Severity,
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
    let resolved: Vec<(i64, AlertState, Option<f64>)> = sqlx::query_as(
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
        let to = AlertState::Resolved;
        super::alerts::record_history(conn, *id, Some(*from), to, actor, Some(note), *value)
            .await?;
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
