//! The SQL of opsdash, one module per view or area. Worker jobs, the CLI and the TUI call these
//! functions; nothing else writes SQL, and this module never depends on the TUI.

pub mod health;
pub mod ingest;
pub mod kpi;
pub mod status;
