//! What a parsed input line becomes: an application log event, an HTTP request, or both (a JSON
//! line describing a request lands in `log_event` and in `request_log`).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::raw_attrs::RawAttrs;
use crate::model::Level;

/// One row of `opsdash.log_event`, before it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub ts: DateTime<Utc>,
    pub level: Level,
    pub service: String,
    pub host: Option<String>,
    pub message: String,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub request_id: Option<String>,
    pub user_id: Option<String>,
    pub route: Option<String>,
    pub method: Option<String>,
    pub status: Option<i16>,
    pub duration_ms: Option<f64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub error_type: Option<String>,
    /// Every field of the line that has no column of its own (a JSON object).
    pub attrs: Option<Value>,
    /// An envelope's fields still as text (journald's), under `attrs`: the row's attrs are
    /// `attrs` with these added where it lacks them (`merged_attrs`). None for most rows.
    pub env_attrs: Option<RawAttrs>,
    /// Error grouping key; set for level >= error.
    pub fingerprint: Option<String>,
    pub repeat_count: i32,
    /// Time of the latest repeat folded into this row (None: never folded).
    pub last_seen: Option<DateTime<Utc>>,
}

impl LogRecord {
    pub fn new(ts: DateTime<Utc>, level: Level, service: String, message: String) -> LogRecord {
        LogRecord {
            ts,
            level,
            service,
            host: None,
            message,
            trace_id: None,
            span_id: None,
            request_id: None,
            user_id: None,
            route: None,
            method: None,
            status: None,
            duration_ms: None,
            ip: None,
            user_agent: None,
            error_type: None,
            attrs: None,
            env_attrs: None,
            fingerprint: None,
            repeat_count: 1,
            last_seen: None,
        }
    }
}

/// Removes NUL characters (PostgreSQL text and jsonb cannot hold one).
pub(crate) fn strip_nul(s: &mut String) {
    if s.contains('\0') {
        s.retain(|c| c != '\0');
    }
}

fn strip_nul_opt(s: &mut Option<String>) {
    if let Some(s) = s {
        strip_nul(s);
    }
}

/// `strip_nul` for every string and key of a JSON value.
pub(crate) fn strip_nul_json(v: &mut Value) {
    match v {
        Value::String(s) => strip_nul(s),
        Value::Array(items) => items.iter_mut().for_each(strip_nul_json),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let old = std::mem::take(map);
                for (mut k, v) in old {
                    strip_nul(&mut k);
                    map.insert(k, v);
                }
            }
            map.values_mut().for_each(strip_nul_json);
        }
        _ => {}
    }
}

impl LogRecord {
    /// The row's attrs as one value: `attrs` with `env_attrs` added where it lacks them.
    pub fn merged_attrs(&self) -> Option<std::borrow::Cow<'_, Value>> {
        use std::borrow::Cow;
        match (&self.attrs, &self.env_attrs) {
            (a, None) => a.as_ref().map(Cow::Borrowed),
            (Some(Value::Object(m)), Some(raw)) => {
                let mut m = m.clone();
                raw.merge_into(&mut m);
                Some(Cow::Owned(Value::Object(m)))
            }
            (None, Some(raw)) => Some(Cow::Owned(Value::Object(raw.to_map()))),
            (Some(a), Some(_)) => Some(Cow::Borrowed(a)),
        }
    }

    /// Folds `env_attrs` into `attrs` (for the rare paths that change attrs as a whole).
    pub fn materialize_attrs(&mut self) {
        if let Some(raw) = self.env_attrs.take() {
            let attrs = self
                .attrs
                .get_or_insert_with(|| Value::Object(Default::default()));
            if let Some(map) = attrs.as_object_mut() {
                raw.merge_into(map);
            }
        }
    }

    /// Removes NUL characters, which PostgreSQL text cannot hold (they arrive as raw bytes or
    /// as JSON `\u0000`). COPY drops them on its own; this is for values bound as parameters
    /// (error groups, repeat counts) so they match what COPY stored.
    pub fn strip_nul(&mut self) {
        strip_nul(&mut self.service);
        strip_nul(&mut self.message);
        for s in [
            &mut self.host,
            &mut self.trace_id,
            &mut self.span_id,
            &mut self.request_id,
            &mut self.user_id,
            &mut self.route,
            &mut self.method,
            &mut self.ip,
            &mut self.user_agent,
            &mut self.error_type,
        ] {
            strip_nul_opt(s);
        }
        self.materialize_attrs();
        if let Some(attrs) = &mut self.attrs {
            strip_nul_json(attrs);
        }
    }
}

