//! opsdash configuration: `config.toml` from the platform config dir (or `--config`), then
//! environment overrides. Every key has a default; `config.example.toml` at the top of the repo
//! documents them and a test keeps it equal to `Config::default()`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod alerts;

/// A string that must never be printed: database URLs and secrets. Debug and Display redact it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("\"<redacted>\"")
        }
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Removes the password from a postgres URL so it can be shown to a user.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{}://{}@{}", &url[..scheme_end], masked, &rest[at + 1..])
        }
        None => url.to_string(),
    }
}

fn url_has_password(url: &str) -> bool {
    redact_url(url) != url || url.contains("password=")
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub database: DatabaseConfig,
    pub embedded: EmbeddedConfig,
    pub ui: UiConfig,
    pub keys: KeysConfig,
    pub ingest: IngestConfig,
    pub worker: WorkerConfig,
    pub retention: RetentionConfig,
    pub alert: alerts::AlertConfig,
    pub kpi: KpiConfig,
    pub logs: LogsConfig,
    /// Services the worker health-checks (`[[service]]`).
    pub service: Vec<ServiceCheck>,
    /// The network receiver (`opsdash serve`).
    pub server: ServerConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Primary database URL. Empty: use the embedded private cluster.
    pub url: Secret,
    /// Optional read replica: dashboard reads go there, writes to the primary.
    pub read_url: Secret,
    /// Optional URL of the primary itself when `url` points at a pooler (PgBouncer): the
    /// sessions that need a backend of their own (LISTEN, the live tail, migrations, the
    /// worker) use it. See `db::topology`.
    pub direct_url: Secret,
    /// Connections in the pool.
    pub pool_size: u32,
    /// Time to wait for a connection before reporting the database unreachable.
    pub connect_timeout_ms: u64,
    /// Every dashboard query is cut off after this long.
    pub query_timeout_ms: u64,
    /// TLS to `url` and `read_url` (see `db::tls`): sslmode, root CA, client certificate and
    /// key. A parameter the URL names itself wins.
    pub tls_mode: String,
    pub tls_root_cert: String,
    pub tls_cert: String,
    pub tls_key: String,
    /// No writes from this process whatever the role may do (`--read-only`): operator keys
    /// are refused with a "read-only" line and the in-process worker does not start.
    pub read_only: bool,
    /// Other databases (or servers) whose `pg_stat_statements` the worker samples into
    /// `query_log` beside opsdash's own (`[[database.monitor]]`).
    pub monitor: Vec<MonitorConfig>,
}

/// One monitored database: its statements are stored under `name` (`query_log.database`).
/// The URL's role needs `pg_read_all_stats` (or `pg_monitor`) to see every role's statements;
/// TLS is set in the URL (`sslmode`, `sslrootcert`...).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    pub name: String,
    pub url: Secret,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: Secret::default(),
            read_url: Secret::default(),
            direct_url: Secret::default(),
            pool_size: 8,
            connect_timeout_ms: 3000,
            query_timeout_ms: 5000,
            tls_mode: String::new(),
            tls_root_cert: String::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            read_only: false,
            monitor: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Where the private cluster lives (`OPSDASH_DATA_DIR` wins). Empty: `$XDG_DATA_HOME/opsdash`
    /// or `~/.local/share/opsdash`; as root, a per-user place under /var/lib/opsdash when the
    /// postgres user cannot reach that (see `db::embedded::data_root`).
    pub data_dir: String,
    /// Also listen on this loopback TCP address ("127.0.0.1:5433"), password only, so a local
    /// Grafana can connect (`opsdash db url --tcp`). Empty: the Unix socket only.
    pub listen: String,
}

impl EmbeddedConfig {
    /// `listen` parsed; refuses anything but a loopback address with a port.
    pub fn listen_addr(&self) -> anyhow::Result<Option<std::net::SocketAddr>> {
        if self.listen.trim().is_empty() {
            return Ok(None);
        }
        let addr: std::net::SocketAddr = self.listen.trim().parse().map_err(|_| {
            anyhow::anyhow!(
                "expected a loopback address and port such as \"127.0.0.1:5433\" or \"[::1]:5433\", found {:?}",
                self.listen
            )
        })?;
        if !addr.ip().is_loopback() {
            anyhow::bail!(
                "only a loopback address (127.0.0.1 or ::1) is accepted: the embedded cluster is not \
                 meant to be reached from other machines, found {:?}",
                self.listen
            );
        }
        if addr.port() == 0 {
            anyhow::bail!(
                "a port is needed (e.g. \"127.0.0.1:5433\"), found {:?}",
                self.listen
            );
        }
        Ok(Some(addr))
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    pub theme: String,
    /// "utc" or "local".
    pub clock: String,
    /// Initial time range: 1h, 6h, 24h, 7d or 30d.
    pub range: String,
    /// Lines kept by the live tail.
    pub tail_buffer: usize,
    /// Frames per second at most.
    pub max_fps: u32,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            theme: "dark".into(),
            clock: "utc".into(),
            range: "1h".into(),
            tail_buffer: 10_000,
            max_fps: 30,
        }
    }
}

