//! Domain types shared by ingest, queries, the worker and the TUI.

mod alert;
pub mod histogram;
mod level;
pub mod log_block;
pub mod log_row;
pub mod rule;
pub mod search_tokens;
mod time_range;

pub use alert::AlertState;
pub use histogram::Histogram;
pub use level::{Level, Severity};
pub use time_range::{parse_goto, parse_instant, TimeRange};
