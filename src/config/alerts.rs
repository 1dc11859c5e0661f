//! `[alert]` in config.toml: timing of evaluation and delivery, the rules (`[[alert.rule]]`) and
//! the notification channels (`[[alert.channel]]`).
//!
//! The shipped rules are the default rule list: they are evaluated and shown, but with no
//! channel configured nothing is sent. A config that has its own `[[alert.rule]]` entries
//! replaces the shipped list (copy the ones you want to keep from config.example.toml).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Secret;
use crate::model::rule::{percentile, takes_min_count, Op, RuleSpec, DEFAULT_MIN_COUNT};
use crate::model::Severity;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertConfig {
    /// How often the worker looks for rules due for evaluation and for messages to send.
    pub tick_ms: u64,
    /// Alerts of one group that fire within this wait go out as one message.
    pub group_wait: String,
    /// Attempts per message before it is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt (with jitter) up to `retry_max`.
    pub retry_initial: String,
    pub retry_max: String,
    /// Statement timeout of an operator's `sql` rule.
    pub sql_timeout: String,
    #[serde(rename = "rule")]
    pub rules: Vec<RuleConfig>,
    #[serde(rename = "channel")]
    pub channels: Vec<ChannelConfig>,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            tick_ms: 250,
            group_wait: "5s".into(),
            max_attempts: 10,
            retry_initial: "1s".into(),
            retry_max: "5m".into(),
            sql_timeout: "5s".into(),
            rules: shipped_rules(),
            channels: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    pub description: String,
    /// info, warning, error, critical (serde refuses anything else, at the value's line)
    pub severity: Severity,
    /// enabled, disabled, testing (evaluated and shown, never notified)
    pub status: String,
    /// What to measure (see config.example.toml for the list).
    pub measure: String,
    /// Narrows the measure: service, route, and measure-specific keys.
    pub scope: BTreeMap<String, String>,
    /// Logs filter for `log_count`, in the Logs tab's filter language (`service:api level:error+ timeout`).
    pub filter: String,
    /// SQL returning one number, for `sql` (run read-only with `sql_timeout`).
    pub query: String,
    /// gt, gte, lt, lte, eq, ne
    pub operator: String,
    pub threshold: f64,
    pub window: String,
    /// How long the condition must hold before the alert fires (pending until then).
    #[serde(rename = "for")]
    pub for_: String,
    pub interval: String,
    pub labels: BTreeMap<String, String>,
    pub group_by: Vec<String>,
    pub channels: Vec<String>,
    pub repeat_interval: String,
    pub max_per_hour: u32,
    pub auto_resolve: bool,
    /// Resolve after the condition has been false this long.
    pub resolve_after: String,
    pub runbook_url: String,
    /// error_rate: fewer requests than this in the window and the condition is false (unset:
    /// 20; 0 turns the minimum off).
    pub min_count: Option<u32>,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig {
            name: String::new(),
            description: String::new(),
            severity: Severity::Warning,
            status: "enabled".into(),
            measure: String::new(),
            scope: BTreeMap::new(),
            filter: String::new(),
            query: String::new(),
            operator: "gt".into(),
            threshold: 0.0,
            window: "5m".into(),
            for_: "0s".into(),
            interval: "30s".into(),
            labels: BTreeMap::new(),
            group_by: Vec::new(),
            channels: Vec::new(),
            repeat_interval: "1h".into(),
            max_per_hour: 10,
            auto_resolve: true,
            resolve_after: "5m".into(),
            runbook_url: String::new(),
            min_count: None,
        }
    }
}

fn rule(name: &str, severity: Severity, measure: &str, op: &str, threshold: f64) -> RuleConfig {
    RuleConfig {
        name: name.into(),
        severity,
        measure: measure.into(),
        operator: op.into(),
        threshold,
        ..RuleConfig::default()
    }
}

