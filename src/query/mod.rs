//! The SQL behind every view, one module per area. The TUI and the worker call these functions;
//! this module never depends on the TUI.

pub mod kpi;
pub mod perf;
pub mod rollup;
pub mod status;