/// Key bindings overrides: action name -> key (e.g. `quit = "ctrl-q"`). Validated by the TUI,
/// which reports a bad binding instead of failing.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct KeysConfig(pub std::collections::BTreeMap<String, String>);

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

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Run the background jobs inside this process (alerts, notifications, rollups, retention).
    pub enabled: bool,
    /// How long a job lease lasts without renewal before another instance may take it over.
    pub lease_ttl_ms: u64,
    /// A job run longer than this is cut off (and recorded as failed).
    pub job_timeout_ms: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            enabled: true,
            lease_ttl_ms: 5000,
            job_timeout_ms: 60000,
        }
    }
}

/// `[server]`: the network receiver of `opsdash serve` (OTLP, Loki, NDJSON, Alertmanager API,
/// syslog).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Run the receiver inside `opsdash worker` and the dashboard too.
    pub enabled: bool,
    /// HTTP listen address. A non-loopback address needs TLS and tokens, or `insecure`.
    pub listen: String,
    /// Allow a non-loopback listener without TLS or without tokens.
    pub insecure: bool,
    /// PEM certificate chain and private key for HTTPS (and syslog over TLS).
    pub tls_cert: String,
    pub tls_key: String,
    /// Largest request body accepted as sent, in bytes.
    pub body_limit: usize,
    /// Largest request body after decompression, in bytes (a gzip or snappy bomb is refused).
    pub decompressed_limit: usize,
    /// Requests waiting for the database at most; more are answered 429 with Retry-After.
    pub queue: usize,
    /// A connection that sends no request for this long is closed (keep-alive connections
    /// hold one of the receiver's places; also the time a client has to send a request's
    /// headers).
    pub idle_timeout_ms: u64,
    /// Syslog listeners (RFC 3164/5424), off when empty: UDP, TCP (RFC 6587 framing), and TCP
    /// with TLS (RFC 5425).
    pub syslog_udp: String,
    pub syslog_tcp: String,
    pub syslog_tls: String,
    /// Bearer tokens (`[[server.token]]`); none: no token is asked for (loopback only).
    pub token: Vec<ServerToken>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            enabled: false,
            listen: "127.0.0.1:4318".into(),
            insecure: false,
            tls_cert: String::new(),
            tls_key: String::new(),
            body_limit: 16 << 20,
            decompressed_limit: 64 << 20,
            queue: 64,
            idle_timeout_ms: 30_000,
            syslog_udp: String::new(),
            syslog_tcp: String::new(),
            syslog_tls: String::new(),
            token: Vec::new(),
        }
    }
}

/// One client allowed to send: its name (stored as the rows' source), the SHA-256 of its token
/// (hex; the token itself is never written down), and the routes it may use.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerToken {
    pub name: String,
    pub sha256: String,
    /// Scopes: `logs`, `traces`, `alerts`, `ingest`, or `*` for all.
    #[serde(default = "all_scopes")]
    pub scopes: Vec<String>,
    /// Requests per second allowed (0: no limit).
    #[serde(default)]
    pub rate: u32,
}

fn all_scopes() -> Vec<String> {
    vec!["*".into()]
}

/// How long one table keeps its data, and whether an expired partition is archived to a file
/// before it is dropped (partitioned tables only).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TablePolicy {
    /// Required in a `[retention.TABLE]` section: each table has its own default, and a section
    /// that named only `archive` would otherwise silently take another table's period.
    pub keep_days: u32,
    #[serde(default)]
    pub archive: bool,
}

impl TablePolicy {
    const fn keep(keep_days: u32) -> Self {
        TablePolicy {
            keep_days,
            archive: false,
        }
    }
    const fn archived(keep_days: u32) -> Self {
        TablePolicy {
            keep_days,
            archive: true,
        }
    }
}

/// Retention, archival and anonymization (the worker's `retention` job).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days of daily partitions created ahead of today.
    pub partitions_ahead_days: u32,
    /// Where archives (`TABLE/PARTITION.copy.gz` + `.manifest.json`) are written. Empty: the
    /// `archive` directory under the embedded data dir.
    pub archive_dir: String,
    /// log_event rows below level error (trace..warn) are removed from a day's partition after
    /// this many days by rewriting that partition with its error/fatal rows only; the partition
    /// itself (the error logs) leaves after `log_event.keep_days`.
    pub log_non_error_keep_days: u32,
    /// Rows of log_event, request_log and audit_event older than this are pseudonymized.
    pub anonymize_after_days: u32,
    /// HMAC-SHA256 key for user-id pseudonyms. Empty: anonymization is refused (and reported)
    /// rather than done with an invented key.
    pub anonymize_secret: Secret,
    /// "truncate" (IPv4 to /24, IPv6 to /48) or "remove".
    pub anonymize_ip: String,
    /// Keys removed from `attrs` (log_event) and from before/after (audit_event).
    pub anonymize_fields: Vec<String>,
    /// Detaching a partition needs a brief exclusive lock on its table; waiting for it longer
    /// than this would stall ingest, so the attempt is abandoned and retried.
    pub lock_timeout_ms: u64,
    /// Attempts to take that lock per partition and run.
    pub lock_attempts: u32,
    /// Rows per DELETE when trimming non-partitioned tables.
    pub delete_batch: u32,
    pub log_event: TablePolicy,
    pub request_log: TablePolicy,
    pub query_log: TablePolicy,
    /// Spans received over OTLP (the trace view's waterfall).
    pub span: TablePolicy,
    pub audit_event: TablePolicy,
    pub health_check: TablePolicy,
    pub rollup_1m: TablePolicy,
    pub rollup_5m: TablePolicy,
    pub rollup_30m: TablePolicy,
    pub rollup_1h: TablePolicy,
    pub rollup_1d: TablePolicy,
    pub rollup_query_1m: TablePolicy,
    pub alert_history: TablePolicy,
    pub silence: TablePolicy,
    pub notification: TablePolicy,
    pub ingest_stat: TablePolicy,
    pub retention_run: TablePolicy,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            partitions_ahead_days: 7,
            archive_dir: String::new(),
            log_non_error_keep_days: 7,
            anonymize_after_days: 30,
            anonymize_secret: Secret::default(),
            anonymize_ip: "truncate".into(),
            anonymize_fields: ["email", "name", "phone", "address", "user_agent"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            lock_timeout_ms: 50,
            lock_attempts: 20,
            delete_batch: 5000,
            log_event: TablePolicy::keep(90),
            request_log: TablePolicy::keep(7),
            query_log: TablePolicy::keep(7),
            span: TablePolicy::keep(7),
            audit_event: TablePolicy::archived(365),
            health_check: TablePolicy::keep(7),
            rollup_1m: TablePolicy::keep(7),
            rollup_5m: TablePolicy::keep(90),
            rollup_30m: TablePolicy::keep(90),
            rollup_1h: TablePolicy::keep(365),
            rollup_1d: TablePolicy::keep(1825),
            rollup_query_1m: TablePolicy::keep(7),
            alert_history: TablePolicy::keep(90),
            silence: TablePolicy::keep(90),
            notification: TablePolicy::keep(90),
            ingest_stat: TablePolicy::keep(90),
            retention_run: TablePolicy::keep(365),
        }
    }
}

