//! Audit events read from application logs: a JSON line that names an action and an actor
//! (field names configurable in `[ingest.audit]`), and sshd's login lines ("Failed password
//! for X from IP", "Invalid user X from IP", "Accepted publickey for X from IP"), become
//! `audit_event` rows beside their log rows, so "who deleted X" and the brute-force rules
//! answer from real logs.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use memchr::memmem;
use regex::Regex;
use serde_json::Value;

use super::record::AuditRecord;
use crate::config::AuditFields;

/// The action sshd login lines get: the shipped brute-force rules count `%login%` failures.
pub const SSH_LOGIN: &str = "ssh.login";

/// Finds audit events in lines, with the configured field names.
pub struct AuditReader {
    fields: AuditFields,
    /// Quick test before parsing a JSON line again: the last part of each action field name
    /// followed by its closing quote.
    action_keys: Vec<memmem::Finder<'static>>,
    ssh: [memmem::Finder<'static>; 3],
}

impl AuditReader {
    pub fn new(fields: &AuditFields) -> AuditReader {
        let mut lasts: Vec<String> = fields
            .action
            .iter()
            .map(|k| format!("{}\"", k.rsplit('.').next().unwrap_or(k)))
            .collect();
        lasts.sort();
        lasts.dedup();
        let action_keys = lasts
            .iter()
            .map(|k| memmem::Finder::new(k.as_bytes()).into_owned())
            .collect();
        AuditReader {
            fields: fields.clone(),
            action_keys,
            ssh: [
                memmem::Finder::new("Failed ").into_owned(),
                memmem::Finder::new("Invalid user ").into_owned(),
                memmem::Finder::new("Accepted ").into_owned(),
            ],
        }
    }

    /// Whether a JSON text may hold an action field (cheap; `from_json` decides).
    pub fn may_be_audit(&self, text: &str) -> bool {
        self.fields.enabled
            && self
                .action_keys
                .iter()
                .any(|f| f.find(text.as_bytes()).is_some())
    }

    /// The audit event of a JSON line with an action and an actor, at `ts` (the log row's
    /// time). Err names what is missing (for `--kind audit`, where such a line is rejected).
    pub fn from_json(&self, text: &str, ts: DateTime<Utc>) -> Result<AuditRecord, String> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| format!("not a JSON audit event: {e}"))?;
        let f = &self.fields;
        let action = first_text(&v, &f.action)
            .ok_or_else(|| format!("no action (looked for {})", f.action.join(", ")))?;
        let actor = first_text(&v, &f.actor)
            .ok_or_else(|| format!("no actor (looked for {})", f.actor.join(", ")))?;
        let mut a = AuditRecord::new(ts, actor, action);
        a.actor_role = first_text(&v, &f.actor_role);
        a.resource_type = first_text(&v, &f.resource_type);
        a.resource_id = first_text(&v, &f.resource_id);
        a.before = first_value(&v, &f.before);
        a.after = first_value(&v, &f.after);
        a.changes = first_value(&v, &f.changes);
        if a.changes.is_none() {
            a.changes = diff(a.before.as_ref(), a.after.as_ref());
        }
        if let Some(o) = first_text(&v, &f.outcome) {
            a.outcome = outcome(&o).to_string();
        }
        a.ip = first_text(&v, &f.ip);
        a.session_id = first_text(&v, &f.session_id);
        a.request_id = first_text(&v, &f.request_id);
        a.trace_id = first_text(&v, &["trace_id".into(), "trace.id".into()]);
        Ok(a)
    }

    /// The login audit event of an sshd line: its message with the service `sshd` (journald,
    /// syslog), or a whole auth.log line naming sshd. Other programs' "Failed ..." lines are not
    /// sshd's.
    pub fn from_sshd(&self, text: &str, service: &str, ts: DateTime<Utc>) -> Option<AuditRecord> {
        if !self.fields.sshd || !self.ssh.iter().any(|f| f.find(text.as_bytes()).is_some()) {
            return None;
        }
        // OpenSSH 9.8 logs from `sshd-session`.
        if !service.starts_with("sshd") && !text.contains("sshd") {
            return None;
        }
        static SSHD: OnceLock<Option<Regex>> = OnceLock::new();
        // sshd's auth.c / auth2.c wording: "Failed <method> for [invalid user ]<user> from <ip>
        // port <n> ssh2", "Accepted <method> for <user> from <ip> ...", "Invalid user <user>
        // from <ip> port <n>" (the user may be empty or contain spaces).
        let re = SSHD
            .get_or_init(|| {
                Regex::new(
                    r"(?:^|: |\[ )(?:(Failed|Accepted) (\S+) for (invalid user )?(.*?)|(Invalid) user (.*?)) from (\S+)(?: port (\d+))?",
                )
                .ok()
            })
            .as_ref()?;
        let c = re.captures(text)?;
        let (outcome, method, user) = match (c.get(1), c.get(5)) {
            (Some(verb), _) => (
                if verb.as_str() == "Accepted" {
                    "success"
                } else {
                    "failure"
                },
                c.get(2).map_or("", |m| m.as_str()),
                c.get(4).map_or("", |m| m.as_str()),
            ),
            (None, Some(_)) => (
                "failure",
                "invalid-user",
                c.get(6).map_or("", |m| m.as_str()),
            ),
            (None, None) => return None,
        };
        let mut a = AuditRecord::new(ts, user.to_string(), SSH_LOGIN.to_string());
        a.outcome = outcome.to_string();
        a.ip = c.get(7).map(|m| m.as_str().to_string());
        a.resource_type = Some("ssh".into());
        a.resource_id = Some(method.to_string());
        if c.get(3).is_some() || c.get(5).is_some() {
            a.actor_role = Some("invalid user".into());
        }
        Some(a)
    }
}

