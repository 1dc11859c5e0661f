//! The SQL behind every view, one module per area. The TUI and the worker call these functions;
//! this module never depends on the TUI.

pub mod health;
pub mod kpi;
pub mod retention;
pub mod status;
