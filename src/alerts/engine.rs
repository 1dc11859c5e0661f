//! Rule evaluation, run by the worker: measure each due rule, decide each label set's next state
//! (`state::decide`), write alerts and their history, and put notifications in the outbox. The
//! whole evaluation of a rule is one transaction fenced by the lease epoch, so a stale leader
//! cannot write over its successor.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::PgConnection;

use super::state::{self, Input, Notify, Open, State};
use super::{label_key, silence_matches, RuleSpec};
use crate::config::Config;
use crate::db::Db;
use crate::query::alert_metrics::{self, Sample};
use crate::query::alerts::{self as q, AlertRow, Rule};
use crate::worker::wake::{Lookout, Topic, Wake};
use crate::worker::{lease, Job, JobContext};

pub const EVALUATE_JOB: &str = "alerts.evaluate";

/// Syncing the config's rules and pruning old samples happen on the first run under a lease
/// and then once a minute, not every tick: a running process's config does not change, and
/// both cost statements that were most of an idle dashboard's database traffic.
const UPKEEP_EVERY: Duration = Duration::from_secs(60);

/// The lease epoch and time of the last upkeep in this process.
type Upkeep = Arc<Mutex<Option<(i64, Instant)>>>;

/// The evaluation job: every `alert.tick_ms`, evaluates the rules whose interval has come. It
/// looks at the rules only one tick before the soonest is due, when a rule was added, enabled
/// or made due sooner (`wake`), for upkeep, or every few seconds in case a wake-up was lost:
/// a tick with nothing due costs no statement.
pub fn job(cfg: &Config, wake: &Wake) -> Job {
    let upkeep = Upkeep::default();
    let lookout = Arc::new(Lookout::new(wake.clone(), Topic::Rules));
    let tick = Duration::from_millis(cfg.alert.tick_ms.max(1));
    Job::new(EVALUATE_JOB, tick, move |ctx: JobContext| {
        let upkeep = upkeep.clone();
        let lookout = lookout.clone();
        async move {
            if !lookout.must_look(&ctx.db, ctx.epoch) && !upkeep_pending(&upkeep, ctx.epoch) {
                return Ok(());
            }
            match evaluate_due(&ctx, &upkeep).await {
                Ok((_, due_in)) => {
                    // Look one tick early: the round then waits within its tick for the rule
                    // to come due, so rules stay on their interval grid.
                    lookout.looked(ctx.epoch, due_in, tick);
                    Ok(())
                }
                Err(e) => {
                    lookout.forget();
                    Err(e)
                }
            }
        }
    })
}

/// Whether the next run should sync the config's rules and prune samples.
fn upkeep_pending(upkeep: &Upkeep, epoch: i64) -> bool {
    match *upkeep.lock().unwrap_or_else(|e| e.into_inner()) {
        Some((e, at)) => e != epoch || at.elapsed() >= UPKEEP_EVERY,
        None => true,
    }
}

/// Whether this run should sync the config's rules and prune samples; marks it done.
fn upkeep_due(upkeep: &Upkeep, epoch: i64) -> bool {
    let due = upkeep_pending(upkeep, epoch);
    if due {
        let mut last = upkeep.lock().unwrap_or_else(|e| e.into_inner());
        *last = Some((epoch, Instant::now()));
    }
    due
}

/// The config's rules, validated (invalid ones were refused when the config was loaded).
pub fn config_specs(cfg: &Config) -> Vec<RuleSpec> {
    cfg.alert
        .rules
        .iter()
        .filter_map(|r| RuleSpec::from_config(r).ok())
        .collect()
}

