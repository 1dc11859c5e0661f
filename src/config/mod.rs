//! opsdash configuration: `config.toml` from the platform config dir (or `--config`), then
//! environment overrides. Every key has a default; `config.example.toml` at the top of the repo
//! documents them and a test keeps it equal to `Config::default()`.
//!
//! One file per section of the file; this one holds the whole `Config`, its loading and the
//! checks that cross sections.

pub mod alerts;
mod database;
mod ingest;
mod locate;
mod retention;
mod secret;
mod server;
mod services;
mod ui;
mod worker;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use database::{DatabaseConfig, EmbeddedConfig, MonitorConfig};
pub use ingest::{AuditFields, IngestConfig, MultilineRule, RedactRule, DEFAULT_REDACT_KEYS};
use locate::{line_col, locate};
pub use retention::{
    RetentionConfig, TablePolicy, AUDIT_MAX_DAYS, AUDIT_MIN_DAYS, PARTITIONED_TABLES,
};
pub use secret::{check_permissions, redact_url, secrets_in, Secret};
pub use server::{ServerConfig, ServerToken};
pub use services::ServiceCheck;
pub use ui::{KeysConfig, KpiConfig, KpiWidget, LogsConfig, UiConfig, WIDGET_KINDS};
pub use worker::WorkerConfig;

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