fn scope(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The rules opsdash ships with (they must match config.example.toml).
pub fn shipped_rules() -> Vec<RuleConfig> {
    vec![
        RuleConfig {
            description: "More than 5% of requests to a service failed with 5xx".into(),
            for_: "1m".into(),
            min_count: Some(20),
            ..rule(
                "high-error-rate",
                Severity::Critical,
                "error_rate",
                "gt",
                5.0,
            )
        },
        RuleConfig {
            description: "p95 latency of the last hour is 10% above the previous 23 hours".into(),
            window: "1h".into(),
            interval: "1m".into(),
            scope: scope(&[("baseline", "23h"), ("percentile", "p95")]),
            ..rule(
                "latency-regression",
                Severity::Warning,
                "latency_regression",
                "gt",
                10.0,
            )
        },
        RuleConfig {
            description: "p95 latency of the last hour is 30% above the previous 23 hours".into(),
            window: "1h".into(),
            interval: "1m".into(),
            scope: scope(&[("baseline", "23h"), ("percentile", "p95")]),
            ..rule(
                "latency-regression-critical",
                Severity::Critical,
                "latency_regression",
                "gt",
                30.0,
            )
        },
        RuleConfig {
            description: "A service's health check reports it down".into(),
            for_: "30s".into(),
            ..rule(
                "service-down",
                Severity::Critical,
                "service_status",
                "gte",
                2.0,
            )
        },
        RuleConfig {
            description: "One actor deleted more than 10 records in 5 minutes".into(),
            scope: scope(&[("action", "%delete%"), ("by", "actor")]),
            ..rule("mass-delete", Severity::Error, "audit_events", "gt", 10.0)
        },
        RuleConfig {
            description: "More than 5 failed logins for one user in 5 minutes".into(),
            scope: scope(&[
                ("action", "%login%"),
                ("outcome", "failure"),
                ("by", "actor"),
            ]),
            ..rule(
                "brute-force-user",
                Severity::Error,
                "audit_events",
                "gt",
                5.0,
            )
        },
        RuleConfig {
            description: "More than 20 failed logins from one IP address in 5 minutes".into(),
            scope: scope(&[("action", "%login%"), ("outcome", "failure"), ("by", "ip")]),
            ..rule(
                "brute-force-ip",
                Severity::Error,
                "audit_events",
                "gt",
                20.0,
            )
        },
        RuleConfig {
            description: "More than 90% of the database's max_connections are in use".into(),
            for_: "1m".into(),
            ..rule(
                "db-connections",
                Severity::Warning,
                "db_connections",
                "gt",
                90.0,
            )
        },
    ]
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelConfig {
    pub name: String,
    /// webhook (Alertmanager-compatible JSON), slack, discord, pagerduty, email, command
    pub kind: String,
    /// Endpoint of webhook/slack/discord/pagerduty (Slack and Discord URLs are secrets).
    pub url: Secret,
    /// HMAC-SHA256 key for the `webhook-signature` header (empty: unsigned).
    pub secret: Secret,
    /// Extra HTTP headers.
    pub headers: BTreeMap<String, String>,
    /// PagerDuty Events v2 integration key.
    pub routing_key: Secret,
    /// email: SMTP server, sender and recipients.
    pub smtp_host: String,
    pub smtp_port: u16,
    /// email: `auto` (STARTTLS when the server offers it), `starttls` (required), `tls`
    /// (implicit TLS, usually port 465) or `none`.
    pub smtp_tls: String,
    /// email: AUTH credentials (PLAIN, else LOGIN); only ever sent over TLS.
    pub smtp_username: String,
    pub smtp_password: Secret,
    /// email: PEM file of extra trusted CA certificates (an internal CA), besides the public roots.
    pub smtp_ca_file: String,
    /// webhook/slack/discord/pagerduty/email: PEM file of extra trusted CAs (an internal CA),
    /// besides the system's roots (`trust::root_store`).
    pub ca_file: String,
    pub from: String,
    pub to: Vec<String>,
    /// command: program and arguments; receives the webhook JSON on stdin, exit 0 = delivered.
    pub command: Vec<String>,
    /// Each attempt is cut off after this long.
    pub timeout: String,
    /// Also tell this channel when alerts resolve.
    pub send_resolved: bool,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            name: String::new(),
            kind: "webhook".into(),
            url: Secret::default(),
            secret: Secret::default(),
            headers: BTreeMap::new(),
            routing_key: Secret::default(),
            smtp_host: String::new(),
            smtp_port: 25,
            smtp_tls: "auto".into(),
            smtp_username: String::new(),
            smtp_password: Secret::default(),
            smtp_ca_file: String::new(),
            ca_file: String::new(),
            from: String::new(),
            to: Vec::new(),
            command: Vec::new(),
            timeout: "10s".into(),
            send_resolved: true,
        }
    }
}

/// Values of `smtp_tls`.
pub const SMTP_TLS: &[&str] = &["auto", "starttls", "tls", "none"];

pub use crate::model::rule::{duration, MEASURES};

pub const CHANNEL_KINDS: &[&str] = &[
    "webhook",
    "slack",
    "discord",
    "pagerduty",
    "email",
    "command",
];

impl AlertConfig {
    pub fn group_wait(&self) -> Duration {
        duration(&self.group_wait).unwrap_or(Duration::from_secs(5))
    }
    pub fn retry_initial(&self) -> Duration {
        duration(&self.retry_initial).unwrap_or(Duration::from_secs(1))
    }
    pub fn retry_max(&self) -> Duration {
        duration(&self.retry_max).unwrap_or(Duration::from_secs(300))
    }
    pub fn sql_timeout(&self) -> Duration {
        duration(&self.sql_timeout).unwrap_or(Duration::from_secs(5))
    }
    pub fn channel(&self, name: &str) -> Option<&ChannelConfig> {
        self.channels.iter().find(|c| c.name == name)
    }

