//! `[[service]]`: the services the worker health-checks.

use serde::{Deserialize, Serialize};

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
