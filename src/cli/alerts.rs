//! `opsdash alerts list|show|ack|resolve|silence|rules|dead`: the Alerts tab's actions from the
//! shell. Every action is on the record (audit event with the database role, and the OS user,
//! SSH client address and host as context); a role that may not act gets one "read-only: ..."
//! line. Everything printed from the database is sanitized.
//!
//! One file for the subcommands: they share the audit context (role, OS user, SSH client), the
//! read-only refusal and the sanitized output; each subcommand is its own function.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use clap::{Args as ClapArgs, Subcommand, ValueEnum};

use crate::alerts::engine;
use crate::alerts::operator::{self, Operator};
use crate::alerts::{Matcher, RuleConfig, RuleSpec};
use crate::cli::{json_line, ListOutput};
use crate::config::Config;
use crate::db::Db;
// The `--state` and `--severity` flags take the stored names (a typo is a clap error listing
// them): the model's enums are clap value enums.
use crate::model::{AlertState, Severity};
use crate::query::alerts as q;
use crate::query::{outbox, rules, silences};
use crate::sanitize::clean;

/// Rule comparison operators (`--operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Op {
    /// value > threshold
    Gt,
    /// value >= threshold
    Gte,
    /// value < threshold
    Lt,
    /// value <= threshold
    Lte,
    /// value = threshold
    Eq,
    /// value != threshold
    Ne,
}

/// Rule statuses (`--status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuleStatus {
    /// Evaluated and notified.
    Enabled,
    /// Not evaluated.
    Disabled,
    /// Evaluated and shown, never notified.
    Testing,
}

/// The name a ValueEnum value has on the command line (and in the config and database).
fn flag_name(v: impl ValueEnum) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

#[derive(Debug, Subcommand)]
pub enum AlertsAction {
    /// Open alerts, most severe first (--all: resolved ones too).
    List {
        /// Resolved alerts too, not only open ones.
        #[arg(long)]
        all: bool,
        /// Only alerts in this state.
        #[arg(long, value_enum)]
        state: Option<AlertState>,
        #[command(flatten)]
        output: ListOutput,
    },
    /// One alert: value against threshold, labels, runbook, history, notification attempts.
    Show {
        /// Alert id (the ID column of `alerts list`).
        id: i64,
    },
    /// Acknowledge a firing alert.
    Ack {
        /// Alert id (the ID column of `alerts list`).
        id: i64,
        /// Why, for the history and the audit log.
        #[arg(long, short)]
        note: Option<String>,
    },
    /// Resolve an open alert.
    Resolve {
        /// Alert id (the ID column of `alerts list`).
        id: i64,
        /// Why, for the history and the audit log.
        #[arg(long, short)]
        note: Option<String>,
    },
    /// Silences: add, list, expire.
    Silence {
        #[command(subcommand)]
        action: SilenceAction,
    },
    /// Rules: list, add, enable, disable, testing, test, remove.
    Rules {
        #[command(subcommand)]
        action: Option<RulesAction>,
    },
    /// Notifications that gave up (dead letters).
    Dead {
        #[command(flatten)]
        output: ListOutput,
    },
}

