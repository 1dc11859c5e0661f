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

use super::state::{self, Input, Notify, Open};
use super::{fmt_value, label_key, silence_matches, Op, RuleSpec};
use crate::config::Config;
use crate::db::Db;
use crate::model::AlertState;
use crate::query::alert_metrics::{self, Sample};
use crate::query::alerts::{self as q, AlertRow};
use crate::query::rules::Rule;
use crate::query::{outbox, rules, silences};
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
        let synced = rules::sync_config_rules(&ctx.db.write, &config_specs(&ctx.cfg)).await;
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
        let rules = rules::due_rules(&ctx.db.write).await?;
        for rule in &rules {
            if let Err(e) = evaluate_rule(&ctx.db, &ctx.cfg, rule, Some(ctx.epoch)).await {
                if e.is::<lease::Fenced>() {
                    return Err(e);
                }
                tracing::warn!(rule = %rule.spec.name, "evaluation failed: {e:#}");
                rules::record_rule_error(&ctx.db.write, rule.id, &format!("{e:#}")).await?;
            }
        }
        evaluated += rules.len();
        match rules::next_due_in(&ctx.db.write).await? {
            Some(wait) if started.elapsed() + wait < tick => tokio::time::sleep(wait).await,
            due_in => return Ok((evaluated, due_in)),
        }
    }
}

/// Measures a rule without writing anything ("evaluate now" in the TUI and CLI): each label
/// set's value and whether the condition holds.
pub async fn preview(db: &Db, cfg: &Config, spec: &RuleSpec) -> Result<Vec<(Sample, bool)>> {
    let samples = alert_metrics::measure(&db.read, spec, cfg.alert.sql_timeout()).await?;
    Ok(samples
        .into_iter()
        .map(|s| {
            let holds = condition_holds(spec, &s);
            (s, holds)
        })
        .collect())
}

/// Whether a measured label set meets the rule: the comparison holds and, for a rate rule,
/// the window held at least `min_count` requests.
pub fn condition_holds(spec: &RuleSpec, s: &Sample) -> bool {
    spec.op().holds(s.value, spec.threshold) && !below_min_count(spec, s)
}

/// A rate rule's label set measured over fewer requests than its `min_count`.
pub fn below_min_count(spec: &RuleSpec, s: &Sample) -> bool {
    spec.min_count > 0 && s.volume.is_some_and(|n| n < i64::from(spec.min_count))
}

fn full_labels(spec: &RuleSpec, measured: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut l = spec.labels.clone();
    l.extend(measured.clone());
    l.insert("alertname".into(), spec.name.clone());
    l.insert("severity".into(), spec.severity.name().to_string());
    l
}

/// One label set of one evaluation, as the state machine is fed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// The alert's identity within its rule (`label_key` of the measured labels).
    pub key: String,
    /// Every label of the alert (rule labels, measured labels, alertname, severity).
    pub labels: BTreeMap<String, String>,
    /// The measured sample; None when the label set is absent from the measure.
    pub sample: Option<Sample>,
    pub condition: bool,
}

/// What one evaluation feeds the state machine: every measured label set, and every open
/// alert of the rule the measure no longer returns, as false. An open alert is matched by the
/// identity it was stored with, never by labels rebuilt from the current rule: rebuilding them
/// (after the rule's labels changed, or when a rule label shares a measured label's name) gave
/// another key, and the alert was never fed again and stayed open for ever.
pub fn plan<'a>(
    spec: &RuleSpec,
    samples: &[Sample],
    open: impl IntoIterator<Item = (&'a str, &'a BTreeMap<String, String>)>,
) -> Vec<Planned> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for s in samples {
        let key = label_key(&s.labels);
        if seen.insert(key.clone()) {
            out.push(Planned {
                key,
                labels: full_labels(spec, &s.labels),
                condition: condition_holds(spec, s),
                sample: Some(s.clone()),
            });
        }
    }
    for (key, labels) in open {
        if seen.insert(key.to_string()) {
            out.push(Planned {
                key: key.to_string(),
                labels: labels.clone(),
                sample: None,
                condition: false,
            });
        }
    }
    out
}

