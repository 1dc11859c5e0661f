//! The SQL of every view, one module per area. The TUI, the worker and the CLI call these
//! functions; nothing else writes SQL for them.

pub mod audit;
pub mod error_groups;
pub mod logs;
pub mod trace;
