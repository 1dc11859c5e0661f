//! Alerting: rules (from the config and the CLI), their evaluation by the worker, the state
//! machine, silences and the notification outbox.

pub mod config;
pub mod engine;
pub mod external;
pub mod operator;
pub mod state;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use config::{AlertConfig, ChannelConfig, RuleConfig};

/// Comparison of a measured value against the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
    Ne,
}

impl Op {
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s.trim() {
            "gt" | ">" => Op::Gt,
            "gte" | ">=" => Op::Gte,
            "lt" | "<" => Op::Lt,
            "lte" | "<=" => Op::Lte,
            "eq" | "==" | "=" => Op::Eq,
            "ne" | "!=" => Op::Ne,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Eq => "eq",
            Op::Ne => "ne",
        }
    }
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Gte => ">=",
            Op::Lt => "<",
            Op::Lte => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
    /// The comparison as it stands: `0.194 < 5` when the value is below the threshold, whatever
    /// the rule's operator (the text must never claim `0.194 > 5`).
    pub fn standing(value: f64, threshold: f64) -> String {
        let rel = if value < threshold {
            "<"
        } else if value > threshold {
            ">"
        } else {
            "="
        };
        format!("{} {rel} {}", fmt_value(value), fmt_value(threshold))
    }

    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Gte => value >= threshold,
            Op::Lt => value < threshold,
            Op::Lte => value <= threshold,
            Op::Eq => value == threshold,
            Op::Ne => value != threshold,
        }
    }
}

/// A measured value or threshold as alert texts print it: whole numbers without decimals,
/// others with up to three significant decimals (`0.194`, `12.5`, `5`).
pub fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v == v.trunc() && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let s = if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    };
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Default minimum volume of a rate rule: below this many requests in the window, a ratio
/// says nothing (two 5xx of four requests is not a 50% outage).
pub const DEFAULT_MIN_COUNT: i32 = 20;

/// Measures whose value is a ratio of requests, and so take a minimum volume (`min_count`).
pub fn takes_min_count(measure: &str) -> bool {
    measure == "error_rate"
}

/// A validated rule definition, as stored in `opsdash.alert_rule`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSpec {
    pub name: String,
    pub description: String,
    pub severity: String,
    pub status: String,
    pub metric: String,
    pub scope: BTreeMap<String, String>,
    pub filter: Option<String>,
    pub query: Option<String>,
    pub operator: String,
    pub threshold: f64,
    pub window_s: i32,
    pub for_s: i32,
    pub eval_interval_s: i32,
    pub labels: BTreeMap<String, String>,
    pub group_by: Vec<String>,
    pub channels: Vec<String>,
    pub repeat_interval_s: i32,
    pub max_per_hour: i32,
    pub auto_resolve: bool,
    pub resolve_after_s: i32,
    pub runbook_url: Option<String>,
    /// Rate rules: fewer requests than this in the window and the condition is false.
    #[serde(default)]
    pub min_count: i32,
}

/// Scope keys each measure understands (anything else is a typo worth reporting).
fn scope_keys(measure: &str) -> &'static [&'static str] {
    match measure {
        "error_rate" | "request_rate" | "latency_p50" | "latency_p95" | "latency_p99" => {
            &["service", "route", "by"]
        }
        "latency_regression" => &["service", "route", "baseline", "percentile"],
        "error_groups" | "service_status" => &["service"],
        "slow_queries" => &["service", "min_duration_ms"],
        "audit_events" => &["action", "outcome", "by", "resource_type"],
        _ => &[],
    }
}

fn secs(s: &str, key: &str) -> Result<i32, String> {
    let d = config::duration(s).map_err(|e| format!("{key}: {e}"))?;
    i32::try_from(d.as_secs()).map_err(|_| format!("{key}: too long"))
}

fn non_empty(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_string())
}