fn fmt_labels(l: &BTreeMap<String, String>) -> String {
    l.iter()
        .filter(|(k, _)| *k != "alertname" && *k != "severity")
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn fmt_window(spec: &RuleSpec) -> String {
    humantime::format_duration(Duration::from_secs(spec.window_s.max(0) as u64)).to_string()
}

/// The alert's text: the value against the threshold as they stand (`0.194 < 5`, never
/// `0.194 > 5`), and why the condition is false when it is.
pub fn summary(
    spec: &RuleSpec,
    labels: &BTreeMap<String, String>,
    sample: Option<&Sample>,
) -> String {
    let l = fmt_labels(labels);
    let rule = format!("{} {}", spec.op().symbol(), fmt_value(spec.threshold));
    let what = match sample {
        None => format!(
            "no data in the last {} (condition false; fires when {rule})",
            fmt_window(spec)
        ),
        Some(s) if below_min_count(spec, s) => format!(
            "{}, but {} requests in {}, below min_count {} (condition false)",
            Op::standing(s.value, spec.threshold),
            s.volume.unwrap_or(0),
            fmt_window(spec),
            spec.min_count
        ),
        Some(s) if spec.op().holds(s.value, spec.threshold) => {
            Op::standing(s.value, spec.threshold)
        }
        Some(s) => format!(
            "{} (condition false; fires when {rule})",
            Op::standing(s.value, spec.threshold)
        ),
    };
    format!(
        "{}{}{}: {what}",
        spec.name,
        if l.is_empty() { "" } else { " " },
        l
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
        "status": if a.state.is_open() { "firing" } else { "resolved" },
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
        let id = outbox::enqueue(
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
    let silences = silences::active_silences(&mut tx).await?;
    let open = q::open_alerts_for_update(&mut tx, rule.id).await?;
    let mut open_by_key: BTreeMap<String, AlertRow> =
        open.into_iter().map(|a| (a.label_key.clone(), a)).collect();
    let planned = plan(
        spec,
        &samples,
        open_by_key
            .values()
            .map(|a| (a.label_key.as_str(), &a.labels.0)),
    );
    for p in planned {
        let silenced = silences
            .iter()
            .any(|s| silence_matches(&s.matchers.0, &p.labels));
        let current = open_by_key.remove(&p.key);
        let input = Input {
            now,
            condition: p.condition,
            silenced,
            for_: Duration::from_secs(spec.for_s.max(0) as u64),
            auto_resolve: spec.auto_resolve,
            resolve_after: Duration::from_secs(spec.resolve_after_s.max(0) as u64),
            repeat_interval: Duration::from_secs(spec.repeat_interval_s.max(0) as u64),
        };
        let open_state = current.as_ref().map(|a| Open {
            state: a.state,
            pending_since: a.pending_since,
            condition_false_since: a.condition_false_since,
            last_notified_at: a.last_notified_at,
        });
        let Some(step) = state::decide(open_state.as_ref(), &input) else {
            continue;
        };
        let value = p.sample.as_ref().map(|s| s.value);
        let text = summary(spec, &p.labels, p.sample.as_ref());
        let row = apply(
            &mut tx,
            rule,
            epoch,
            current.as_ref(),
            &p.key,
            &p.labels,
            value,
            &text,
            now,
            &step,
        )
        .await?;
        let Some(row) = row else { continue };
        if let Some(v) = value.filter(|_| row.state.is_open()) {
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
    rules::record_rule_evaluated(&mut tx, rule.id, now, top).await?;
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
        let to = step.to.unwrap_or(AlertState::Pending);
        let new = q::NewAlert {
            rule_id: rule.id,
            rule_name: &spec.name,
            severity: spec.severity,
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
    let to = step.to;
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
        let note = (to == AlertState::Resolved).then_some("condition false for the resolve period");
        q::record_history(conn, cur.id, Some(cur.state), to, "worker", note, value).await?;
    }
    Ok(Some(row))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the measure says about one label set at one evaluation.
    #[derive(Debug, Clone, Copy)]
    enum Seen {
        Absent,
        /// Present with the value above the threshold and enough requests.
        True,
        /// Present below the threshold.
        False,
        /// Present above the threshold but with fewer requests than `min_count`.
        Thin,
    }

    #[derive(Debug, Clone)]
    struct Round {
        advance_s: i64,
        seen: [Seen; 3],
        silenced: [bool; 3],
        ack: [bool; 3],
        /// The operator edits the rule's own labels before this round.
        relabel: Option<usize>,
    }

    const SERVICES: [&str; 3] = ["edge", "api", "web"];

    /// Rule labels to choose from; one shares the measured label's name.
    fn rule_labels(i: usize) -> BTreeMap<String, String> {
        let pairs: &[(&str, &str)] = match i % 4 {
            0 => &[],
            1 => &[("team", "payments")],
            2 => &[("service", "static"), ("team", "payments")],
            _ => &[("env", "prod")],
        };
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn seen() -> impl Strategy<Value = Seen> {
        prop_oneof![
            3 => Just(Seen::Absent),
            3 => Just(Seen::True),
            2 => Just(Seen::False),
            1 => Just(Seen::Thin),
        ]
    }

    fn round() -> impl Strategy<Value = Round> {
        (
            1i64..90,
            [seen(), seen(), seen()],
            [
                prop::bool::weighted(0.15),
                prop::bool::weighted(0.15),
                prop::bool::weighted(0.15),
            ],
            [
                prop::bool::weighted(0.1),
                prop::bool::weighted(0.1),
                prop::bool::weighted(0.1),
            ],
            prop::option::weighted(0.1, 0usize..4),
        )
            .prop_map(|(advance_s, seen, silenced, ack, relabel)| Round {
                advance_s,
                seen,
                silenced,
                ack,
                relabel,
            })
    }

    fn spec(labels: usize, for_s: i32, resolve_after_s: i32, min_count: i32) -> RuleSpec {
        RuleSpec {
            name: "high-error-rate".into(),
            description: String::new(),
            severity: crate::model::Severity::Critical,
            status: "enabled".into(),
            metric: "error_rate".into(),
            scope: BTreeMap::new(),
            filter: None,
            query: None,
            operator: "gt".into(),
            threshold: 5.0,
            window_s: 300,
            for_s,
            eval_interval_s: 30,
            labels: rule_labels(labels),
            group_by: Vec::new(),
            channels: Vec::new(),
            repeat_interval_s: 3600,
            max_per_hour: 10,
            auto_resolve: true,
            resolve_after_s,
            runbook_url: None,
            min_count,
        }
    }

    /// An open alert as the database would hold it.
    #[derive(Debug, Clone)]
    struct Stored {
        labels: BTreeMap<String, String>,
        open: Open,
    }

    proptest! {
        /// Whatever each label set does from one evaluation to the next (present and true,
        /// present and false, present with too few requests, or gone from the measure), with
        /// silences, acknowledgements and the rule's labels edited meanwhile: an open alert
        /// whose label set has been absent or false for the resolve period is resolved at
        /// that evaluation, one that has not is still open, and none resolves while true.
        #[test]
        fn an_absent_or_false_label_set_resolves_after_the_resolve_period_and_never_while_true(
            rounds in prop::collection::vec(round(), 1..60),
            labels in 0usize..4,
            for_s in 0i32..120,
            resolve_after_s in 0i32..400,
            min_count in 0i32..30,
        ) {
            let mut spec = spec(labels, for_s, resolve_after_s, min_count);
            let mut now = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
            let mut store: BTreeMap<String, Stored> = BTreeMap::new();
            // Per service: when its current run of absent/false evaluations began while open.
            let mut false_run: [Option<DateTime<Utc>>; 3] = [None; 3];
            let key_of = |svc: &str| label_key(&[("service".to_string(), svc.to_string())].into());
            for r in rounds {
                now += chrono::Duration::seconds(r.advance_s);
                if let Some(l) = r.relabel {
                    spec.labels = rule_labels(l);
                }
                for (i, svc) in SERVICES.iter().enumerate() {
                    if let Some(s) = store.get_mut(&key_of(svc)) {
                        if r.ack[i] && s.open.state.may_become(AlertState::Acknowledged) {
                            s.open.state = AlertState::Acknowledged;
                        }
                    }
                }
                let samples: Vec<Sample> = SERVICES
                    .iter()
                    .zip(r.seen)
                    .filter_map(|(svc, seen)| {
                        let (value, volume) = match seen {
                            Seen::Absent => return None,
                            Seen::True => (50.0, 100 + i64::from(min_count)),
                            Seen::False => (1.0, 100 + i64::from(min_count)),
                            Seen::Thin => (50.0, i64::from(min_count) - 1),
                        };
                        Some(Sample {
                            labels: [("service".to_string(), svc.to_string())].into(),
                            value,
                            volume: Some(volume.max(0)),
                        })
                    })
                    .collect();
                let before = store.clone();
                let planned = plan(
                    &spec,
                    &samples,
                    before.iter().map(|(k, s)| (k.as_str(), &s.labels)),
                );
                for p in planned {
                    let i = SERVICES.iter().position(|svc| key_of(svc) == p.key);
                    prop_assert!(i.is_some(), "an open alert was fed as {:?}, not as itself", p.key);
                    let i = i.unwrap_or_default();
                    let input = Input {
                        now,
                        condition: p.condition,
                        silenced: r.silenced[i],
                        for_: Duration::from_secs(spec.for_s as u64),
                        auto_resolve: true,
                        resolve_after: Duration::from_secs(spec.resolve_after_s as u64),
                        repeat_interval: Duration::from_secs(3600),
                    };
                    let cur = store.get(&p.key).map(|s| s.open.clone());
                    let Some(step) = state::decide(cur.as_ref(), &input) else { continue };
                    match step.to.or(cur.as_ref().map(|o| o.state)) {
                        Some(AlertState::Resolved) => {
                            store.remove(&p.key);
                        }
                        Some(to) => {
                            let e = store.entry(p.key.clone()).or_insert(Stored {
                                labels: p.labels.clone(),
                                open: Open {
                                    state: to,
                                    pending_since: now,
                                    condition_false_since: None,
                                    last_notified_at: None,
                                },
                            });
                            e.open.state = to;
                            e.open.condition_false_since = step.condition_false_since;
                            if step.notify.is_some() {
                                e.open.last_notified_at = Some(now);
                            }
                        }
                        None => {}
                    }
                }
                for (i, svc) in SERVICES.iter().enumerate() {
                    let key = key_of(svc);
                    let truth = matches!(r.seen[i], Seen::True)
                        || (matches!(r.seen[i], Seen::Thin) && min_count == 0);
                    let was = before.get(&key).map(|s| s.open.state);
                    if truth {
                        false_run[i] = None;
                        if was.is_some() {
                            prop_assert!(store.contains_key(&key), "{svc}: resolved while true");
                        }
                        continue;
                    }
                    let Some(was) = was else {
                        false_run[i] = None;
                        prop_assert!(!store.contains_key(&key), "{svc}: opened while false");
                        continue;
                    };
                    let since = *false_run[i].get_or_insert(now);
                    let due = (now - since).num_seconds() >= i64::from(resolve_after_s);
                    if was == AlertState::Pending || due {
                        prop_assert!(
                            !store.contains_key(&key),
                            "{svc} ({:?}) false or absent since {since} is still open at {now}",
                            r.seen[i]
                        );
                        false_run[i] = None;
                    } else {
                        prop_assert!(store.contains_key(&key), "{svc}: resolved too early");
                    }
                }
            }
        }
    }

    #[test]
    fn the_text_states_the_comparison_as_it_stands_and_why_it_is_false() {
        let spec = spec(0, 0, 300, 20);
        let labels: BTreeMap<String, String> = [("service".to_string(), "edge".to_string())].into();
        let s = |value, volume| Sample {
            labels: labels.clone(),
            value,
            volume: Some(volume),
        };
        assert_eq!(
            summary(&spec, &labels, Some(&s(0.194, 500))),
            "high-error-rate service=edge: 0.194 < 5 (condition false; fires when > 5)"
        );
        assert_eq!(
            summary(&spec, &labels, Some(&s(7.5, 500))),
            "high-error-rate service=edge: 7.5 > 5"
        );
        assert_eq!(
            summary(&spec, &labels, Some(&s(50.0, 4))),
            "high-error-rate service=edge: 50 > 5, but 4 requests in 5m, below min_count 20 \
             (condition false)"
        );
        assert!(!condition_holds(&spec, &s(50.0, 4)));
        assert!(condition_holds(&spec, &s(50.0, 20)));
        assert_eq!(
            summary(&spec, &labels, None),
            "high-error-rate service=edge: no data in the last 5m (condition false; fires when > 5)"
        );
    }
}