#[derive(Debug, Subcommand)]
pub enum SilenceAction {
    /// Silence alerts matching every matcher (name=value, name!=value, name=~re, name!~re).
    Add {
        /// Take the matchers from this alert's labels.
        #[arg(long)]
        alert: Option<i64>,
        /// A label matcher: name=value, name!=value, name=~regex, name!~regex (repeatable).
        #[arg(long = "matcher", short)]
        matchers: Vec<String>,
        /// How long, e.g. 30m, 2h.
        #[arg(long, short, default_value = "1h")]
        duration: String,
        /// Why, shown beside the silence.
        #[arg(long, short, default_value = "")]
        comment: String,
    },
    /// Pending and active silences (--all: expired too).
    List {
        /// Expired silences too.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        output: ListOutput,
    },
    /// End a silence now.
    Expire {
        /// Silence id (the ID column of `alerts silence list`).
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum RulesAction {
    /// Every rule (config and CLI) with its status, condition and last value.
    List {
        #[command(flatten)]
        output: ListOutput,
    },
    /// Add or replace a rule managed from the CLI (config rules are changed in the config).
    Add(Box<RuleArgs>),
    /// Enable a rule: evaluate it and notify.
    Enable {
        /// Rule name.
        name: String,
    },
    /// Disable a rule: stop evaluating it (its open alerts resolve).
    Disable {
        /// Rule name.
        name: String,
    },
    /// Evaluate and show, never notify.
    Testing {
        /// Rule name.
        name: String,
    },
    /// Measure a rule now and show each value against the threshold, without writing anything.
    Test {
        /// Rule name.
        name: String,
    },
    /// Remove a rule added from the CLI.
    Remove {
        /// Rule name.
        name: String,
    },
}

#[derive(Debug, ClapArgs)]
pub struct RuleArgs {
    /// Rule name (unique; an existing CLI rule of this name is replaced).
    #[arg(long)]
    pub name: String,
    /// What to measure: error_rate, request_rate, latency_p95, log_count, sql... (see
    /// config.example.toml).
    #[arg(long)]
    pub measure: String,
    /// The value the measure is compared with.
    #[arg(long)]
    pub threshold: f64,
    /// How the measure is compared with the threshold.
    #[arg(long, value_enum, default_value = "gt")]
    pub operator: Op,
    /// Severity of the alerts this rule fires.
    #[arg(long, value_enum, default_value = "warning")]
    pub severity: Severity,
    /// Window the measure covers, e.g. 5m.
    #[arg(long, default_value = "5m")]
    pub window: String,
    /// How long the condition must hold before the alert fires.
    #[arg(long = "for", default_value = "0s")]
    pub for_: String,
    /// error_rate: fewer requests than this in the window and the condition is false
    /// (default 20; 0 for no minimum).
    #[arg(long)]
    pub min_count: Option<u32>,
    /// How often the rule is evaluated.
    #[arg(long, default_value = "30s")]
    pub interval: String,
    /// Scope key=value (service, route, by, action...), repeatable.
    #[arg(long)]
    pub scope: Vec<String>,
    /// Extra label key=value, repeatable.
    #[arg(long)]
    pub label: Vec<String>,
    /// Channel to notify (a `[[alert.channel]]` name), repeatable.
    #[arg(long)]
    pub channel: Vec<String>,
    /// Logs filter for `log_count`, in the Logs tab's language.
    #[arg(long, default_value = "")]
    pub filter: String,
    /// SQL returning one number, for the `sql` measure.
    #[arg(long, default_value = "")]
    pub query: String,
    /// What the rule means, shown with its alerts.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Link to the runbook, shown with its alerts.
    #[arg(long, default_value = "")]
    pub runbook_url: String,
    /// Initial status of the rule.
    #[arg(long, value_enum, default_value = "enabled")]
    pub status: RuleStatus,
}

fn pairs(items: &[String], what: &str) -> Result<std::collections::BTreeMap<String, String>> {
    items
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .with_context(|| format!("{what} {s:?}: expected key=value"))
        })
        .collect()
}