    /// Checks the section; the error names the key (the caller adds file and line).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, msg: String| Err((key.to_string(), msg));
        for (key, v) in [
            ("group_wait", &self.group_wait),
            ("retry_initial", &self.retry_initial),
            ("retry_max", &self.retry_max),
            ("sql_timeout", &self.sql_timeout),
        ] {
            if let Err(e) = duration(v) {
                return bad(key, e);
            }
        }
        if self.tick_ms == 0 {
            return bad("tick_ms", "must be at least 1".into());
        }
        if self.max_attempts == 0 {
            return bad("max_attempts", "must be at least 1".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for c in &self.channels {
            if c.name.is_empty() || !names.insert(c.name.as_str()) {
                return bad(
                    "name",
                    format!("channel name {:?} empty or repeated", c.name),
                );
            }
            if !CHANNEL_KINDS.contains(&c.kind.as_str()) {
                return bad(
                    "kind",
                    format!(
                        "channel {:?}: kind {:?} is not one of {}",
                        c.name,
                        c.kind,
                        CHANNEL_KINDS.join(", ")
                    ),
                );
            }
            if let Err(e) = duration(&c.timeout) {
                return bad("timeout", format!("channel {:?}: {e}", c.name));
            }
            if !SMTP_TLS.contains(&c.smtp_tls.as_str()) {
                return bad(
                    "smtp_tls",
                    format!(
                        "channel {:?}: smtp_tls {:?} is not one of {}",
                        c.name,
                        c.smtp_tls,
                        SMTP_TLS.join(", ")
                    ),
                );
            }
            if c.kind == "email" && c.smtp_username.is_empty() != c.smtp_password.is_empty() {
                return bad(
                    "smtp_username",
                    format!(
                        "channel {:?}: smtp_username and smtp_password go together",
                        c.name
                    ),
                );
            }
            if c.kind == "email" && !c.smtp_username.is_empty() && c.smtp_tls == "none" {
                return bad(
                    "smtp_tls",
                    format!(
                        "channel {:?}: smtp_tls = \"none\" would send the password in clear text",
                        c.name
                    ),
                );
            }
            let missing = match c.kind.as_str() {
                "email" => (c.smtp_host.is_empty() || c.to.is_empty() || c.from.is_empty())
                    .then_some("smtp_host, from and to"),
                "command" => c.command.is_empty().then_some("command"),
                "pagerduty" => c.routing_key.is_empty().then_some("routing_key"),
                _ => c.url.is_empty().then_some("url"),
            };
            if let Some(what) = missing {
                return bad(
                    "kind",
                    format!("channel {:?} ({}) needs {what}", c.name, c.kind),
                );
            }
        }
        let mut rule_names = std::collections::BTreeSet::new();
        for r in &self.rules {
            if r.name.trim().is_empty() || !rule_names.insert(r.name.as_str()) {
                return bad("name", format!("rule name {:?} empty or repeated", r.name));
            }
            if let Err(e) = RuleSpec::from_config(r) {
                return bad("measure", format!("rule {:?}: {e}", r.name));
            }
            for ch in &r.channels {
                if self.channel(ch).is_none() {
                    return bad(
                        "channels",
                        format!(
                            "rule {:?} names channel {ch:?}, which no [[alert.channel]] defines",
                            r.name
                        ),
                    );
                }
            }
        }
        Ok(())
    }
}

// How a `[[alert.rule]]` entry (or `opsdash alerts rules add`) becomes a rule definition: the
// checks need the filter language, which the pure vocabulary in `model::rule` must not import.

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
    let d = duration(s).map_err(|e| format!("{key}: {e}"))?;
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
            severity: r.severity,
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
        if !matches!(self.status.as_str(), "enabled" | "disabled" | "testing") {
            return Err(format!(
                "status {:?} is not one of enabled, disabled, testing",
                self.status
            ));
        }
        if !MEASURES.contains(&self.metric.as_str()) {
            return Err(format!(
                "measure {:?} is not one of {}",
                self.metric,
                MEASURES.join(", ")
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
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;
    use crate::model::Severity;

    #[test]
    fn severity_is_the_enum_and_a_bad_one_names_its_line() {
        let text = "[alert]\ntick_ms = 200\n\n[[alert.rule]]\nname = \"a\"\nmeasure = \"request_rate\"\nseverity = \"critical\"\n\n[[alert.rule]]\nname = \"b\"\nmeasure = \"request_rate\"\nseverity = \"severe\"\n";
        let msg = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("c.toml:12:"), "{msg}");
        assert!(msg.contains("severe"), "{msg}");
        assert!(
            msg.contains("critical"),
            "the error lists the known ones: {msg}"
        );
        assert_eq!(msg.lines().count(), 1, "{msg}");

        let good = text.replace("\"severe\"", "\"info\"");
        let cfg = Config::parse(&good, Path::new("c.toml")).unwrap();
        let sev: Vec<Severity> = cfg.alert.rules.iter().map(|r| r.severity).collect();
        assert_eq!(sev, [Severity::Critical, Severity::Info]);
        let spec = crate::model::rule::RuleSpec::from_config(&cfg.alert.rules[0]).unwrap();
        assert_eq!(spec.severity, Severity::Critical);
    }
}