/// Audit events are kept at least a year (and at most seven).
pub const AUDIT_MIN_DAYS: u32 = 365;
pub const AUDIT_MAX_DAYS: u32 = 7 * 365 + 2;

/// Tables whose daily partitions retention drops (the rest are trimmed by batched DELETEs).
pub const PARTITIONED_TABLES: &[&str] = &[
    "log_event",
    "request_log",
    "query_log",
    "audit_event",
    "health_check",
    "rollup_1m",
    "span",
];

impl RetentionConfig {
    /// Every table with its policy, in the order the retention job handles them.
    pub fn policies(&self) -> Vec<(&'static str, &TablePolicy)> {
        vec![
            ("log_event", &self.log_event),
            ("request_log", &self.request_log),
            ("query_log", &self.query_log),
            ("span", &self.span),
            ("audit_event", &self.audit_event),
            ("health_check", &self.health_check),
            ("rollup_1m", &self.rollup_1m),
            ("rollup_5m", &self.rollup_5m),
            ("rollup_30m", &self.rollup_30m),
            ("rollup_1h", &self.rollup_1h),
            ("rollup_1d", &self.rollup_1d),
            ("rollup_query_1m", &self.rollup_query_1m),
            ("alert_history", &self.alert_history),
            ("silence", &self.silence),
            ("notification", &self.notification),
            ("ingest_stat", &self.ingest_stat),
            ("retention_run", &self.retention_run),
        ]
    }

    pub fn policy(&self, table: &str) -> Option<&TablePolicy> {
        self.policies()
            .into_iter()
            .find(|(t, _)| *t == table)
            .map(|(_, p)| p)
    }

