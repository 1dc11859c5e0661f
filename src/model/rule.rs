//! The rule vocabulary shared by the alert engine, the query layer and the screens: a rule's
//! definition as stored (`RuleSpec`), comparison operators, measures, label sets and silence
//! matchers, durations. Pure data and functions: nothing here reads the database or the config
//! (validation against the filter language lives with the engine in `alerts`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Severity;

/// Every measure a rule can watch.
pub const MEASURES: &[&str] = &[
    "error_rate",
    "request_rate",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "latency_regression",
    "log_count",
    "error_groups",
    "service_status",
    "slow_queries",
    "audit_events",
    "db_connections",
    "sql",
];

/// A duration as rules and the config write it (`30s`, `5m`, `1h 30m`).
pub fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("not a duration ({e}), e.g. \"5m\""))
}

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
    pub severity: Severity,
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

impl RuleSpec {
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

    /// A matcher from its parts, the regex of `=~`/`!~` checked.
    pub fn new(name: &str, op: &str, value: &str) -> Result<Matcher, String> {
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("matcher {op}{value}: the label name is missing"));
        }
        if !MATCHER_OPS.contains(&op) {
            return Err(format!(
                "matcher {name}{op}: the operator is not one of = != =~ !~"
            ));
        }
        if op.ends_with('~') {
            regex::Regex::new(value).map_err(|e| format!("bad regex in {name}{op}{value}: {e}"))?;
        }
        Ok(Matcher {
            name: name.to_string(),
            op: op.to_string(),
            value: value.to_string(),
        })
    }

    /// The matcher as the silence editor writes it (`parse_matchers` reads it back): the value
    /// in double quotes when it is empty or holds a space, a comma, a quote or a backslash.
    pub fn to_editable(&self) -> String {
        let v = &self.value;
        if v.is_empty()
            || v.chars()
                .any(|c| c.is_whitespace() || matches!(c, ',' | '"' | '\\'))
        {
            let escaped = v.replace('\\', "\\\\").replace('"', "\\\"");
            format!("{}{}\"{escaped}\"", self.name, self.op)
        } else {
            self.to_string()
        }
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

/// The operators of a silence matcher, longest first where one begins another.
pub const MATCHER_OPS: [&str; 4] = ["=~", "!~", "!=", "="];

/// Parses a line of matchers as the silence editor takes them: separated by commas or spaces,
/// each `name=value`, `name!=value`, `name=~regex` or `name!~regex`; a value in double quotes
/// may hold spaces and commas (`\"` and `\\` inside). An empty line is no matchers.
pub fn parse_matchers(line: &str) -> Result<Vec<Matcher>, String> {
    let is_sep = |c: char| c.is_whitespace() || c == ',';
    let mut out = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start_matches(is_sep);
        if rest.is_empty() {
            return Ok(out);
        }
        let name_end = rest
            .find(|c: char| matches!(c, '=' | '!') || is_sep(c))
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        rest = &rest[name_end..];
        let Some(op) = MATCHER_OPS.into_iter().find(|op| rest.starts_with(op)) else {
            return Err(format!(
                "matcher {name:?}: expected name=value, name!=value, name=~regex or name!~regex"
            ));
        };
        rest = &rest[op.len()..];
        let mut value = String::new();
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let Some(end) = end else {
                return Err(format!(
                    "matcher {name}{op}: the quoted value has no closing \""
                ));
            };
            rest = &quoted[end..];
        } else {
            let end = rest.find(is_sep).unwrap_or(rest.len());
            value.push_str(&rest[..end]);
            rest = &rest[end..];
        }
        out.push(Matcher::new(name, op, &value)?);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matcher_lines_round_trip_through_the_editor() {
        let ms = parse_matchers(
            r#"alertname=brute-force-user, user=~"al ice|bob" ip!=10.0.0.1 env!~"dev,\"x\"""#,
        )
        .unwrap();
        let got: Vec<(&str, &str, &str)> = ms
            .iter()
            .map(|m| (m.name.as_str(), m.op.as_str(), m.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("alertname", "=", "brute-force-user"),
                ("user", "=~", "al ice|bob"),
                ("ip", "!=", "10.0.0.1"),
                ("env", "!~", r#"dev,"x""#),
            ]
        );
        let line = ms
            .iter()
            .map(Matcher::to_editable)
            .collect::<Vec<_>>()
            .join(", ");
        assert_eq!(parse_matchers(&line).unwrap(), ms, "{line}");
        // `=!x` is `=` with a value starting with `!`.
        assert_eq!(parse_matchers("a=!x").unwrap()[0].value, "!x");
        assert_eq!(parse_matchers("a=\"\"").unwrap()[0].value, "");
        assert!(parse_matchers("").unwrap().is_empty());
        assert!(parse_matchers("user").is_err());
        assert!(parse_matchers("=x").is_err());
        assert!(parse_matchers("a=~(").is_err());
        assert!(parse_matchers("a=\"open").is_err());
    }
}
