//! External alerts: what opsdash does with an alert Prometheus sends it (Alertmanager API v2,
//! `serve::alertmanager` decodes the wire format). One open alert per sender and label set,
//! refreshed by every re-send; resolved when the sender says so (endsAt in the past) or when
//! its endsAt passes without a re-send (the `alerts.external` job); silenced by opsdash's
//! silences; notified through the outbox with the same per-rule throttling as opsdash's own.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::PgConnection;

use super::state::Notify;
use super::{label_key, silence_matches};
use crate::config::Config;
use crate::db::Db;
use crate::model::{AlertState, Severity};
use crate::query::alerts::{self as q};
use crate::query::external_alerts::{self as xq, ExternalRow, SourceRule};
use crate::query::silences::SilenceRow;
use crate::query::{outbox, silences};
use crate::worker::{lease, Job, JobContext};

pub const JOB: &str = "alerts.external";

/// How long an alert without endsAt stays open without a re-send (Alertmanager's default
/// `resolve_timeout`).
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(300);

/// An alert as its sender stated it (already decoded and checked).
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub generator_url: Option<String>,
}

/// Alertmanager's fingerprint of a label set (prometheus/common `LabelSet.Fingerprint`):
/// FNV-1a 64 over the sorted names and values, each followed by the 0xff separator, printed
/// as 16 hex digits. amtool and Alertmanager's UI show alerts by it.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    let mut h = OFFSET;
    let mut add = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    // BTreeMap iterates in byte order of the names, as Go's sort of label names.
    for (k, v) in labels {
        add(k.as_bytes());
        add(&[0xff]);
        add(v.as_bytes());
        add(&[0xff]);
    }
    format!("{h:016x}")
}

/// opsdash's severity of an external alert, from its `severity` label: the four opsdash
/// knows as they are, common synonyms mapped, anything else (or none) a warning.
pub fn severity(labels: &BTreeMap<String, String>) -> Severity {
    match labels
        .get("severity")
        .map(|s| s.to_ascii_lowercase())
        .as_deref()
    {
        Some("critical" | "page" | "fatal" | "emergency" | "high") => Severity::Critical,
        Some("error" | "err" | "major") => Severity::Error,
        Some("info" | "informational" | "none" | "low" | "notice") => Severity::Info,
        _ => Severity::Warning,
    }
}

/// The one-line text shown for the alert: its summary annotation, else its description,
/// else its alert name.
pub fn summary(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> String {
    ["summary", "description", "message"]
        .iter()
        .find_map(|k| annotations.get(*k).filter(|v| !v.trim().is_empty()))
        .cloned()
        .unwrap_or_else(|| labels.get("alertname").cloned().unwrap_or_default())
}

/// What a batch did, for the reply and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub opened: u64,
    pub refreshed: u64,
    pub resolved: u64,
    /// Resolved alerts of label sets with no open alert, and re-sends of an episode an
    /// operator resolved by hand: nothing to do.
    pub ignored: u64,
}