    /// The rules a policy set must follow; `(key, message)` of the first one broken. Checked when
    /// the file is read and again by the retention job (configs built in code).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let audit = self.audit_event.keep_days;
        if !(AUDIT_MIN_DAYS..=AUDIT_MAX_DAYS).contains(&audit) {
            return Err((
                "keep_days",
                format!(
                    "retention.audit_event.keep_days = {audit}: audit events must be kept at least \
                     {AUDIT_MIN_DAYS} days (one year) and at most {AUDIT_MAX_DAYS} (seven years)"
                ),
            ));
        }
        for (table, p) in self.policies() {
            if p.keep_days == 0 {
                return Err((
                    "keep_days",
                    format!("retention.{table}.keep_days must be at least 1"),
                ));
            }
            if p.archive && !PARTITIONED_TABLES.contains(&table) {
                return Err((
                    "archive",
                    format!(
                        "retention.{table}.archive: only partitioned tables are archived ({})",
                        PARTITIONED_TABLES.join(", ")
                    ),
                ));
            }
        }
        if self.log_non_error_keep_days == 0 {
            return Err((
                "log_non_error_keep_days",
                "log_non_error_keep_days must be at least 1".into(),
            ));
        }
        if self.anonymize_after_days == 0 {
            return Err((
                "anonymize_after_days",
                "anonymize_after_days must be at least 1".into(),
            ));
        }
        if !matches!(self.anonymize_ip.as_str(), "truncate" | "remove") {
            return Err((
                "anonymize_ip",
                format!(
                    "expected \"truncate\" or \"remove\", found {:?}",
                    self.anonymize_ip
                ),
            ));
        }
        if self.lock_attempts == 0 || self.delete_batch == 0 {
            return Err((
                "lock_attempts",
                "lock_attempts and delete_batch must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// The KPI tab: operators' own widgets, shown on the tab's "custom" view.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KpiConfig {
    pub widget: Vec<KpiWidget>,
}

/// The Logs tab.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogsConfig {
    /// The live tail follows lines stamped at most this many hours before the dashboard
    /// started (older timestamps are history, found by search).
    pub tail_floor_hours: u32,
    /// Named filters, applied with `:f NAME` on the Logs tab.
    pub saved_filters: std::collections::BTreeMap<String, String>,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            tail_floor_hours: 24,
            saved_filters: [("errors", "level:error+"), ("5xx", "status:5xx")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

pub const WIDGET_KINDS: &[&str] = &[
    "counter",
    "gauge",
    "sparkline",
    "chart",
    "table",
    "bar",
    "alerts",
];

/// One custom KPI widget. `query` is SQL returning: a number (counter, gauge: first column of
/// the first row), a series (sparkline, chart, bar: label in the first column, value in the
/// last) or rows (table). `alerts` needs no query: it lists the active alerts.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KpiWidget {
    pub title: String,
    pub kind: String,
    #[serde(default)]
    pub query: String,
    /// Gauge full scale.
    #[serde(default)]
    pub max: Option<f64>,
    /// Shown after the value, e.g. "EUR" or "%".
    #[serde(default)]
    pub unit: String,
}

/// One health check run by the worker.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceCheck {
    pub name: String,
    /// http (GET, expects `expected_status`), tcp (connect) or postgres (runs `query`).
    pub kind: String,
    /// URL for http and postgres, host:port for tcp.
    #[serde(alias = "url")]
    pub target: String,
    #[serde(default = "default_expected_status")]
    pub expected_status: u16,
    #[serde(default = "default_check_interval")]
    pub interval_s: u64,
    #[serde(default = "default_check_timeout")]
    pub timeout_ms: u64,
    /// Extra attempts after a failed one before the service is declared down.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// A success slower than this counts as degraded.
    #[serde(default = "default_degraded_ms")]
    pub degraded_ms: u64,
    /// For postgres checks.
    #[serde(default = "default_check_query")]
    pub query: String,
    /// For https checks: PEM file of extra trusted CAs (an internal CA), besides the system's.
    #[serde(default)]
    pub ca_file: String,
}

fn default_expected_status() -> u16 {
    200
}
fn default_check_interval() -> u64 {
    30
}
fn default_check_timeout() -> u64 {
    5000
}
fn default_retries() -> u32 {
    1
}
fn default_degraded_ms() -> u64 {
    1000
}
fn default_check_query() -> String {
    "SELECT 1".into()
}

/// A configuration error that names the file, line and key, as a user should see it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Unsafe { path: String, message: String },
}

/// toml's message as one line; toml gives none for a key without a value (`key =`), which
/// would leave the user with a bare position (found by fault_parsers).
fn toml_message(raw: &str) -> String {
    let one_line = raw
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if one_line.is_empty() {
        "expected a value here (strings need quotes)".into()
    } else {
        one_line
    }
}

/// Where the config file is looked for when `--config` is not given.
pub fn default_config_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "opsdash").map(|d| d.config_dir().join("config.toml"))
}

/// The user's config directory (themes, config.toml), if the platform has one.
pub fn config_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "opsdash").map(|d| d.config_dir().to_path_buf())
}

