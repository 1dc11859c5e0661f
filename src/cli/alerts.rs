//! `opsdash alerts list|show|ack|resolve|silence|rules|dead`: the Alerts tab's actions from the
//! shell. Every action is on the record (audit event with OS user, SSH client address, host);
//! everything printed from the database is sanitized.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use clap::{Args as ClapArgs, Subcommand};

use crate::alerts::engine;
use crate::alerts::operator::{self, Operator};
use crate::alerts::{Matcher, RuleConfig, RuleSpec};
use crate::config::Config;
use crate::db::Db;
use crate::query::alerts as q;
use crate::sanitize::clean;

#[derive(Debug, Subcommand)]
pub enum AlertsAction {
    /// Open alerts, most severe first (--all: resolved ones too).
    List {
        #[arg(long)]
        all: bool,
        /// Only alerts in this state (pending, firing, acknowledged, suppressed, resolved).
        #[arg(long)]
        state: Option<String>,
    },
    /// One alert: value against threshold, labels, runbook, history, notification attempts.
    Show { id: i64 },
    /// Acknowledge a firing alert.
    Ack {
        id: i64,
        #[arg(long, short)]
        note: Option<String>,
    },
    /// Resolve an open alert.
    Resolve {
        id: i64,
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
    Dead,
}

#[derive(Debug, Subcommand)]
pub enum SilenceAction {
    /// Silence alerts matching every matcher (name=value, name!=value, name=~re, name!~re).
    Add {
        /// Take the matchers from this alert's labels.
        #[arg(long)]
        alert: Option<i64>,
        #[arg(long = "matcher", short)]
        matchers: Vec<String>,
        /// How long, e.g. 30m, 2h.
        #[arg(long, short, default_value = "1h")]
        duration: String,
        #[arg(long, short, default_value = "")]
        comment: String,
    },
    /// Pending and active silences (--all: expired too).
    List {
        #[arg(long)]
        all: bool,
    },
    /// End a silence now.
    Expire { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum RulesAction {
    List,
    /// Add or replace a rule managed from the CLI (config rules are changed in the config).
    Add(Box<RuleArgs>),
    Enable {
        name: String,
    },
    Disable {
        name: String,
    },
    /// Evaluate and show, never notify.
    Testing {
        name: String,
    },
    /// Measure a rule now and show each value against the threshold, without writing anything.
    Test {
        name: String,
    },
    /// Remove a rule added from the CLI.
    Remove {
        name: String,
    },
}

#[derive(Debug, ClapArgs)]
pub struct RuleArgs {
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub measure: String,
    #[arg(long)]
    pub threshold: f64,
    #[arg(long, default_value = "gt")]
    pub operator: String,
    #[arg(long, default_value = "warning")]
    pub severity: String,
    #[arg(long, default_value = "5m")]
    pub window: String,
    #[arg(long = "for", default_value = "0s")]
    pub for_: String,
    /// error_rate: fewer requests than this in the window and the condition is false
    /// (default 20; 0 for no minimum).
    #[arg(long)]
    pub min_count: Option<u32>,
    #[arg(long, default_value = "30s")]
    pub interval: String,
    /// Scope key=value (service, route, by, action...), repeatable.
    #[arg(long)]
    pub scope: Vec<String>,
    /// Extra label key=value, repeatable.
    #[arg(long)]
    pub label: Vec<String>,
    #[arg(long)]
    pub channel: Vec<String>,
    #[arg(long, default_value = "")]
    pub filter: String,
    #[arg(long, default_value = "")]
    pub query: String,
    #[arg(long, default_value = "")]
    pub description: String,
    #[arg(long, default_value = "")]
    pub runbook_url: String,
    #[arg(long, default_value = "enabled")]
    pub status: String,
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
        // Config rules show up (and are current) even when no worker ran yet.
        q::sync_config_rules(&db.write, &engine::config_specs(&cfg)).await?;
        run_action(&db, &cfg, action).await
    })
}

async fn run_action(db: &Db, cfg: &Config, action: AlertsAction) -> Result<ExitCode> {
    let me = Operator::current();
    match action {
        AlertsAction::List { all, state } => {
            let rows =
                q::list_alerts(&db.read, all || state.as_deref() == Some("resolved"), 1000).await?;
            println!(
                "{:>6}  {:<8}  {:<12}  {:<28}  {:>10}  {:>7}  LABELS",
                "ID", "SEVERITY", "STATE", "RULE", "VALUE", "AGE"
            );
            for a in rows
                .iter()
                .filter(|a| state.as_deref().is_none_or(|s| a.state == s))
            {
                let labels: Vec<String> = a
                    .labels
                    .0
                    .iter()
                    .filter(|(k, _)| *k != "alertname" && *k != "severity")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                println!(
                    "{:>6}  {:<8}  {:<12}  {:<28}  {:>10}  {:>7}  {}",
                    a.id,
                    clean(&a.severity),
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
            println!(
                "alert {} ({}) acknowledged by {}",
                a.id,
                clean(&a.rule_name),
                clean(&me.user)
            );
        }
        AlertsAction::Resolve { id, note } => {
            let a = operator::resolve(db, cfg, &me, id, note.as_deref()).await?;
            println!(
                "alert {} ({}) resolved by {}",
                a.id,
                clean(&a.rule_name),
                clean(&me.user)
            );
        }
        AlertsAction::Silence { action } => silence(db, &me, action).await?,
        AlertsAction::Rules { action } => {
            rules(db, cfg, &me, action.unwrap_or(RulesAction::List)).await?
        }
        AlertsAction::Dead => {
            println!(
                "{:>6}  {:<16}  {:<8}  {:>6}  {:<19}  ERROR",
                "ID", "CHANNEL", "KIND", "HTTP", "CREATED"
            );
            for (id, channel, kind, status, error, created) in
                q::dead_letters(&db.read, 200).await?
            {
                println!(
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
    let rule = q::rule_by_id(&mut conn, a.rule_id).await?;
    drop(conn);
    println!(
        "alert {}  {}  {}  rule {}",
        a.id,
        clean(&a.severity),
        clean(&a.state_label()),
        clean(&a.rule_name)
    );
    println!("  {}", clean(&a.summary));
    if let Some(r) = &rule {
        // The comparison as it stands, then the rule's own: never `0.194 > 5`.
        let standing = match (a.value, a.threshold) {
            (Some(v), Some(t)) => crate::alerts::Op::standing(v, t),
            _ => format!("{} vs {}", num(a.value), num(a.threshold)),
        };
        println!(
            "  value {standing} (fires when {} {}; {} over {}s, for {}s)",
            r.spec.op().symbol(),
            crate::alerts::fmt_value(r.spec.threshold),
            clean(&r.spec.metric),
            r.spec.window_s,
            r.spec.for_s
        );
        if !r.spec.description.is_empty() {
            println!("  {}", clean(&r.spec.description));
        }
        if let Some(rb) = &r.spec.runbook_url {
            println!("  runbook: {}", clean(rb));
        }
    }
    for (k, v) in &a.labels.0 {
        println!("  label {}={}", clean(k), clean(v));
    }
    println!("  pending since {}", ts(a.pending_since));
    if let Some(t) = a.fired_at {
        println!("  fired at {}", ts(t));
    }
    if let (Some(t), Some(by)) = (a.acknowledged_at, &a.acknowledged_by) {
        println!(
            "  acknowledged {} by {}: {}",
            ts(t),
            clean(by),
            clean(a.ack_note.as_deref().unwrap_or(""))
        );
    }
    if let (Some(t), Some(by)) = (a.resolved_at, &a.resolved_by) {
        println!(
            "  resolved {} by {}: {}",
            ts(t),
            clean(by),
            clean(a.resolve_note.as_deref().unwrap_or(""))
        );
    }
    println!("history:");
    for h in q::history(&db.read, id).await? {
        println!(
            "  {}  {:>12} -> {:<12}  {:<12}  value {}  {}",
            ts(h.ts),
            clean(h.from_state.as_deref().unwrap_or("")),
            clean(&h.to_state),
            clean(&h.actor),
            num(h.value),
            clean(h.note.as_deref().unwrap_or("")),
        );
    }
    println!("notification attempts:");
    for at in q::attempts_for_alert(&db.read, id).await? {
        println!(
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
            println!(
                "silence {id} active for {duration}: {}",
                clean(&shown.join(", "))
            );
        }
        SilenceAction::List { all } => {
            println!(
                "{:>5}  {:<8}  {:<19}  {:<19}  {:<12}  MATCHERS / COMMENT",
                "ID", "STATE", "STARTS", "ENDS", "CREATOR"
            );
            for s in q::silences(&db.read, all).await? {
                let ms: Vec<String> = s.matchers.0.iter().map(|m| m.to_string()).collect();
                println!(
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
            println!("silence {id} expired");
        }
    }
    Ok(())
}

async fn rules(db: &Db, cfg: &Config, me: &Operator, action: RulesAction) -> Result<()> {
    match action {
        RulesAction::List => {
            println!(
                "{:<28}  {:<8}  {:<8}  {:<6}  {:<20}  {:>12}  {:>10}  ERROR",
                "NAME", "SEVERITY", "STATUS", "SOURCE", "MEASURE", "CONDITION", "LAST"
            );
            for r in q::rules(&db.read).await? {
                let s = &r.spec;
                println!(
                    "{:<28}  {:<8}  {:<8}  {:<6}  {:<20}  {:>12}  {:>10}  {}",
                    clean(&s.name),
                    clean(&s.severity),
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
                status: a.status,
                measure: a.measure,
                scope: pairs(&a.scope, "--scope")?,
                filter: a.filter,
                query: a.query,
                operator: a.operator,
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
            let id = q::upsert_cli_rule(&db.write, &spec).await?;
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
            println!("rule {} saved (id {id})", clean(&spec.name));
        }
        RulesAction::Enable { name } => set_status(db, me, &name, "enabled").await?,
        RulesAction::Disable { name } => set_status(db, me, &name, "disabled").await?,
        RulesAction::Testing { name } => set_status(db, me, &name, "testing").await?,
        RulesAction::Test { name } => {
            let Some(r) = q::rule_by_name(&db.read, &name).await? else {
                bail!("no rule named {name:?}");
            };
            let rows = engine::preview(db, cfg, &r.spec).await?;
            if rows.is_empty() {
                println!("{}: no data in the window (condition false)", clean(&name));
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
                println!(
                    "{:<40}  {}  -> {why}",
                    clean(&labels.join(" ")),
                    crate::alerts::Op::standing(s.value, r.spec.threshold),
                );
            }
        }
        RulesAction::Remove { name } => {
            let r = operator::remove_rule(db, me, &name).await?;
            println!(
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
    println!("rule {} is now {status}", clean(name));
    Ok(())
}