fn age(t: DateTime<Utc>) -> String {
    let d = (Utc::now() - t).to_std().unwrap_or_default();
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d", s / 86400),
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn num(v: Option<f64>) -> String {
    v.map(|v| {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    })
    .unwrap_or_else(|| "-".into())
}

pub fn run(cfg: Config, action: AlertsAction) -> Result<ExitCode> {
    super::runtime()?.block_on(async move {
        let db = Db::open(&cfg).await?;
        // Config rules show up (and are current) even when no worker ran yet; a read-only
        // session writes nothing and lists the rules as the last writer left them.
        if db.access.can_operate() {
            rules::sync_config_rules(&db.write, &engine::config_specs(&cfg)).await?;
        }
        run_action(&db, &cfg, action).await
    })
}

async fn run_action(db: &Db, cfg: &Config, action: AlertsAction) -> Result<ExitCode> {
    let me = Operator::current();
    match action {
        AlertsAction::List { all, state, output } => {
            let rows =
                q::list_alerts(&db.read, all || state == Some(AlertState::Resolved), 1000).await?;
            let rows = rows.iter().filter(|a| state.is_none_or(|s| a.state == s));
            if output.json() {
                for a in rows {
                    json_line(&serde_json::json!({
                        "id": a.id,
                        "severity": a.severity,
                        "state": a.state,
                        "rule": a.rule_name,
                        "value": a.value,
                        "threshold": a.threshold,
                        "summary": a.summary,
                        "labels": a.labels.0,
                        "pending_since": a.pending_since,
                        "fired_at": a.fired_at,
                        "acknowledged_at": a.acknowledged_at,
                        "acknowledged_by": a.acknowledged_by,
                        "resolved_at": a.resolved_at,
                        "resolved_by": a.resolved_by,
                    }))?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            crate::outln!(
                "{:>6}  {:<8}  {:<12}  {:<28}  {:>10}  {:>7}  LABELS",
                "ID",
                "SEVERITY",
                "STATE",
                "RULE",
                "VALUE",
                "AGE"
            );
            for a in rows {
                let labels: Vec<String> = a
                    .labels
                    .0
                    .iter()
                    .filter(|(k, _)| *k != "alertname" && *k != "severity")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                crate::outln!(
                    "{:>6}  {:<8}  {:<12}  {:<28}  {:>10}  {:>7}  {}",
                    a.id,
                    a.severity,
                    clean(&a.state_label()),
                    clean(&a.rule_name),
                    num(a.value),
                    age(a.fired_at.unwrap_or(a.pending_since)),
                    clean(&labels.join(" ")),
                );
            }
        }
        AlertsAction::Show { id } => show(db, id).await?,
        AlertsAction::Ack { id, note } => {
            let a = operator::acknowledge(db, &me, id, note.as_deref()).await?;
            crate::outln!(
                "alert {} ({}) acknowledged by {}",
                a.id,
                clean(&a.rule_name),
                clean(&me.user)
            );
        }
        AlertsAction::Resolve { id, note } => {
            let a = operator::resolve(db, cfg, &me, id, note.as_deref()).await?;
            crate::outln!(
                "alert {} ({}) resolved by {}",
                a.id,
                clean(&a.rule_name),
                clean(&me.user)
            );
        }
        AlertsAction::Silence { action } => silence(db, &me, action).await?,
        AlertsAction::Rules { action } => {
            let action = action.unwrap_or(RulesAction::List {
                output: ListOutput::default(),
            });
            rules(db, cfg, &me, action).await?
        }
        AlertsAction::Dead { output } => {
            let dead = outbox::dead_letters(&db.read, 200).await?;
            if output.json() {
                for (id, channel, kind, status, error, created) in dead {
                    json_line(&serde_json::json!({
                        "id": id, "channel": channel, "kind": kind, "http_status": status,
                        "error": error, "created": created,
                    }))?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            crate::outln!(
                "{:>6}  {:<16}  {:<8}  {:>6}  {:<19}  ERROR",
                "ID",
                "CHANNEL",
                "KIND",
                "HTTP",
                "CREATED"
            );
            for (id, channel, kind, status, error, created) in dead {
                crate::outln!(
                    "{id:>6}  {:<16}  {:<8}  {:>6}  {:<19}  {}",
                    clean(&channel),
                    clean(&kind),
                    status.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                    ts(created),
                    clean(error.as_deref().unwrap_or("")),
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(db: &Db, id: i64) -> Result<()> {
    let Some(a) = q::alert(&db.read, id).await? else {
        bail!("alert {id} does not exist");
    };
    let mut conn = db.read.acquire().await?;
    let rule = rules::rule_by_id(&mut conn, a.rule_id).await?;
    drop(conn);
    crate::outln!(
        "alert {}  {}  {}  rule {}",
        a.id,
        a.severity,
        clean(&a.state_label()),
        clean(&a.rule_name)
    );
    crate::outln!("  {}", clean(&a.summary));
    if let Some(r) = &rule {
        // The comparison as it stands, then the rule's own: never `0.194 > 5`.
        let standing = match (a.value, a.threshold) {
            (Some(v), Some(t)) => crate::alerts::Op::standing(v, t),
            _ => format!("{} vs {}", num(a.value), num(a.threshold)),
        };
        crate::outln!(
            "  value {standing} (fires when {} {}; {} over {}s, for {}s)",
            r.spec.op().symbol(),
            crate::alerts::fmt_value(r.spec.threshold),
            clean(&r.spec.metric),
            r.spec.window_s,
            r.spec.for_s
        );
        if !r.spec.description.is_empty() {
            crate::outln!("  {}", clean(&r.spec.description));
        }
        if let Some(rb) = &r.spec.runbook_url {
            crate::outln!("  runbook: {}", clean(rb));
        }
    }
    for (k, v) in &a.labels.0 {
        crate::outln!("  label {}={}", clean(k), clean(v));
    }
    crate::outln!("  pending since {}", ts(a.pending_since));
    if let Some(t) = a.fired_at {
        crate::outln!("  fired at {}", ts(t));
    }
    if let (Some(t), Some(by)) = (a.acknowledged_at, &a.acknowledged_by) {
        crate::outln!(
            "  acknowledged {} by {}: {}",
            ts(t),
            clean(by),
            clean(a.ack_note.as_deref().unwrap_or(""))
        );
    }
    if let (Some(t), Some(by)) = (a.resolved_at, &a.resolved_by) {
        crate::outln!(
            "  resolved {} by {}: {}",
            ts(t),
            clean(by),
            clean(a.resolve_note.as_deref().unwrap_or(""))
        );
    }
    crate::outln!("history:");
    for h in q::history(&db.read, id).await? {
        crate::outln!(
            "  {}  {:>12} -> {:<12}  {:<12}  value {}  {}",
            ts(h.ts),
            h.from_state.map_or("", AlertState::name),
            h.to_state,
            clean(&h.actor),
            num(h.value),
            clean(h.note.as_deref().unwrap_or("")),
        );
    }
    crate::outln!("notification attempts:");
    for at in outbox::attempts_for_alert(&db.read, id).await? {
        crate::outln!(
            "  {}  #{} {:<12} {:<8} {:<9}  HTTP {}  {:.0} ms  {}",
            ts(at.ts),
            at.notification_id,
            clean(&at.channel),
            clean(&at.kind),
            clean(&at.status),
            at.http_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            at.duration_ms.unwrap_or(0.0),
            clean(at.error.as_deref().unwrap_or("")),
        );
    }
    Ok(())
}

async fn silence(db: &Db, me: &Operator, action: SilenceAction) -> Result<()> {
    match action {
        SilenceAction::Add {
            alert,
            matchers,
            duration,
            comment,
        } => {
            let mut ms: Vec<Matcher> = matchers
                .iter()
                .map(|m| Matcher::parse(m).map_err(anyhow::Error::msg))
                .collect::<Result<_>>()?;
            if let Some(id) = alert {
                let Some(a) = q::alert(&db.read, id).await? else {
                    bail!("alert {id} does not exist");
                };
                ms.extend(
                    a.labels
                        .0
                        .iter()
                        .filter(|(k, _)| *k != "severity")
                        .map(|(k, v)| Matcher {
                            name: k.clone(),
                            op: "=".into(),
                            value: v.clone(),
                        }),
                );
            }
            if ms.is_empty() {
                bail!("give --matcher name=value (repeatable) or --alert ID");
            }
            let d = crate::alerts::config::duration(&duration).map_err(anyhow::Error::msg)?;
            let id = operator::silence(db, me, &ms, d, &comment).await?;
            let shown: Vec<String> = ms.iter().map(|m| m.to_string()).collect();
            crate::outln!(
                "silence {id} active for {duration}: {}",
                clean(&shown.join(", "))
            );
        }
        SilenceAction::List { all, output } => {
            let silences = silences::silences(&db.read, all).await?;
            if output.json() {
                for s in silences {
                    let ms: Vec<String> = s.matchers.0.iter().map(|m| m.to_string()).collect();
                    json_line(&serde_json::json!({
                        "id": s.id, "state": s.state, "starts_at": s.starts_at,
                        "ends_at": s.ends_at, "created_by": s.created_by, "matchers": ms,
                        "comment": s.comment, "expired_at": s.expired_at,
                        "expired_by": s.expired_by,
                    }))?;
                }
                return Ok(());
            }
            crate::outln!(
                "{:>5}  {:<8}  {:<19}  {:<19}  {:<12}  MATCHERS / COMMENT",
                "ID",
                "STATE",
                "STARTS",
                "ENDS",
                "CREATOR"
            );
            for s in silences {
                let ms: Vec<String> = s.matchers.0.iter().map(|m| m.to_string()).collect();
                crate::outln!(
                    "{:>5}  {:<8}  {:<19}  {:<19}  {:<12}  {}  {}",
                    s.id,
                    clean(&s.state),
                    ts(s.starts_at),
                    ts(s.ends_at),
                    clean(&s.created_by),
                    clean(&ms.join(", ")),
                    clean(&s.comment),
                );
            }
        }
        SilenceAction::Expire { id } => {
            operator::expire_silence(db, me, id).await?;
            crate::outln!("silence {id} expired");
        }
    }
    Ok(())
}

async fn rules(db: &Db, cfg: &Config, me: &Operator, action: RulesAction) -> Result<()> {
    match action {
        RulesAction::List { output } => {
            let rules = rules::rules(&db.read).await?;
            if output.json() {
                for r in rules {
                    let s = &r.spec;
                    json_line(&serde_json::json!({
                        "name": s.name, "severity": s.severity, "status": s.status,
                        "source": r.source, "measure": s.metric,
                        "operator": s.op().symbol(), "threshold": s.threshold,
                        "window_s": s.window_s, "for_s": s.for_s,
                        "last_eval_at": r.last_eval_at, "last_value": r.last_value,
                        "last_error": r.last_error,
                    }))?;
                }
                return Ok(());
            }
            crate::outln!(
                "{:<28}  {:<8}  {:<8}  {:<6}  {:<20}  {:>12}  {:>10}  ERROR",
                "NAME",
                "SEVERITY",
                "STATUS",
                "SOURCE",
                "MEASURE",
                "CONDITION",
                "LAST"
            );
            for r in rules {
                let s = &r.spec;
                crate::outln!(
                    "{:<28}  {:<8}  {:<8}  {:<6}  {:<20}  {:>12}  {:>10}  {}",
                    clean(&s.name),
                    s.severity,
                    clean(&s.status),
                    clean(&r.source),
                    clean(&s.metric),
                    format!("{} {}", s.op().symbol(), num(Some(s.threshold))),
                    num(r.last_value),
                    clean(r.last_error.as_deref().unwrap_or("")),
                );
            }
        }
        RulesAction::Add(a) => {
            let a = *a;
            let rc = RuleConfig {
                name: a.name,
                description: a.description,
                severity: a.severity,
                status: flag_name(a.status),
                measure: a.measure,
                scope: pairs(&a.scope, "--scope")?,
                filter: a.filter,
                query: a.query,
                operator: flag_name(a.operator),
                threshold: a.threshold,
                window: a.window,
                for_: a.for_,
                interval: a.interval,
                labels: pairs(&a.label, "--label")?,
                channels: a.channel,
                runbook_url: a.runbook_url,
                min_count: a.min_count,
                ..RuleConfig::default()
            };
            let spec = RuleSpec::from_config(&rc).map_err(anyhow::Error::msg)?;
            for ch in &spec.channels {
                if cfg.alert.channel(ch).is_none() {
                    eprintln!("warning: no channel named {ch:?} in this config; messages to it will be dead-lettered");
                }
            }
            db.access.check_operate("adding a rule")?;
            let id = rules::upsert_cli_rule(&db.write, &spec).await?;
            let mut conn = db.write.acquire().await?;
            q::audit_operator_action(
                &mut conn,
                &me.user,
                me.ip.as_deref(),
                &me.host,
                "alert_rule.upsert",
                "alert_rule",
                &spec.name,
                serde_json::to_value(&spec)?,
            )
            .await?;
            crate::outln!("rule {} saved (id {id})", clean(&spec.name));
        }
        RulesAction::Enable { name } => set_status(db, me, &name, "enabled").await?,
        RulesAction::Disable { name } => set_status(db, me, &name, "disabled").await?,
        RulesAction::Testing { name } => set_status(db, me, &name, "testing").await?,
        RulesAction::Test { name } => {
            let Some(r) = rules::rule_by_name(&db.read, &name).await? else {
                bail!("no rule named {name:?}");
            };
            let rows = engine::preview(db, cfg, &r.spec).await?;
            if rows.is_empty() {
                crate::outln!("{}: no data in the window (condition false)", clean(&name));
            }
            for (s, holds) in rows {
                let labels: Vec<String> =
                    s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let why = if holds {
                    "TRUE (would fire)".to_string()
                } else if engine::below_min_count(&r.spec, &s) {
                    format!(
                        "false ({} requests, below min_count {})",
                        s.volume.unwrap_or(0),
                        r.spec.min_count
                    )
                } else {
                    "false".to_string()
                };
                crate::outln!(
                    "{:<40}  {}  -> {why}",
                    clean(&labels.join(" ")),
                    crate::alerts::Op::standing(s.value, r.spec.threshold),
                );
            }
        }
        RulesAction::Remove { name } => {
            let r = operator::remove_rule(db, me, &name).await?;
            crate::outln!(
                "rule {} removed ({} alerts kept with their history, {} open ones resolved)",
                clean(&name),
                r.alerts_kept,
                r.resolved.len()
            );
        }
    }
    Ok(())
}

async fn set_status(db: &Db, me: &Operator, name: &str, status: &str) -> Result<()> {
    operator::set_rule_status(db, me, name, status).await?;
    crate::outln!("rule {} is now {status}", clean(name));
    Ok(())
}
