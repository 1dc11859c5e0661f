//! The SQL behind every view, one module per area. The TUI, the worker and the CLI call these
//! functions; this module never depends on the TUI.

pub mod alert_metrics;
pub mod alerts;
pub mod ingest;
pub mod kpi;
pub mod status;