impl Config {
    /// Parses TOML text; errors carry the line and column of the offending key or value.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError::Invalid {
                path: path.display().to_string(),
                line,
                column,
                message: toml_message(e.message()),
            }
        })?;
        cfg.validate(text, path)?;
        Ok(cfg)
    }

    /// Loads the config: `explicit` if given (it must exist), else the default path if it exists,
    /// else the defaults. Then applies environment overrides.
    pub fn load(explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => default_config_path().filter(|p| p.exists()),
        };
        let mut cfg = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Io {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })?;
                let cfg = Config::parse(&text, p)?;
                check_permissions(p, &text)?;
                cfg
            }
            None => Config::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok());
        Ok((cfg, path))
    }

    /// `OPSDASH_DATABASE_URL`, then `DATABASE_URL`, override the file.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        if let Some(url) = get("OPSDASH_DATABASE_URL").filter(|s| !s.is_empty()) {
            self.database.url = Secret::new(url);
        } else if let Some(url) = get("DATABASE_URL").filter(|s| !s.is_empty()) {
            self.database.url = Secret::new(url);
        }
        if let Some(url) = get("OPSDASH_DATABASE_READ_URL").filter(|s| !s.is_empty()) {
            self.database.read_url = Secret::new(url);
        }
        if let Some(url) = get("OPSDASH_DATABASE_DIRECT_URL").filter(|s| !s.is_empty()) {
            self.database.direct_url = Secret::new(url);
        }
    }

    fn validate(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        // Every check names the path of the value it refuses (`service[1].kind`); `locate`
        // turns that into the line and column of that key in this file, in any table.
        self.check_values().map_err(|(key_path, message)| {
            let (line, column) = locate(text, &key_path);
            ConfigError::Invalid {
                path: path.display().to_string(),
                line,
                column,
                message: format!("{key_path}: {message}"),
            }
        })
    }

    /// The checks serde cannot make: returns the key path of the first bad value and why.
    fn check_values(&self) -> Result<(), (String, String)> {
        let bad = |key: String, message: String| Err((key, message));
        if let Err(e) = self.embedded.listen_addr() {
            return bad("embedded.listen".into(), e.to_string());
        }
        if !matches!(self.ui.clock.as_str(), "utc" | "local") {
            return bad(
                "ui.clock".into(),
                format!("expected \"utc\" or \"local\", found {:?}", self.ui.clock),
            );
        }
        if crate::model::TimeRange::parse(&self.ui.range).is_none() {
            return bad(
                "ui.range".into(),
                format!(
                    "expected one of 1h, 6h, 24h, 7d, 30d, found {:?}",
                    self.ui.range
                ),
            );
        }
        if self.ui.tail_buffer == 0 {
            return bad("ui.tail_buffer".into(), "must be at least 1".into());
        }
        if self.database.pool_size == 0 {
            return bad("database.pool_size".into(), "must be at least 1".into());
        }
        crate::db::tls::check_config(&self.database)?;
        if self.ingest.batch_size == 0 {
            return bad("ingest.batch_size".into(), "must be at least 1".into());
        }
        if let Err((key, message)) = self.retention.check() {
            // The message names the table when the key is one table's (`retention.TABLE.KEY`).
            let table = message
                .strip_prefix("retention.")
                .and_then(|m| m.split(['.', ' ', ':']).next())
                .filter(|t| self.retention.policies().iter().any(|(n, _)| n == t));
            let key_path = match table {
                Some(t) => format!("retention.{t}.{key}"),
                None => format!("retention.{key}"),
            };
            let message = message
                .strip_prefix(&format!("{key_path} "))
                .or_else(|| message.strip_prefix(&format!("{key_path}: ")))
                .unwrap_or(&message)
                .to_string();
            return bad(key_path, message);
        }
        if !self.ingest.access_format.is_empty() {
            if let Err(e) = crate::ingest::layout::Layout::parse_spec(&self.ingest.access_format) {
                return bad("ingest.access_format".into(), e);
            }
        }
        if let Err(e) = crate::ingest::timestamp::Zone::parse(&self.ingest.timezone) {
            return bad("ingest.timezone".into(), e);
        }
        if let Err(e) = humantime::parse_duration(&self.ingest.dedup_window) {
            return bad(
                "ingest.dedup_window".into(),
                format!("not a duration ({e}), e.g. \"10s\""),
            );
        }
        for (i, w) in self.kpi.widget.iter().enumerate() {
            if !WIDGET_KINDS.contains(&w.kind.as_str()) {
                return bad(
                    format!("kpi.widget[{i}].kind"),
                    format!(
                        "widget {:?}: unknown kind {:?} (one of {})",
                        w.title,
                        w.kind,
                        WIDGET_KINDS.join(", ")
                    ),
                );
            }
            if w.kind != "alerts" && w.query.trim().is_empty() {
                return bad(
                    format!("kpi.widget[{i}].query"),
                    format!("widget {:?}: a {} widget needs a query", w.title, w.kind),
                );
            }
        }
        for (i, s) in self.service.iter().enumerate() {
            if !matches!(s.kind.as_str(), "http" | "tcp" | "postgres") {
                return bad(
                    format!("service[{i}].kind"),
                    format!(
                        "service {:?}: unknown kind {:?} (http, tcp or postgres)",
                        s.name, s.kind
                    ),
                );
            }
            if s.name.trim().is_empty() || s.target.trim().is_empty() {
                let key = if s.name.trim().is_empty() {
                    "name"
                } else {
                    "target"
                };
                return bad(
                    format!("service[{i}].{key}"),
                    "every [[service]] needs a name and a target".into(),
                );
            }
            if s.interval_s == 0 || s.timeout_ms == 0 {
                let key = if s.interval_s == 0 {
                    "interval_s"
                } else {
                    "timeout_ms"
                };
                return bad(
                    format!("service[{i}].{key}"),
                    format!("service {:?}: interval and timeout must be > 0", s.name),
                );
            }
        }
        if let Err((key, message)) = self.alert.validate() {
            return bad(format!("alert.{}", self.alert_error_path(&key)), message);
        }
        for (i, rule) in self.ingest.redact.iter().enumerate() {
            if let Err(e) = crate::ingest::redact::rules::build(&rule.pattern) {
                return bad(
                    format!("ingest.redact[{i}].pattern"),
                    format!("rule {:?}: bad regex: {e}", rule.name),
                );
            }
        }
        for (i, rule) in self.ingest.multiline.iter().enumerate() {
            if let Err(e) = regex::Regex::new(&rule.start) {
                return bad(
                    format!("ingest.multiline[{i}].start"),
                    format!("bad regex: {e}"),
                );
            }
            if let Some(Err(e)) = rule.match_path.as_deref().map(glob::Pattern::new) {
                return bad(
                    format!("ingest.multiline[{i}].match_path"),
                    format!("bad glob: {e}"),
                );
            }
        }
        Ok(())
    }

    /// Which `[[alert.channel]]` or `[[alert.rule]]` an `[alert]` error is about. The section's
    /// own check names only the key; the entry is the first one whose prefix of the list fails
    /// (channels checked without rules, then rules with every channel), so the error points at
    /// that entry and not at the first entry that has a key of that name.
    fn alert_error_path(&self, key: &str) -> String {
        let base = alerts::AlertConfig {
            rules: Vec::new(),
            channels: Vec::new(),
            ..self.alert.clone()
        };
        if base.validate().is_err() {
            return key.to_string();
        }
        for n in 1..=self.alert.channels.len() {
            let prefix = alerts::AlertConfig {
                channels: self.alert.channels[..n].to_vec(),
                ..base.clone()
            };
            if prefix.validate().is_err() {
                return format!("channel[{}].{key}", n - 1);
            }
        }
        for n in 1..=self.alert.rules.len() {
            let prefix = alerts::AlertConfig {
                channels: self.alert.channels.clone(),
                rules: self.alert.rules[..n].to_vec(),
                ..base.clone()
            };
            if prefix.validate().is_err() {
                return format!("rule[{}].{key}", n - 1);
            }
        }
        key.to_string()
    }
}

