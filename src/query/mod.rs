//! The SQL of opsdash, one module per view or area. Worker jobs, the CLI and the TUI call these
//! functions; nothing else writes SQL, and this module never depends on the TUI.

pub mod access;
pub mod alert_history;
pub mod alert_metrics;
pub mod alerts;
pub mod audit;
pub mod checkpoint;
pub mod demo;
pub mod error_groups;
pub mod external_alerts;
pub mod health;
pub mod histogram;
pub mod history;
pub mod ingest;
pub mod kpi;
pub mod lease;
pub mod log_block;
pub mod logs;
pub mod outbox;
pub mod perf;
pub mod retention;
pub mod rollup;
pub mod rules;
pub mod serve_metrics;
pub mod silences;
pub mod spans;
pub mod statements;
pub mod status;
pub mod topology;
pub mod trace;