/// `success`/`failure` from the words applications use.
fn outcome(o: &str) -> &'static str {
    match o.to_ascii_lowercase().as_str() {
        "failure" | "failed" | "fail" | "error" | "denied" | "deny" | "rejected" | "false" => {
            "failure"
        }
        _ => "success",
    }
}

/// The value at `key`: the key itself (a flat `event.action`), else its dotted path.
fn lookup<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    if let Some(x) = v.get(key) {
        return Some(x);
    }
    if !key.contains('.') {
        return None;
    }
    key.split('.').try_fold(v, |cur, part| cur.get(part))
}

fn first_value(v: &Value, keys: &[String]) -> Option<Value> {
    keys.iter()
        .filter_map(|k| lookup(v, k))
        .find(|x| !x.is_null())
        .cloned()
}

/// A scalar as text (an id may be a number); objects and arrays are not names.
fn first_text(v: &Value, keys: &[String]) -> Option<String> {
    keys.iter()
        .filter_map(|k| lookup(v, k))
        .find_map(|x| match x {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        })
}

/// `{"field": {"before": x, "after": y}}` for the top-level fields that differ.
fn diff(before: Option<&Value>, after: Option<&Value>) -> Option<Value> {
    let (Some(Value::Object(b)), Some(Value::Object(a))) = (before, after) else {
        return None;
    };
    let mut out = serde_json::Map::new();
    for k in b.keys().chain(a.keys()) {
        if out.contains_key(k) {
            continue;
        }
        let (x, y) = (b.get(k), a.get(k));
        if x != y {
            out.insert(
                k.clone(),
                serde_json::json!({"before": x.cloned().unwrap_or(Value::Null), "after": y.cloned().unwrap_or(Value::Null)}),
            );
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> AuditReader {
        AuditReader::new(&AuditFields::default())
    }

    fn ts() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn json_lines_with_action_and_actor() {
        let r = reader();
        let line = r#"{"level":"info","msg":"deleted","action":"invoice.delete","actor":{"id":"u-7","role":"admin"},"resource":{"type":"invoice","id":42},"before":{"total":10,"paid":false},"after":null,"ip":"10.1.2.3"}"#;
        assert!(r.may_be_audit(line));
        let a = r.from_json(line, ts()).unwrap();
        assert_eq!(
            (a.actor.as_str(), a.action.as_str(), a.actor_role.as_deref()),
            ("u-7", "invoice.delete", Some("admin"))
        );
        assert_eq!(a.resource_type.as_deref(), Some("invoice"));
        assert_eq!(a.resource_id.as_deref(), Some("42"));
        assert_eq!(a.ip.as_deref(), Some("10.1.2.3"));
        assert_eq!(a.outcome, "success");
        // ECS: event.action, user.name, event.outcome.
        let ecs = r#"{"@timestamp":"2024-05-01T00:00:00Z","event":{"action":"user-login","outcome":"failure"},"user":{"name":"bob"},"source":{"ip":"192.0.2.9"}}"#;
        let a = r.from_json(ecs, ts()).unwrap();
        assert_eq!(
            (a.actor.as_str(), a.action.as_str(), a.outcome.as_str()),
            ("bob", "user-login", "failure")
        );
        assert_eq!(a.ip.as_deref(), Some("192.0.2.9"));
        let changed =
            r#"{"action":"user.update","user":"ann","before":{"a":1,"b":2},"after":{"a":1,"b":3}}"#;
        let a = r.from_json(changed, ts()).unwrap();
        assert_eq!(
            a.changes,
            Some(serde_json::json!({"b":{"before":2,"after":3}}))
        );
        // An action without an actor is a log line, not an audit event.
        let e = r.from_json(r#"{"action":"x"}"#, ts()).unwrap_err();
        assert!(e.starts_with("no actor"), "{e}");
        assert!(!r.may_be_audit(r#"{"msg":"transaction committed"}"#));
    }

    #[test]
    fn sshd_login_lines() {
        let r = reader();
        let cases = [
            ("Failed password for root from 203.0.113.5 port 52122 ssh2", "root", "failure", "203.0.113.5"),
            ("Failed password for invalid user admin from 198.51.100.7 port 40000 ssh2", "admin", "failure", "198.51.100.7"),
            ("Invalid user oracle from 198.51.100.7 port 40001", "oracle", "failure", "198.51.100.7"),
            ("Accepted publickey for deploy from 192.0.2.10 port 50514 ssh2: ED25519 SHA256:abc", "deploy", "success", "192.0.2.10"),
            ("Dec  4 03:04:05 box sshd[812]: Failed publickey for git from 2001:db8::1 port 22 ssh2", "git", "failure", "2001:db8::1"),
        ];
        for (line, user, outcome, ip) in cases {
            let a = r
                .from_sshd(line, "sshd", ts())
                .unwrap_or_else(|| panic!("{line}"));
            assert_eq!(
                (
                    a.actor.as_str(),
                    a.outcome.as_str(),
                    a.ip.as_deref(),
                    a.action.as_str()
                ),
                (user, outcome, Some(ip), SSH_LOGIN),
                "{line}"
            );
        }
        assert!(r
            .from_sshd("Accepted the offer from bob", "sshd", ts())
            .is_none());
        assert!(r
            .from_sshd("Connection closed by 1.2.3.4 port 22", "sshd", ts())
            .is_none());
        let other = "Failed password for bob from 10.0.0.1 port 1 ssh2";
        assert!(r.from_sshd(other, "myapp", ts()).is_none());
    }
}
