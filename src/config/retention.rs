//! `[retention]`: how long each table keeps its rows, per-table policies and archives.

use serde::{Deserialize, Serialize};

use super::Secret;

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
