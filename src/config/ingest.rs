//! `[ingest]`: formats, time zone, multi-line rules, audit fields and redaction of what
//! `opsdash ingest` and `opsdash serve` store.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Identical events (service, level, message) within this window become one row.
    pub dedup_window: String,
    /// Rows per COPY batch.
    pub batch_size: usize,
    /// With --follow, buffered rows are flushed at least this often.
    pub flush_interval_ms: u64,
    /// A custom access-log layout, `nginx:<log_format>` or `apache:<LogFormat>` (empty: none),
    /// used when `ingest --format` is auto, nginx or apache.
    pub access_format: String,
    /// Zone of times written without one (syslog's `Dec  4 03:04:05`, ISO times without an
    /// offset): `UTC`, `local`, an IANA name such as `Europe/Berlin`, or an offset (`+02:00`).
    pub timezone: String,
    /// Keys whose values are replaced by [REDACTED] in fields and in key=value text.
    pub redact_keys: Vec<String>,
    /// Redact card numbers (Luhn-checked) and US social security numbers.
    pub redact_card_numbers: bool,
    pub redact_ssn: bool,
    /// Extra redaction rules: a regex and its replacement.
    pub redact: Vec<RedactRule>,
    /// First-line patterns of multi-line events per service or path (`[[ingest.multiline]]`);
    /// streams without one join stack traces and indented lines by their shape.
    pub multiline: Vec<MultilineRule>,
    /// One multi-line event holds at most this many lines / bytes; the rest starts a new one.
    pub multiline_max_lines: u64,
    pub multiline_max_bytes: usize,
    /// A pending multi-line event is stored after this much quiet on its stream (at most 1 s,
    /// so `--follow` shows a trace within a second of its last line).
    pub multiline_quiet_ms: u64,
    /// Audit events in application logs (`[ingest.audit]`).
    pub audit: AuditFields,
}

/// `[ingest.audit]`: which fields of a JSON line name an audit event's parts (the first one
/// present wins; a dotted name is also looked up as a path: `event.action` in
/// `{"event":{"action":...}}`). A line with an action and an actor becomes an `audit_event`
/// row besides its log row.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditFields {
    /// Look for audit events in JSON lines.
    pub enabled: bool,
    /// sshd's login lines (Failed password / Invalid user / Accepted ...) become `ssh.login`
    /// audit events.
    pub sshd: bool,
    pub action: Vec<String>,
    pub actor: Vec<String>,
    pub actor_role: Vec<String>,
    pub resource_type: Vec<String>,
    pub resource_id: Vec<String>,
    pub outcome: Vec<String>,
    pub before: Vec<String>,
    pub after: Vec<String>,
    pub changes: Vec<String>,
    pub ip: Vec<String>,
    pub session_id: Vec<String>,
    pub request_id: Vec<String>,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Default for AuditFields {
    fn default() -> Self {
        AuditFields {
            enabled: true,
            sshd: true,
            action: strings(&["action", "event.action", "audit.action"]),
            actor: strings(&[
                "actor.id",
                "actor.name",
                "actor",
                "user.name",
                "user.id",
                "user",
                "user_id",
                "userId",
                "username",
            ]),
            actor_role: strings(&["actor_role", "actor.role", "user.role", "role"]),
            resource_type: strings(&[
                "resource_type",
                "resource.type",
                "target.type",
                "object_type",
                "entity",
            ]),
            resource_id: strings(&[
                "resource_id",
                "resource.id",
                "target.id",
                "object_id",
                "entity_id",
            ]),
            outcome: strings(&["outcome", "event.outcome", "result"]),
            before: strings(&["before", "old"]),
            after: strings(&["after", "new"]),
            changes: strings(&["changes", "diff"]),
            ip: strings(&["ip", "client.ip", "source.ip", "client_ip", "remote_addr"]),
            session_id: strings(&["session_id", "session.id", "sessionId"]),
            request_id: strings(&["request_id", "http.request.id", "requestId"]),
        }
    }
}

/// `[[ingest.multiline]]`: on the streams of `match_service` and/or files matching the glob
/// `match_path`, a line matching the regex `start` starts an event and every other line joins
/// the event before it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineRule {
    pub match_service: Option<String>,
    pub match_path: Option<String>,
    pub start: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedactRule {
    pub name: String,
    pub pattern: String,
    #[serde(default = "default_replacement")]
    pub replacement: String,
}

fn default_replacement() -> String {
    "[REDACTED]".into()
}

pub const DEFAULT_REDACT_KEYS: &[&str] = &[
    "password",
    "passwd",
    "token",
    "access_token",
    "refresh_token",
    "secret",
    "api_key",
    "private_key",
    "authorization",
    "cookie",
    "set-cookie",
];

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            dedup_window: "10s".into(),
            batch_size: 5000,
            flush_interval_ms: 200,
            timezone: "UTC".into(),
            access_format: String::new(),
            redact_keys: DEFAULT_REDACT_KEYS.iter().map(|s| s.to_string()).collect(),
            redact_card_numbers: true,
            redact_ssn: true,
            redact: Vec::new(),
            multiline: Vec::new(),
            multiline_max_lines: crate::ingest::multiline::DEFAULT_MAX_LINES,
            multiline_max_bytes: crate::ingest::multiline::DEFAULT_MAX_BYTES,
            multiline_quiet_ms: 500,
            audit: AuditFields::default(),
        }
    }
}
