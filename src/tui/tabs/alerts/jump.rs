//! Where `Enter` on an alert leads: the Logs tab filtered to the alert's scope and time.

use chrono::{DateTime, Utc};

use crate::model::TimeRange;
use crate::query::alerts::AlertRow;
use crate::sanitize::sanitize;
use crate::tui::msg::{Jump, Tab};

/// How far before an alert started its log lines are worth reading.
const LEAD_IN: chrono::Duration = chrono::Duration::minutes(5);

/// Alert labels that name a column of the Logs filter language.
fn log_field(label: &str) -> Option<&'static str> {
    Some(match label {
        "service" => "service",
        "route" => "route",
        "host" => "host",
        "user" | "user_id" => "user",
        "trace" | "trace_id" => "trace",
        _ => return None,
    })
}

/// Where `Enter` on an alert leads: the Logs tab filtered to the alert's scope (its labels
/// that are log fields, the rule's service/route scope, a `log_count` rule's own filter) and
/// time window (from `LEAD_IN` before it turned pending to its resolution, or live when it
/// is still open), with the shared range wide enough to hold that window.
pub fn logs_jump(
    alert: &AlertRow,
    rule: Option<&crate::alerts::RuleSpec>,
    now: DateTime<Utc>,
) -> Jump {
    let mut terms: Vec<String> = Vec::new();
    let mut fields: Vec<&str> = Vec::new();
    for (k, v) in alert.labels.0.iter() {
        if let Some(field) = log_field(k) {
            terms.push(crate::filter::field_term(field, v));
            fields.push(field);
        }
    }
    if let Some(rule) = rule {
        for key in ["service", "route"] {
            match rule.scope.get(key) {
                Some(v) if !v.is_empty() && !fields.contains(&key) => {
                    terms.push(crate::filter::field_term(key, v))
                }
                _ => {}
            }
        }
        if rule.metric == "log_count" {
            if let Some(f) = rule.filter.as_deref().filter(|f| !f.trim().is_empty()) {
                terms.push(f.trim().to_string());
            }
        }
    }
    let start = alert.pending_since - LEAD_IN;
    terms.push(format!("since:{}", start.format("%Y-%m-%dT%H:%M:%SZ")));
    if let Some(end) = alert.resolved_at {
        terms.push(format!(
            "until:{}",
            (end + chrono::Duration::minutes(1)).format("%Y-%m-%dT%H:%M:%SZ")
        ));
    }
    let age = now - start;
    let range = TimeRange::ALL
        .into_iter()
        .find(|r| r.duration() >= age)
        .unwrap_or(TimeRange::D30);
    Jump {
        tab: Some(Tab::Logs),
        filter: terms.join(" "),
        trace: None,
        range: Some(range),
        note: format!(
            "log lines of alert {} ({})",
            alert.id,
            sanitize(&alert.rule_name)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AlertState;
    use crate::model::Severity;
    use chrono::TimeZone;
    use sqlx::types::Json;

    fn alert(labels: &[(&str, &str)], pending: DateTime<Utc>) -> AlertRow {
        AlertRow {
            id: 7,
            rule_id: 1,
            rule_name: "logins".into(),
            severity: Severity::Warning,
            labels: Json(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            label_key: String::new(),
            state: AlertState::Firing,
            value: None,
            threshold: None,
            summary: String::new(),
            pending_since: pending,
            fired_at: None,
            acknowledged_at: None,
            acknowledged_by: None,
            ack_note: None,
            resolved_at: None,
            resolved_by: None,
            resolve_note: None,
            condition_false_since: None,
            last_notified_at: None,
            testing: false,
            source: None,
            ends_at: None,
        }
    }

    #[test]
    fn a_resolved_alert_opens_its_window_and_a_log_rule_its_filter() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
        let mut a = alert(
            &[
                ("service", "pay api"),
                ("alertname", "x"),
                ("ip", "10.0.0.1"),
            ],
            now - chrono::Duration::hours(3),
        );
        a.resolved_at = Some(now - chrono::Duration::hours(2));
        let spec = crate::alerts::RuleSpec {
            name: "logins".into(),
            description: String::new(),
            severity: Severity::Warning,
            status: "enabled".into(),
            metric: "log_count".into(),
            scope: [("route".to_string(), "/login".to_string())].into(),
            filter: Some("level:error+ timeout".into()),
            query: None,
            operator: "gt".into(),
            threshold: 1.0,
            window_s: 300,
            for_s: 0,
            eval_interval_s: 60,
            labels: Default::default(),
            group_by: Vec::new(),
            channels: Vec::new(),
            repeat_interval_s: 3600,
            max_per_hour: 10,
            auto_resolve: true,
            resolve_after_s: 300,
            runbook_url: None,
            min_count: 0,
        };
        let j = logs_jump(&a, Some(&spec), now);
        assert_eq!(j.tab, Some(Tab::Logs));
        assert_eq!(
            j.filter,
            "service:\"pay api\" route:/login level:error+ timeout \
             since:2026-11-22T08:55:00Z until:2026-11-22T10:01:00Z"
        );
        // The range must hold the window's start (3 h 5 min ago).
        assert_eq!(j.range, Some(TimeRange::H6));
        assert!(crate::filter::parse(&j.filter).is_ok());
    }
}
