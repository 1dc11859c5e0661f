//! Message bodies: the Alertmanager webhook payload (so existing receivers work) and the Slack,
//! Discord and PagerDuty Events v2 shapes derived from it.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::query::outbox::Claimed;

fn common(alerts: &[Value], field: &str) -> Map<String, Value> {
    let mut it = alerts.iter().filter_map(|a| a.get(field)?.as_object());
    let Some(first) = it.next() else {
        return Map::new();
    };
    let mut out = first.clone();
    for o in it {
        out.retain(|k, v| o.get(k) == Some(v));
    }
    out
}

/// The Alertmanager webhook (version 4) body of a message.
pub fn alertmanager(m: &Claimed, receiver: &str) -> Value {
    let alerts: Vec<Value> = m
        .payload
        .0
        .get("alerts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let status = if m.kind == "resolved" {
        "resolved"
    } else {
        "firing"
    };
    let common_labels = common(&alerts, "labels");
    let group_labels: Map<String, Value> = common_labels
        .iter()
        .filter(|(k, _)| *k == "alertname")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    json!({
        "version": "4",
        "groupKey": m.group_key.clone().unwrap_or_default(),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": common(&alerts, "annotations"),
        "externalURL": "",
        "alerts": alerts,
    })
}

/// One-paragraph text for chat channels and email.
pub fn text(am: &Value) -> String {
    let alerts = am["alerts"].as_array().cloned().unwrap_or_default();
    let status = am["status"].as_str().unwrap_or("firing").to_uppercase();
    let name = am["commonLabels"]["alertname"].as_str().unwrap_or("alerts");
    let sev = am["commonLabels"]["severity"].as_str().unwrap_or("");
    let mut out = format!("[{status}:{}] {name}", alerts.len());
    if !sev.is_empty() {
        out.push_str(&format!(" ({sev})"));
    }
    for a in &alerts {
        out.push_str("\n- ");
        out.push_str(a["annotations"]["summary"].as_str().unwrap_or(""));
    }
    if let Some(rb) = am["commonAnnotations"]["runbook_url"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        out.push_str(&format!("\nRunbook: {rb}"));
    }
    out
}

pub fn slack(am: &Value) -> Value {
    json!({ "text": text(am) })
}

pub fn discord(am: &Value) -> Value {
    // Discord refuses content over 2000 characters.
    let t: String = text(am).chars().take(2000).collect();
    json!({ "content": t })
}

pub fn pagerduty(am: &Value, routing_key: &str) -> Value {
    let sev = match am["commonLabels"]["severity"].as_str().unwrap_or("") {
        "critical" => "critical",
        "error" => "error",
        "info" => "info",
        _ => "warning",
    };
    let action = if am["status"] == "resolved" {
        "resolve"
    } else {
        "trigger"
    };
    let summary: String = text(am)
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(1024)
        .collect();
    json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": am["groupKey"],
        "payload": {
            "summary": summary,
            "source": "opsdash",
            "severity": sev,
            "custom_details": am,
        },
    })
}

/// The body for a channel kind.
pub fn body(kind: &str, am: &Value, routing_key: &str) -> Value {
    match kind {
        "slack" => slack(am),
        "discord" => discord(am),
        "pagerduty" => pagerduty(am, routing_key),
        _ => am.clone(),
    }
}

/// Labels shared by every alert of a message (for email subjects and tests).
pub fn common_labels(am: &Value) -> BTreeMap<String, String> {
    am["commonLabels"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}