impl RuleSpec {
    pub fn from_config(r: &RuleConfig) -> Result<RuleSpec, String> {
        let spec = RuleSpec {
            name: r.name.trim().to_string(),
            description: r.description.clone(),
            severity: r.severity.clone(),
            status: r.status.clone(),
            metric: r.measure.clone(),
            scope: r.scope.clone(),
            filter: non_empty(&r.filter),
            query: non_empty(&r.query),
            operator: r.operator.clone(),
            threshold: r.threshold,
            window_s: secs(&r.window, "window")?,
            for_s: secs(&r.for_, "for")?,
            eval_interval_s: secs(&r.interval, "interval")?.max(1),
            labels: r.labels.clone(),
            group_by: r.group_by.clone(),
            channels: r.channels.clone(),
            repeat_interval_s: secs(&r.repeat_interval, "repeat_interval")?,
            max_per_hour: i32::try_from(r.max_per_hour).unwrap_or(i32::MAX),
            auto_resolve: r.auto_resolve,
            resolve_after_s: secs(&r.resolve_after, "resolve_after")?,
            runbook_url: non_empty(&r.runbook_url),
            min_count: match r.min_count {
                Some(n) => i32::try_from(n).unwrap_or(i32::MAX),
                None if takes_min_count(&r.measure) => DEFAULT_MIN_COUNT,
                None => 0,
            },
        };
        spec.validate()?;
        Ok(spec)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("a rule needs a name".into());
        }
        if !matches!(
            self.severity.as_str(),
            "info" | "warning" | "error" | "critical"
        ) {
            return Err(format!(
                "severity {:?} is not one of info, warning, error, critical",
                self.severity
            ));
        }
        if !matches!(self.status.as_str(), "enabled" | "disabled" | "testing") {
            return Err(format!(
                "status {:?} is not one of enabled, disabled, testing",
                self.status
            ));
        }
        if !config::MEASURES.contains(&self.metric.as_str()) {
            return Err(format!(
                "measure {:?} is not one of {}",
                self.metric,
                config::MEASURES.join(", ")
            ));
        }
        if Op::parse(&self.operator).is_none() {
            return Err(format!(
                "operator {:?} is not one of gt, gte, lt, lte, eq, ne",
                self.operator
            ));
        }
        if !self.threshold.is_finite() {
            return Err("threshold must be a finite number".into());
        }
        let allowed = scope_keys(&self.metric);
        if let Some(k) = self.scope.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(format!(
                "scope key {k:?} means nothing to {} (known: {})",
                self.metric,
                if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                }
            ));
        }
        if self.min_count != 0 && !takes_min_count(&self.metric) {
            return Err(format!(
                "min_count applies to error_rate rules only, not to {}",
                self.metric
            ));
        }
        if self.min_count < 0 {
            return Err("min_count cannot be negative".into());
        }
        if self.metric == "sql" && self.query.is_none() {
            return Err("measure sql needs a query".into());
        }
        if self.metric == "log_count" {
            let Some(f) = &self.filter else {
                return Err("measure log_count needs a filter".into());
            };
            crate::filter::parse(f).map_err(|e| format!("filter: {e}"))?;
        }
        if let Some(b) = self.scope.get("baseline") {
            secs(b, "baseline")?;
        }
        if let Some(p) = self.scope.get("percentile") {
            percentile(p).ok_or_else(|| format!("percentile {p:?}: expected p50, p95 or p99"))?;
        }
        if let Some(by) = self.scope.get("by") {
            let ok = if self.metric == "audit_events" {
                matches!(by.as_str(), "actor" | "ip" | "")
            } else {
                matches!(by.as_str(), "service" | "route" | "")
            };
            if !ok {
                return Err(format!(
                    "by {by:?} is not a grouping {} understands",
                    self.metric
                ));
            }
        }
        Ok(())
    }

    pub fn op(&self) -> Op {
        Op::parse(&self.operator).unwrap_or(Op::Gt)
    }

    /// Stable hash of the definition, so a config sync rewrites a rule only when its config
    /// entry changed (and an operator's enable/disable survives restarts otherwise).
    pub fn config_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(&Sha256::digest(&json)[..12])
    }
}

pub fn percentile(p: &str) -> Option<f64> {
    match p {
        "p50" => Some(0.5),
        "p95" => Some(0.95),
        "p99" => Some(0.99),
        _ => None,
    }
}

/// Canonical text of a label set: the identity of an alert within its rule.
pub fn label_key(labels: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(
            &k.replace('\\', "\\\\")
                .replace(',', "\\,")
                .replace('=', "\\="),
        );
        out.push('=');
        out.push_str(&v.replace('\\', "\\\\").replace(',', "\\,"));
    }
    out
}

