//! Domain types shared by ingest, queries, the worker and the TUI.

pub mod histogram;
mod level;
pub mod rule;
mod time_range;

pub use histogram::Histogram;
pub use level::{Level, Severity};
pub use time_range::{parse_goto, parse_instant, TimeRange};
