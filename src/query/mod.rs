//! The SQL of opsdash, one module per view or area. Worker jobs, the CLI and the TUI call these
//! functions; nothing else writes SQL.

pub mod alert_metrics;
pub mod alerts;
