//! Domain types shared by ingest, queries, the worker and the TUI.

mod level;
mod time_range;

pub use level::{Level, Severity};
pub use time_range::TimeRange;