/// Which way a request went: served by `service`, or a call from it to an integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// One row of `opsdash.request_log`, before it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    pub ts: DateTime<Utc>,
    pub service: String,
    pub method: String,
    /// Route template (`/users/:id`), so latency groups per endpoint rather than per URL.
    pub route: String,
    pub status: i16,
    pub duration_ms: f64,
    pub bytes: Option<i64>,
    pub user_id: Option<String>,
    pub trace_id: Option<String>,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub error_code: Option<String>,
    pub direction: Direction,
    pub integration: Option<String>,
}

impl RequestRecord {
    /// See `LogRecord::strip_nul`.
    pub fn strip_nul(&mut self) {
        strip_nul(&mut self.service);
        strip_nul(&mut self.method);
        strip_nul(&mut self.route);
        for s in [
            &mut self.user_id,
            &mut self.trace_id,
            &mut self.request_id,
            &mut self.ip,
            &mut self.user_agent,
            &mut self.error_code,
            &mut self.integration,
        ] {
            strip_nul_opt(s);
        }
    }
}

/// The result of parsing one line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed {
    pub log: Option<LogRecord>,
    pub request: Option<RequestRecord>,
    /// The field the service name came from (`service`, `app`, `logger`...), when the line
    /// named one: a `--service` given by the user replaces it and keeps it in attrs under it.
    pub service_from: Option<&'static str>,
    /// A statement from a database server's log.
    pub query: Option<QueryRecord>,
    /// An audit event (who did what) read from an application's log line.
    pub audit: Option<AuditRecord>,
    /// The format the line was read as (`json`, `logfmt`, `nginx`, `text`...), counted in the
    /// summary line.
    pub format: &'static str,
}

/// One row of `opsdash.query_log`, before it is written (a statement from a database's own log,
/// or a `pg_stat_statements` delta).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRecord {
    pub ts: DateTime<Utc>,
    /// The application or service that ran the statement (empty when the log does not say).
    pub service: String,
    pub database: Option<String>,
    /// Normalized text: literals replaced, so one statement shape is one fingerprint.
    pub query: String,
    pub fingerprint: String,
    pub duration_ms: f64,
    pub rows: Option<i64>,
    pub trace_id: Option<String>,
}

impl QueryRecord {
    /// See `LogRecord::strip_nul`.
    pub fn strip_nul(&mut self) {
        strip_nul(&mut self.service);
        strip_nul(&mut self.query);
        strip_nul(&mut self.fingerprint);
        strip_nul_opt(&mut self.database);
        strip_nul_opt(&mut self.trace_id);
    }
}

/// One row of `opsdash.audit_event` taken from an application's log line (who did what to
/// which resource), before it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub ts: DateTime<Utc>,
    pub actor: String,
    pub actor_role: Option<String>,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub changes: Option<Value>,
    /// `success` or `failure` (the table's default is `success`).
    pub outcome: String,
    pub ip: Option<String>,
    pub session_id: Option<String>,
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
    pub host: Option<String>,
}

impl AuditRecord {
    pub fn new(ts: DateTime<Utc>, actor: String, action: String) -> AuditRecord {
        AuditRecord {
            ts,
            actor,
            actor_role: None,
            action,
            resource_type: None,
            resource_id: None,
            before: None,
            after: None,
            changes: None,
            outcome: "success".into(),
            ip: None,
            session_id: None,
            request_id: None,
            trace_id: None,
            host: None,
        }
    }

    /// See `LogRecord::strip_nul`.
    pub fn strip_nul(&mut self) {
        strip_nul(&mut self.actor);
        strip_nul(&mut self.action);
        strip_nul(&mut self.outcome);
        for s in [
            &mut self.actor_role,
            &mut self.resource_type,
            &mut self.resource_id,
            &mut self.ip,
            &mut self.session_id,
            &mut self.request_id,
            &mut self.trace_id,
            &mut self.host,
        ] {
            strip_nul_opt(s);
        }
        for v in [&mut self.before, &mut self.after, &mut self.changes]
            .into_iter()
            .flatten()
        {
            strip_nul_json(v);
        }
    }
}
