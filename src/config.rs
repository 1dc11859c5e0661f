//! opsdash configuration: `config.toml` from the platform config dir (or `--config`), then
//! environment overrides. Every key has a default; `config.example.toml` at the top of the repo
//! documents them and a test keeps it equal to `Config::default()`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
    pub kpi: KpiConfig,
    /// Services the worker health-checks (`[[service]]`).
    pub service: Vec<ServiceCheck>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Primary database URL. Empty: use the embedded private cluster.
    pub url: Secret,
    /// Optional read replica: dashboard reads go there, writes to the primary.
    pub read_url: Secret,
    /// Connections in the pool.
    pub pool_size: u32,
    /// Time to wait for a connection before reporting the database unreachable.
    pub connect_timeout_ms: u64,
    /// Every dashboard query is cut off after this long.
    pub query_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: Secret::default(),
            read_url: Secret::default(),
            pool_size: 8,
            connect_timeout_ms: 3000,
            query_timeout_ms: 5000,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Where the private cluster lives. Empty: the platform data dir (or /var/lib/opsdash when
    /// running as root, because the postgres user cannot reach root's home).
    pub data_dir: String,
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
    /// Keys whose values are replaced by [REDACTED] in fields and in key=value text.
    pub redact_keys: Vec<String>,
    /// Redact card numbers (Luhn-checked) and US social security numbers.
    pub redact_card_numbers: bool,
    pub redact_ssn: bool,
    /// Extra redaction rules: a regex and its replacement.
    pub redact: Vec<RedactRule>,
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
            redact_keys: DEFAULT_REDACT_KEYS.iter().map(|s| s.to_string()).collect(),
            redact_card_numbers: true,
            redact_ssn: true,
            redact: Vec::new(),
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
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            enabled: true,
            lease_ttl_ms: 5000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days of daily partitions created ahead of today.
    pub partitions_ahead_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            partitions_ahead_days: 7,
        }
    }
}

/// The KPI tab: operators' own widgets, shown on the tab's "custom" view.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KpiConfig {
    pub widget: Vec<KpiWidget>,
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
                message: e.message().trim().to_string(),
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
                check_permissions(p, &cfg)?;
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
    }

    /// Whether this config carries a password (in a URL or a secret).
    pub fn holds_secret(&self) -> bool {
        url_has_password(self.database.url.expose())
            || url_has_password(self.database.read_url.expose())
    }

    fn validate(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| {
            let (line, column) = find_key(text, key);
            ConfigError::Invalid {
                path: path.display().to_string(),
                line,
                column,
                message: format!("{key}: {message}"),
            }
        };
        if !matches!(self.ui.clock.as_str(), "utc" | "local") {
            return Err(bad(
                "clock",
                format!("expected \"utc\" or \"local\", found {:?}", self.ui.clock),
            ));
        }
        if crate::model::TimeRange::parse(&self.ui.range).is_none() {
            return Err(bad(
                "range",
                format!(
                    "expected one of 1h, 6h, 24h, 7d, 30d, found {:?}",
                    self.ui.range
                ),
            ));
        }
        if self.ui.tail_buffer == 0 {
            return Err(bad("tail_buffer", "must be at least 1".into()));
        }
        if self.database.pool_size == 0 {
            return Err(bad("pool_size", "must be at least 1".into()));
        }
        if self.ingest.batch_size == 0 {
            return Err(bad("batch_size", "must be at least 1".into()));
        }
        if let Err(e) = humantime::parse_duration(&self.ingest.dedup_window) {
            return Err(bad(
                "dedup_window",
                format!("not a duration ({e}), e.g. \"10s\""),
            ));
        }
        for w in &self.kpi.widget {
            if !WIDGET_KINDS.contains(&w.kind.as_str()) {
                return Err(bad(
                    "kind",
                    format!(
                        "widget {:?}: unknown kind {:?} (one of {})",
                        w.title,
                        w.kind,
                        WIDGET_KINDS.join(", ")
                    ),
                ));
            }
            if w.kind != "alerts" && w.query.trim().is_empty() {
                return Err(bad(
                    "query",
                    format!("widget {:?}: a {} widget needs a query", w.title, w.kind),
                ));
            }
        }
        for s in &self.service {
            if !matches!(s.kind.as_str(), "http" | "tcp" | "postgres") {
                return Err(bad(
                    "kind",
                    format!(
                        "service {:?}: unknown kind {:?} (http, tcp or postgres)",
                        s.name, s.kind
                    ),
                ));
            }
            if s.name.trim().is_empty() || s.target.trim().is_empty() {
                return Err(bad(
                    "target",
                    "every [[service]] needs a name and a target".into(),
                ));
            }
            if s.interval_s == 0 || s.timeout_ms == 0 {
                return Err(bad(
                    "interval_s",
                    format!("service {:?}: interval and timeout must be > 0", s.name),
                ));
            }
        }
        for rule in &self.ingest.redact {
            if let Err(e) = regex::Regex::new(&rule.pattern) {
                return Err(bad(
                    "pattern",
                    format!("rule {:?}: bad regex: {e}", rule.name),
                ));
            }
        }
        Ok(())
    }
}

/// Refuses a config file that holds a password and can be read by group or others, as ssh
/// refuses an unprotected key.
pub fn check_permissions(path: &Path, cfg: &Config) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    if !cfg.holds_secret() {
        return Ok(());
    }
    let meta = std::fs::metadata(path).map_err(|e| ConfigError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(ConfigError::Unsafe {
            path: path.display().to_string(),
            message: format!(
                "holds a database password but is readable by others (mode {:o}); run: chmod 600 {}",
                mode & 0o777,
                path.display()
            ),
        });
    }
    Ok(())
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, column)
}

/// Line of the first assignment to `key` (for validation errors found after parsing).
fn find_key(text: &str, key: &str) -> (usize, usize) {
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return (i + 1, line.len() - t.len() + 1);
            }
        }
    }
    (1, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_equals_defaults() {
        let text = include_str!("../config.example.toml");
        let cfg = Config::parse(text, Path::new("config.example.toml")).unwrap();
        assert_eq!(cfg, Config::default());
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