/// One step of a key path: a key, or an index into an array (of tables).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `alert.channel[1].smtp_tls` as steps. Our keys have no dots or brackets.
fn steps(key_path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in key_path.split('.') {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        while let Some(end) = rest.find(']') {
            if let Ok(i) = rest[1..end].parse() {
                out.push(Step::Index(i));
            }
            rest = &rest[end + 1..];
        }
    }
    out
}

/// A place in a parsed TOML document: a table, an item (what a key holds) or a value inside an
/// array or inline table.
#[derive(Clone, Copy)]
enum Node<'a> {
    Table(&'a dyn toml_edit::TableLike),
    Item(&'a toml_edit::Item),
    Value(&'a toml_edit::Value),
}

type Span = Option<std::ops::Range<usize>>;

impl<'a> Node<'a> {
    fn table_like(self) -> Option<&'a dyn toml_edit::TableLike> {
        match self {
            Node::Table(t) => Some(t),
            Node::Item(i) => i.as_table_like(),
            Node::Value(v) => v.as_inline_table().map(|t| t as &dyn toml_edit::TableLike),
        }
    }

    fn array(self) -> Option<&'a toml_edit::Array> {
        match self {
            Node::Table(_) => None,
            Node::Item(i) => i.as_array(),
            Node::Value(v) => v.as_array(),
        }
    }

    /// The entry under `key`, with the span of the key as written.
    fn key(self, key: &str) -> Option<(Span, Node<'a>)> {
        let (k, item) = self.table_like()?.get_key_value(key)?;
        Some((k.span().or_else(|| item.span()), Node::Item(item)))
    }

    /// The i-th entry of an array of tables (its header's span) or of an inline array.
    fn nth(self, i: usize) -> Option<(Span, Node<'a>)> {
        if let Node::Item(item) = self {
            if let Some(aot) = item.as_array_of_tables() {
                let t = aot.get(i)?;
                return Some((t.span(), Node::Table(t)));
            }
        }
        let v = self.array()?.get(i)?;
        Some((v.span(), Node::Value(v)))
    }

    /// Every entry below this node, depth first, with its key path and span.
    fn walk(self, path: &str, span: Span, f: &mut dyn FnMut(&str, Span, Node<'a>)) {
        f(path, span.clone(), self);
        let join = |k: &str| {
            if path.is_empty() {
                k.to_string()
            } else {
                format!("{path}.{k}")
            }
        };
        if let Some(t) = self.table_like() {
            for (k, _) in t.iter() {
                if let Some((s, n)) = self.key(k) {
                    n.walk(&join(k), s, f);
                }
            }
            return;
        }
        let len = match self {
            Node::Item(i) => i
                .as_array_of_tables()
                .map(|a| a.len())
                .or_else(|| i.as_array().map(|a| a.len())),
            Node::Value(v) => v.as_array().map(|a| a.len()),
            Node::Table(_) => None,
        };
        for i in 0..len.unwrap_or(0) {
            if let Some((s, n)) = self.nth(i) {
                n.walk(&format!("{path}[{i}]"), s.or_else(|| span.clone()), f);
            }
        }
    }

    fn as_str(self) -> Option<&'a str> {
        match self {
            Node::Item(i) => i.as_str(),
            Node::Value(v) => v.as_str(),
            Node::Table(_) => None,
        }
    }
}

/// Line and column (1-based) of the value at `key_path` in the TOML text, from the document's
/// own spans: the key itself when it is written, else the nearest enclosing entry that is (an
/// `[[alert.channel]]` header for a key it lacks), else 1:1.
fn locate(text: &str, key_path: &str) -> (usize, usize) {
    let Ok(doc) = toml_edit::ImDocument::parse(text) else {
        return (1, 1);
    };
    let mut node = Node::Table(doc.as_table());
    let mut found: Span = None;
    for step in steps(key_path) {
        let next = match step {
            Step::Key(k) => node.key(k),
            Step::Index(i) => node.nth(i),
        };
        let Some((span, n)) = next else {
            break;
        };
        found = span.or(found);
        node = n;
    }
    found.map(|s| line_col(text, s.start)).unwrap_or((1, 1))
}

/// Words of a key (`smtp_password`, `X-Api-Key`, `anonymizeSecret` is not split), lowercased.
fn key_words(key: &str) -> Vec<String> {
    key.split(['_', '-', '.', ' '])
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Whether a key's name says its value is a secret: whole words, so `secret_key`, `X-Api-Key`,
/// `smtp_password`, `Authorization` do and `keys`, `tokenizer`, `redact_keys` do not.
fn secret_key_name(key: &str) -> bool {
    const WORDS: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "token",
        "authorization",
        "auth",
        "credential",
        "credentials",
        "cookie",
        "apikey",
    ];
    const BEFORE_KEY: &[&str] = &[
        "api",
        "routing",
        "private",
        "access",
        "integration",
        "signing",
        "encryption",
    ];
    let w = key_words(key);
    w.iter().any(|x| WORDS.contains(&x.as_str()))
        || w.windows(2)
            .any(|p| p[1] == "key" && BEFORE_KEY.contains(&p[0].as_str()))
}