/// A label matcher of a silence (Alertmanager style: `=`, `!=`, `=~`, `!~`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matcher {
    pub name: String,
    pub op: String,
    pub value: String,
}

impl Matcher {
    /// Parses `name=value`, `name!=value`, `name=~regex`, `name!~regex`.
    pub fn parse(s: &str) -> Result<Matcher, String> {
        for op in ["=~", "!~", "!=", "="] {
            if let Some((name, value)) = s.split_once(op) {
                let name = name.trim();
                if name.is_empty() {
                    break;
                }
                if op.ends_with('~') {
                    regex::Regex::new(value).map_err(|e| format!("bad regex in {s:?}: {e}"))?;
                }
                return Ok(Matcher {
                    name: name.to_string(),
                    op: op.to_string(),
                    value: value.trim().to_string(),
                });
            }
        }
        Err(format!(
            "matcher {s:?}: expected name=value, name!=value, name=~regex or name!~regex"
        ))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.name).map(String::as_str).unwrap_or("");
        let re = || {
            regex::Regex::new(&format!("^(?:{})$", self.value))
                .map(|r| r.is_match(v))
                .unwrap_or(false)
        };
        match self.op.as_str() {
            "=" => v == self.value,
            "!=" => v != self.value,
            "=~" => re(),
            "!~" => !re(),
            _ => false,
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}{}", self.name, self.op, self.value)
    }
}

/// Whether every matcher of a silence matches the labels (an empty silence matches nothing).
pub fn silence_matches(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    !matchers.is_empty() && matchers.iter().all(|m| m.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_rules_are_valid() {
        for r in config::shipped_rules() {
            RuleSpec::from_config(&r).unwrap_or_else(|e| panic!("{}: {e}", r.name));
        }
        AlertConfig::default().validate().unwrap();
    }

    #[test]
    fn matchers_parse_and_match() {
        let labels: BTreeMap<String, String> = [("service".to_string(), "api".to_string())].into();
        assert!(Matcher::parse("service=api").unwrap().matches(&labels));
        assert!(Matcher::parse("service=~a.i").unwrap().matches(&labels));
        assert!(!Matcher::parse("service!=api").unwrap().matches(&labels));
        assert!(Matcher::parse("service!~web").unwrap().matches(&labels));
        assert!(Matcher::parse("=x").is_err());
        assert!(Matcher::parse("a=~(").is_err());
        assert!(!silence_matches(&[], &labels));
    }

    #[test]
    fn the_comparison_text_states_the_relation_that_holds() {
        assert_eq!(Op::standing(0.194, 5.0), "0.194 < 5");
        assert_eq!(Op::standing(50.0, 5.0), "50 > 5");
        assert_eq!(Op::standing(5.0, 5.0), "5 = 5");
        assert_eq!(Op::standing(12.3456, 10.0), "12.346 > 10");
        assert_eq!(fmt_value(1234.56), "1234.6");
    }

    #[test]
    fn rate_rules_take_a_minimum_volume_by_default() {
        let r = RuleConfig {
            name: "e".into(),
            measure: "error_rate".into(),
            ..RuleConfig::default()
        };
        assert_eq!(
            RuleSpec::from_config(&r).unwrap().min_count,
            DEFAULT_MIN_COUNT
        );
        let r = RuleConfig {
            min_count: Some(3),
            ..r
        };
        assert_eq!(RuleSpec::from_config(&r).unwrap().min_count, 3);
        let r = RuleConfig {
            measure: "log_count".into(),
            filter: "level:error".into(),
            ..r
        };
        assert!(RuleSpec::from_config(&r).unwrap_err().contains("min_count"));
    }

    #[test]
    fn label_key_is_canonical_and_unambiguous() {
        let a: BTreeMap<String, String> = [("a".into(), "1,b=2".into())].into();
        let b: BTreeMap<String, String> =
            [("a".into(), "1".into()), ("b".into(), "2".into())].into();
        assert_ne!(label_key(&a), label_key(&b));
        assert_eq!(label_key(&b), "a=1,b=2");
    }
}
