//! The SQL behind every view, one module per area. The TUI, the worker and the CLI call these
//! functions; this module never depends on the TUI.

pub mod audit;
pub mod error_groups;
pub mod kpi;
pub mod logs;
pub mod status;
pub mod trace;