/// Stores a batch from `source` in one transaction: a 2xx to the sender means all of it is
/// committed.
pub async fn receive(db: &Db, cfg: &Config, source: &str, alerts: &[Received]) -> Result<Outcome> {
    let channels: Vec<String> = cfg.alert.channels.iter().map(|c| c.name.clone()).collect();
    let mut tx = db.write.begin().await?;
    let rule = xq::source_rule(&mut tx, source, &channels).await?;
    let now = xq::now(&mut tx).await?;
    let silences = silences::active_silences(&mut tx).await?;
    let mut out = Outcome::default();
    for a in alerts {
        let key = label_key(&a.labels);
        let starts_at = a.starts_at.unwrap_or(now);
        let ends_at = a
            .ends_at
            .unwrap_or_else(|| now + chrono::Duration::seconds(RESOLVE_TIMEOUT.as_secs() as i64));
        if ends_at <= now {
            match xq::resolve_by_sender(&mut tx, rule.id, &key, ends_at).await? {
                Some((row, before)) => {
                    q::record_history(
                        &mut tx,
                        row.id,
                        Some(before),
                        AlertState::Resolved,
                        source,
                        Some("resolved by its sender"),
                        None,
                    )
                    .await?;
                    notify(&mut tx, cfg, &rule, &row, Notify::Resolved).await?;
                    out.resolved += 1;
                }
                None => out.ignored += 1,
            }
            continue;
        }
        let fp = fingerprint(&a.labels);
        let text = summary(&a.labels, &a.annotations);
        let alertname = a.labels.get("alertname").map(String::as_str).unwrap_or("");
        let incoming = xq::Incoming {
            rule_id: rule.id,
            source,
            alertname,
            severity: severity(&a.labels),
            labels: &a.labels,
            label_key: &key,
            fingerprint: &fp,
            annotations: &a.annotations,
            generator_url: a.generator_url.as_deref(),
            summary: &text,
            starts_at,
            ends_at,
            silenced: silenced_by(&silences, &a.labels).next().is_some(),
        };
        let Some(stored) = xq::store_firing(&mut tx, &incoming).await? else {
            out.ignored += 1;
            continue;
        };
        let row = &stored.row;
        // Opened by this send: a concurrent send of the same new label set may have opened
        // it first, and then this one is a re-send (received_count says which).
        let opened = row.received_count == 1;
        if opened {
            out.opened += 1;
            q::record_history(&mut tx, row.id, None, row.state, source, None, None).await?;
            if row.state == AlertState::Firing {
                notify(&mut tx, cfg, &rule, row, Notify::Firing).await?;
            }
            continue;
        }
        out.refreshed += 1;
        let before = stored.before.unwrap_or(row.state);
        if before != row.state {
            q::record_history(&mut tx, row.id, Some(before), row.state, source, None, None).await?;
        }
        if row.state == AlertState::Firing {
            let due = if before == AlertState::Suppressed {
                Some(Notify::Firing)
            } else {
                repeat_due(&rule, row, now).then_some(Notify::Repeat)
            };
            if let Some(n) = due {
                notify(&mut tx, cfg, &rule, row, n).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(out)
}

/// A firing alert last notified longer ago than the rule's repeat interval.
fn repeat_due(rule: &SourceRule, row: &ExternalRow, now: DateTime<Utc>) -> bool {
    let every = chrono::Duration::seconds(i64::from(rule.repeat_interval_s.max(0)));
    rule.repeat_interval_s > 0 && row.last_notified_at.is_some_and(|t| now - t >= every)
}

/// The ids of the active silences whose matchers all match `labels`.
pub fn silenced_by<'a>(
    silences: &'a [SilenceRow],
    labels: &'a BTreeMap<String, String>,
) -> impl Iterator<Item = i64> + 'a {
    silences
        .iter()
        .filter(|s| silence_matches(&s.matchers.0, labels))
        .map(|s| s.id)
}

/// The alert as a channel receives it: Alertmanager's webhook alert with what the sender sent
/// (annotations, generatorURL, fingerprint), plus opsdash's own fields.
pub fn snapshot(row: &ExternalRow) -> Value {
    let zero = "0001-01-01T00:00:00Z".to_string();
    let resolved = !row.state.is_open();
    json!({
        "status": if resolved { "resolved" } else { "firing" },
        "labels": row.labels.0,
        "annotations": row.annotations.0,
        "startsAt": row.starts_at.to_rfc3339(),
        "endsAt": if resolved {
            row.resolved_at.or(row.ends_at).map(|t| t.to_rfc3339()).unwrap_or(zero)
        } else {
            zero
        },
        "generatorURL": row.generator_url.clone().unwrap_or_default(),
        "fingerprint": row.fingerprint,
        "opsdash": {
            "alert_id": row.id,
            "rule": row.rule_name,
            "source": row.source,
            "severity": row.severity,
            "state": row.state,
            "external": true,
        },
    })
}

/// Puts a message about the alert in the outbox for every channel of the sender's rule,
/// under that rule's hourly cap (`outbox::enqueue`); resolved messages only for channels that want
/// them. A disabled or testing-mode sender notifies nobody.
async fn notify(
    conn: &mut PgConnection,
    cfg: &Config,
    rule: &SourceRule,
    row: &ExternalRow,
    n: Notify,
) -> Result<usize> {
    if rule.status != "enabled" {
        return Ok(0);
    }
    let snap = snapshot(row);
    let group: BTreeMap<String, String> = rule
        .group_by
        .iter()
        .map(|k| (k.clone(), row.labels.0.get(k).cloned().unwrap_or_default()))
        .collect();
    let group_key = format!("{}:{}", rule.id, label_key(&group));
    let mut queued = 0;
    for channel in &rule.channels {
        if n == Notify::Resolved && cfg.alert.channel(channel).is_some_and(|c| !c.send_resolved) {
            continue;
        }
        let id = outbox::enqueue(
            conn,
            rule.id,
            rule.max_per_hour,
            channel,
            n.kind(),
            &group_key,
            row.id,
            &snap,
            cfg.alert.group_wait(),
        )
        .await?;
        match id {
            Some(_) => queued += 1,
            None => tracing::info!(rule = %rule.name, channel, "hourly cap reached: not sent"),
        }
    }
    if queued > 0 && n != Notify::Resolved {
        q::mark_notified(conn, row.id).await?;
    }
    Ok(queued)
}

/// The sweep job: every second, resolves external alerts whose endsAt passed without a
/// re-send, and applies silences created or ended since (firing <-> suppressed), so neither
/// waits for the sender's next re-send.
pub fn job() -> Job {
    Job::new(JOB, Duration::from_secs(1), |ctx: JobContext| async move {
        sweep(&ctx.db, &ctx.cfg, Some(ctx.epoch)).await.map(|_| ())
    })
}

/// One sweep; returns how many alerts it resolved and how many changed between firing and
/// suppressed. `epoch`: the lease fencing the writes (None for tests driving it directly).
pub async fn sweep(db: &Db, cfg: &Config, epoch: Option<i64>) -> Result<(usize, usize)> {
    let mut tx = db.write.begin().await?;
    if let Some(epoch) = epoch {
        lease::fence(&mut *tx, JOB, epoch).await?;
    }
    let mut rules: BTreeMap<i64, Option<SourceRule>> = BTreeMap::new();
    let overdue = xq::resolve_overdue(&mut tx).await?;
    for (row, before) in &overdue {
        q::record_history(
            &mut tx,
            row.id,
            Some(*before),
            AlertState::Resolved,
            "worker",
            Some("not re-sent before its endsAt"),
            None,
        )
        .await?;
        if let Some(rule) = rule_of(&mut tx, &mut rules, row).await? {
            notify(&mut tx, cfg, &rule, row, Notify::Resolved).await?;
        }
    }
    let silences = silences::active_silences(&mut tx).await?;
    let mut moved = 0;
    for row in xq::silenceable_for_update(&mut tx).await? {
        let silenced = silenced_by(&silences, &row.labels.0).next().is_some();
        let to = match (row.state, silenced) {
            (AlertState::Firing, true) => AlertState::Suppressed,
            (AlertState::Suppressed, false) => AlertState::Firing,
            _ => continue,
        };
        let new = xq::set_state(&mut tx, row.id, to).await?;
        q::record_history(&mut tx, row.id, Some(row.state), to, "worker", None, None).await?;
        if to == AlertState::Firing {
            if let Some(rule) = rule_of(&mut tx, &mut rules, &new).await? {
                notify(&mut tx, cfg, &rule, &new, Notify::Firing).await?;
            }
        }
        moved += 1;
    }
    tx.commit().await?;
    Ok((overdue.len(), moved))
}

/// The sender's rule of an alert (cached for the sweep).
async fn rule_of(
    conn: &mut PgConnection,
    cache: &mut BTreeMap<i64, Option<SourceRule>>,
    row: &ExternalRow,
) -> Result<Option<SourceRule>> {
    if let Some(r) = cache.get(&row.rule_id) {
        return Ok(r.clone());
    }
    let r = xq::rule_by_id(conn, row.rule_id).await?;
    cache.insert(row.rule_id, r.clone());
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fingerprint_is_the_one_prometheus_computes() {
        // prometheus/common model: the empty set hashes to FNV-1a's offset basis, and this
        // set is the signature test's case (5799056148416392346 in decimal).
        assert_eq!(fingerprint(&BTreeMap::new()), "cbf29ce484222325");
        let ls = set(&[("name", "garland, briggs"), ("fear", "love is not enough")]);
        assert_eq!(
            u64::from_str_radix(&fingerprint(&ls), 16).unwrap(),
            5_799_056_148_416_392_346
        );
        // Names and values are separated, so moving a character across changes it.
        assert_ne!(
            fingerprint(&set(&[("ab", "c")])),
            fingerprint(&set(&[("a", "bc")]))
        );
    }

    #[test]
    fn severity_and_summary_come_from_the_labels_and_annotations() {
        assert_eq!(severity(&set(&[("severity", "page")])), Severity::Critical);
        assert_eq!(
            severity(&set(&[("severity", "Critical")])),
            Severity::Critical
        );
        assert_eq!(severity(&set(&[("severity", "info")])), Severity::Info);
        assert_eq!(severity(&set(&[])), Severity::Warning);
        let l = set(&[("alertname", "Up")]);
        assert_eq!(summary(&l, &set(&[("description", "d")])), "d");
        assert_eq!(
            summary(&l, &set(&[("summary", "s"), ("description", "d")])),
            "s"
        );
        assert_eq!(summary(&l, &set(&[("summary", " ")])), "Up");
    }
}