/// Syncs the config's rules, then evaluates every due rule, and keeps doing so until the tick
/// is over: a rule coming due within the tick is evaluated at its due time rather than at the
/// next tick (which made a 1 s rule wait up to 1.25 s). Returns how many evaluations ran and
/// when the soonest rule is due next (None: no rule to evaluate).
async fn evaluate_due(ctx: &JobContext, upkeep: &Upkeep) -> Result<(usize, Option<Duration>)> {
    let started = Instant::now();
    let tick = Duration::from_millis(ctx.cfg.alert.tick_ms.max(1));
    if upkeep_due(upkeep, ctx.epoch) {
        let synced = q::sync_config_rules(&ctx.db.write, &config_specs(&ctx.cfg)).await;
        let pruned = match synced {
            Ok(_) => q::prune_samples(&ctx.db.write, Duration::from_secs(86_400)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = pruned {
            // Try again on the next run rather than in a minute.
            *upkeep.lock().unwrap_or_else(|e| e.into_inner()) = None;
            return Err(e);
        }
    }
    let mut evaluated = 0;
    loop {
        let rules = q::due_rules(&ctx.db.write).await?;
        for rule in &rules {
            if let Err(e) = evaluate_rule(&ctx.db, &ctx.cfg, rule, Some(ctx.epoch)).await {
                if e.is::<lease::Fenced>() {
                    return Err(e);
                }
                tracing::warn!(rule = %rule.spec.name, "evaluation failed: {e:#}");
                q::record_rule_error(&ctx.db.write, rule.id, &format!("{e:#}")).await?;
            }
        }
        evaluated += rules.len();
        match q::next_due_in(&ctx.db.write).await? {
            Some(wait) if started.elapsed() + wait < tick => tokio::time::sleep(wait).await,
            due_in => return Ok((evaluated, due_in)),
        }
    }
}

/// Measures a rule without writing anything ("evaluate now" in the TUI and CLI): each label
/// set's value and whether the condition holds.
pub async fn preview(db: &Db, cfg: &Config, spec: &RuleSpec) -> Result<Vec<(Sample, bool)>> {
    let samples = alert_metrics::measure(&db.read, spec, cfg.alert.sql_timeout()).await?;
    let op = spec.op();
    Ok(samples
        .into_iter()
        .map(|s| {
            let holds = op.holds(s.value, spec.threshold);
            (s, holds)
        })
        .collect())
}

fn full_labels(spec: &RuleSpec, measured: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut l = spec.labels.clone();
    l.extend(measured.clone());
    l.insert("alertname".into(), spec.name.clone());
    l.insert("severity".into(), spec.severity.clone());
    l
}

fn fmt_labels(l: &BTreeMap<String, String>) -> String {
    l.iter()
        .filter(|(k, _)| *k != "alertname" && *k != "severity")
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn summary(spec: &RuleSpec, labels: &BTreeMap<String, String>, value: Option<f64>) -> String {
    let l = fmt_labels(labels);
    let v = value
        .map(|v| format!("{v:.3}"))
        .unwrap_or_else(|| "no data".into());
    format!(
        "{}{}{}: {} {} {}",
        spec.name,
        if l.is_empty() { "" } else { " " },
        l,
        v,
        spec.op().symbol(),
        spec.threshold
    )
}

/// The alert as a receiver sees it (Alertmanager webhook alert, plus opsdash's own fields).
pub fn snapshot(spec: &RuleSpec, a: &AlertRow) -> Value {
    let fingerprint = {
        use sha2::{Digest, Sha256};
        hex::encode(&Sha256::digest(format!("{}\u{0}{}", a.rule_id, a.label_key))[..8])
    };
    let zero = "0001-01-01T00:00:00Z".to_string();
    json!({
        "status": if a.state == "resolved" { "resolved" } else { "firing" },
        "labels": a.labels.0,
        "annotations": {
            "summary": a.summary,
            "description": spec.description,
            "runbook_url": spec.runbook_url.clone().unwrap_or_default(),
        },
        "startsAt": a.fired_at.unwrap_or(a.pending_since).to_rfc3339(),
        "endsAt": a.resolved_at.map(|t| t.to_rfc3339()).unwrap_or(zero),
        "generatorURL": "",
        "fingerprint": fingerprint,
        "opsdash": {
            "alert_id": a.id,
            "rule": spec.name,
            "severity": a.severity,
            "state": a.state,
            "value": a.value,
            "threshold": a.threshold,
            "operator": spec.operator,
        },
    })
}

fn group_key(rule_id: i64, spec: &RuleSpec, labels: &BTreeMap<String, String>) -> String {
    let g: BTreeMap<String, String> = spec
        .group_by
        .iter()
        .map(|k| (k.clone(), labels.get(k).cloned().unwrap_or_default()))
        .collect();
    format!("{rule_id}:{}", label_key(&g))
}

/// Puts a notification of `alert` into the outbox for every channel of its rule (resolved
/// notifications only for channels that want them). Marks the alert notified.
pub async fn enqueue_for_alert(
    conn: &mut PgConnection,
    cfg: &Config,
    rule_id: i64,
    spec: &RuleSpec,
    alert: &AlertRow,
    notify: Notify,
) -> Result<usize> {
    if spec.status != "enabled" {
        return Ok(0);
    }
    let snap = snapshot(spec, alert);
    let gk = group_key(rule_id, spec, &alert.labels.0);
    let mut queued = 0;
    for channel in &spec.channels {
        if notify == Notify::Resolved
            && cfg.alert.channel(channel).is_some_and(|c| !c.send_resolved)
        {
            continue;
        }
        let id = q::enqueue(
            conn,
            rule_id,
            spec.max_per_hour,
            channel,
            notify.kind(),
            &gk,
            alert.id,
            &snap,
            cfg.alert.group_wait(),
        )
        .await?;
        match id {
            Some(_) => queued += 1,
            None => tracing::info!(rule = %spec.name, channel, "hourly cap reached: not sent"),
        }
    }
    if queued > 0 && notify != Notify::Resolved {
        q::mark_notified(conn, alert.id).await?;
    }
    Ok(queued)
}

/// Evaluates one rule and applies the outcome. `epoch`: the lease epoch fencing the writes
/// (None only for callers outside the worker, such as tests driving the engine directly).
pub async fn evaluate_rule(
    db: &Db,
    cfg: &Config,
    rule: &Rule,
    epoch: Option<i64>,
) -> Result<Vec<Sample>> {
    let spec = &rule.spec;
    let samples = alert_metrics::measure(&db.read, spec, cfg.alert.sql_timeout()).await?;
    let mut tx = db.write.begin().await?;
    if let Some(epoch) = epoch {
        lease::fence(&mut *tx, EVALUATE_JOB, epoch).await?;
    }
    let now = q::transaction_now(&mut tx).await?;
    let silences = q::active_silences(&mut tx).await?;
    let open = q::open_alerts_for_update(&mut tx, rule.id).await?;
    let mut open_by_key: BTreeMap<String, AlertRow> =
        open.into_iter().map(|a| (a.label_key.clone(), a)).collect();
    let op = spec.op();
    let mut seen = BTreeSet::new();
    let mut inputs: Vec<(BTreeMap<String, String>, Option<f64>)> = Vec::new();
    for s in &samples {
        if seen.insert(label_key(&s.labels)) {
            inputs.push((s.labels.clone(), Some(s.value)));
        }
    }
    for a in open_by_key.values() {
        if !seen.contains(&a.label_key) {
            // The label set disappeared from the measure: its condition no longer holds.
            let measured: BTreeMap<String, String> = a
                .labels
                .0
                .iter()
                .filter(|(k, _)| {
                    !spec.labels.contains_key(*k) && *k != "alertname" && *k != "severity"
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            inputs.push((measured, None));
        }
    }
    for (measured, value) in inputs {
        let key = label_key(&measured);
        let labels = full_labels(spec, &measured);
        let silenced = silences
            .iter()
            .any(|s| silence_matches(&s.matchers.0, &labels));
        let current = open_by_key.remove(&key);
        let input = Input {
            now,
            condition: value.is_some_and(|v| op.holds(v, spec.threshold)),
            silenced,
            for_: Duration::from_secs(spec.for_s.max(0) as u64),
            auto_resolve: spec.auto_resolve,
            resolve_after: Duration::from_secs(spec.resolve_after_s.max(0) as u64),
            repeat_interval: Duration::from_secs(spec.repeat_interval_s.max(0) as u64),
        };
        let open_state = current.as_ref().and_then(|a| {
            Some(Open {
                state: State::parse(&a.state)?,
                pending_since: a.pending_since,
                condition_false_since: a.condition_false_since,
                last_notified_at: a.last_notified_at,
            })
        });
        let Some(step) = state::decide(open_state.as_ref(), &input) else {
            continue;
        };
        let text = summary(
            spec,
            &labels,
            value.or(current.as_ref().and_then(|a| a.value)),
        );
        let row = apply(
            &mut tx,
            rule,
            epoch,
            current.as_ref(),
            &key,
            &labels,
            value,
            &text,
            now,
            &step,
        )
        .await?;
        let Some(row) = row else { continue };
        if let Some(v) = value.filter(|_| row.state != "resolved") {
            q::record_sample(&mut tx, row.id, now, v).await?;
        }
        if let Some(n) = step.notify {
            enqueue_for_alert(&mut tx, cfg, rule.id, spec, &row, n).await?;
        }
    }
    let top = samples
        .iter()
        .map(|s| s.value)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    q::record_rule_evaluated(&mut tx, rule.id, now, top).await?;
    tx.commit().await?;
    Ok(samples)
}

#[allow(clippy::too_many_arguments)]
async fn apply(
    conn: &mut PgConnection,
    rule: &Rule,
    epoch: Option<i64>,
    current: Option<&AlertRow>,
    key: &str,
    labels: &BTreeMap<String, String>,
    value: Option<f64>,
    summary: &str,
    now: DateTime<Utc>,
    step: &state::Step,
) -> Result<Option<AlertRow>> {
    let epoch = epoch.unwrap_or(0);
    let spec = &rule.spec;
    if step.create {
        let to = step.to.unwrap_or(State::Pending).name();
        let new = q::NewAlert {
            rule_id: rule.id,
            rule_name: &spec.name,
            severity: &spec.severity,
            labels,
            label_key: key,
            state: to,
            value,
            threshold: spec.threshold,
            summary,
            now,
            epoch,
        };
        let row = q::insert_alert(conn, &new).await?;
        if let Some(a) = &row {
            q::record_history(conn, a.id, None, to, "worker", None, value).await?;
        }
        return Ok(row);
    }
    let Some(cur) = current else { return Ok(None) };
    let to = step.to.map(|s| s.name());
    let update = q::AlertUpdate {
        state: to,
        value,
        summary,
        condition_false_since: step.condition_false_since,
        now,
        epoch,
    };
    let row = q::update_alert(conn, cur.id, &update).await?;
    if let Some(to) = to {
        let note = (to == "resolved").then_some("condition false for the resolve period");
        q::record_history(conn, cur.id, Some(&cur.state), to, "worker", note, value).await?;
    }
    Ok(Some(row))
}