/// Whether a value carries a credential whatever its key: a URL with a password, a libpq
/// `password=`, an HTTP authorization, or a token in a query string.
fn secret_value(v: &str) -> bool {
    if url_has_password(v) {
        return true;
    }
    let l = v.to_ascii_lowercase();
    if l.contains("bearer ") || l.contains("basic ") || l.contains("authorization:") {
        return true;
    }
    // `?token=abc`, `&api_key=abc`, `sig=...`: a name=value pair whose name is a secret's.
    l.split(['?', '&', ';', ' ', ','])
        .filter_map(|kv| kv.split_once('='))
        .any(|(k, val)| !val.is_empty() && (secret_key_name(k) || matches!(k, "key" | "sig")))
}

/// The secrets a config file holds: the key path and line of each non-empty value that is a
/// secret by its key's name (`smtp_password`, `secret`, a header named `Authorization`, a
/// channel `url`, which for Slack and Discord is the credential), or by its content anywhere
/// (a URL with a password, `password=`, a bearer token, `?token=`). `[ingest]` describes what
/// to redact and holds no secrets of its own.
pub fn secrets_in(text: &str) -> Vec<(String, usize)> {
    let Ok(doc) = toml_edit::ImDocument::parse(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    Node::Table(doc.as_table()).walk("", None, &mut |path, span, node| {
        let Some(v) = node.as_str().filter(|v| !v.trim().is_empty()) else {
            return;
        };
        if path.starts_with("ingest.") {
            return;
        }
        let steps = steps(path);
        let last_key = steps.iter().rev().find_map(|s| match s {
            Step::Key(k) => Some(*k),
            Step::Index(_) => None,
        });
        let is_channel_url = path.starts_with("alert.channel[") && path.ends_with("].url");
        let by_name =
            last_key.is_some_and(secret_key_name) && !matches!(steps.last(), Some(Step::Index(_)));
        if by_name || is_channel_url || secret_value(v) {
            let line = span.map(|s| line_col(text, s.start).0).unwrap_or(1);
            out.push((path.to_string(), line));
        }
    });
    out
}

/// Refuses a config file that holds a secret and can be read by group or others, as ssh
/// refuses an unprotected key; the message names each secret's key and line.
pub fn check_permissions(path: &Path, text: &str) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| ConfigError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let mode = meta.permissions().mode();
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let secrets = secrets_in(text);
    if secrets.is_empty() {
        return Ok(());
    }
    let named: Vec<String> = secrets
        .iter()
        .map(|(k, line)| format!("{k} (line {line})"))
        .collect();
    Err(ConfigError::Unsafe {
        path: path.display().to_string(),
        message: format!(
            "{} {} a secret but the file is readable by {} (mode {:o}); run: chmod 600 {}",
            named.join(", "),
            if secrets.len() == 1 { "holds" } else { "hold" },
            match (mode & 0o070 != 0, mode & 0o007 != 0) {
                (true, true) => "group and others",
                (true, false) => "its group",
                _ => "others",
            },
            mode & 0o777,
            path.display()
        ),
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_equals_defaults() {
        let text = include_str!("../../config.example.toml");
        let cfg = Config::parse(text, Path::new("config.example.toml")).unwrap();
        assert_eq!(cfg, Config::default());
    }

    #[test]
    fn embedded_listen_takes_only_loopback_addresses_with_a_port() {
        let parse = |v: &str| {
            Config::parse(
                &format!("[embedded]\nlisten = {v:?}\n"),
                Path::new("/etc/x.toml"),
            )
        };
        let ok = parse("127.0.0.1:5433").unwrap();
        assert_eq!(
            ok.embedded.listen_addr().unwrap(),
            Some("127.0.0.1:5433".parse().unwrap())
        );
        assert!(parse("[::1]:5433").is_ok());
        assert_eq!(parse("").unwrap().embedded.listen_addr().unwrap(), None);
        for bad in [
            "0.0.0.0:5433",
            "192.168.1.5:5433",
            "127.0.0.1",
            "127.0.0.1:0",
            "localhost:5433",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("embedded.listen"), "{bad}: {err}");
            assert_eq!(err.lines().count(), 1, "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = "[ui]\ntheme = \"dark\"\ncolour = \"red\"\n";
        let err = Config::parse(text, Path::new("/etc/x.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("/etc/x.toml:3:"), "{msg}");
        assert!(msg.contains("colour"), "{msg}");
    }

    #[test]
    fn bad_value_names_line() {
        let text = "[ui]\n\nrange = \"2w\"\n";
        let msg = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("c.toml:3:"), "{msg}");
        assert!(msg.contains("range"), "{msg}");
        let text = "[database]\npool_size = \"many\"\n";
        let msg = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("c.toml:2:"), "{msg}");
    }

    #[test]
    fn audit_retention_below_a_year_is_refused() {
        let text = "[retention.log_event]\nkeep_days = 90\n\n[retention.audit_event]\narchive = true\nkeep_days = 30\n";
        let msg = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("c.toml:6:"), "{msg}");
        assert!(msg.contains("at least 365"), "{msg}");
        let text = "[retention.audit_event]\nkeep_days = 400\n";
        let cfg = Config::parse(text, Path::new("c.toml")).unwrap();
        assert_eq!(cfg.retention.audit_event.keep_days, 400);
        assert!(!cfg.retention.audit_event.archive);
        assert_eq!(cfg.retention.log_event.keep_days, 90);
    }

    #[test]
    fn archive_of_unpartitioned_table_is_refused() {
        let text = "[retention.silence]\nkeep_days = 30\narchive = true\n";
        let msg = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("only partitioned tables"), "{msg}");
    }

    #[test]
    fn widgets_and_services_are_validated() {
        let ok = "[[kpi.widget]]\ntitle = \"x\"\nkind = \"alerts\"\n\n[[service]]\nname = \"api\"\nkind = \"http\"\nurl = \"http://127.0.0.1/\"\n";
        let cfg = Config::parse(ok, Path::new("c.toml")).unwrap();
        assert_eq!(cfg.service[0].target, "http://127.0.0.1/");
        assert_eq!(cfg.service[0].expected_status, 200);
        let bad = "[[kpi.widget]]\ntitle = \"x\"\nkind = \"pie\"\nquery = \"SELECT 1\"\n";
        let msg = Config::parse(bad, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("c.toml:3:") && msg.contains("pie"), "{msg}");
        let bad = "[[kpi.widget]]\ntitle = \"x\"\nkind = \"counter\"\n";
        let msg = Config::parse(bad, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("needs a query"), "{msg}");
        let bad = "[[service]]\nname = \"a\"\nkind = \"smtp\"\ntarget = \"x\"\n";
        let msg = Config::parse(bad, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("smtp"), "{msg}");
    }

    #[test]
    fn email_security_settings_are_checked_with_their_line() {
        let channel = |extra: &str| {
            format!(
                "[alert]\n[[alert.channel]]\nname = \"mail\"\nkind = \"email\"\n\
                 smtp_host = \"mx\"\nfrom = \"a@b\"\nto = [\"c@d\"]\n{extra}"
            )
        };
        let err = |extra: &str| {
            Config::parse(&channel(extra), Path::new("c.toml"))
                .unwrap_err()
                .to_string()
        };
        let msg = err("smtp_tls = \"ssl\"\n");
        assert!(
            msg.starts_with("c.toml:") && msg.contains("auto, starttls, tls, none"),
            "{msg}"
        );
        let msg = err("smtp_username = \"ops\"\n");
        assert!(msg.contains("go together"), "{msg}");
        let msg = err("smtp_tls = \"none\"\nsmtp_username = \"ops\"\nsmtp_password = \"pw\"\n");
        assert!(msg.contains("clear text") && !msg.contains("pw\""), "{msg}");
        let ok = channel("smtp_tls = \"tls\"\nsmtp_username = \"ops\"\nsmtp_password = \"pw\"\n");
        Config::parse(&ok, Path::new("c.toml")).unwrap();
    }

    #[test]
    fn secret_keys_match_whole_words() {
        for k in [
            "smtp_password",
            "secret",
            "secret_key",
            "private-key",
            "X-Api-Key",
            "Authorization",
            "X-Auth-Token",
            "routing_key",
            "anonymize_secret",
        ] {
            assert!(secret_key_name(k), "{k}");
        }
        for k in [
            "wtoken",
            "tokenizer",
            "keys",
            "redact_keys",
            "key",
            "monkey",
            "name",
        ] {
            assert!(!secret_key_name(k), "{k}");
        }
        assert!(secret_value("https://u:p@h/x"));
        assert!(secret_value("http://h/x?a=1&token=abc"));
        assert!(secret_value("Authorization: Bearer abc"));
        assert!(!secret_value("http://u@h/x?token="));
        assert!(!secret_value("http://127.0.0.1/healthz?verbose=1"));
    }

    #[test]
    fn key_paths_are_located_in_arrays_of_tables() {
        let text = "[[alert.channel]]\nname = \"a\"\nkind = \"x\"\n\n[[alert.channel]]\nname = \"b\"\n  kind = \"y\"\n";
        assert_eq!(locate(text, "alert.channel[1].kind"), (7, 3));
        assert_eq!(locate(text, "alert.channel[0].kind"), (3, 1));
        // Missing key: the entry's header; missing entry: the nearest enclosing key.
        assert_eq!(locate(text, "alert.channel[1].url"), (5, 1));
        assert_eq!(locate(text, "alert.channel[5].url").0, 1);
        assert_eq!(
            steps("a.b[2].c"),
            vec![
                Step::Key("a"),
                Step::Key("b"),
                Step::Index(2),
                Step::Key("c")
            ]
        );
    }

    #[test]
    fn secret_never_printed() {
        let mut cfg = Config::default();
        cfg.database.url = Secret::new("postgres://u:hunter2@h/db");
        assert!(!format!("{cfg:?}").contains("hunter2"));
        assert_eq!(
            redact_url("postgres://u:hunter2@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn env_overrides_file() {
        let mut cfg = Config::default();
        cfg.apply_env(|k| (k == "DATABASE_URL").then(|| "postgres://a/b".to_string()));
        assert_eq!(cfg.database.url.expose(), "postgres://a/b");
        cfg.apply_env(|k| (k == "OPSDASH_DATABASE_URL").then(|| "postgres://c/d".to_string()));
        assert_eq!(cfg.database.url.expose(), "postgres://c/d");
    }

    #[test]
    fn world_readable_config_with_password_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(&p, "[database]\nurl = \"postgres://u:pw@h/db\"\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!err.contains("pw@"), "{err}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Config::load(Some(&p)).is_ok());
    }
}
