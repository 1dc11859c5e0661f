//! SQL, one module per view or area. Worker jobs, the TUI and the CLI call these functions.

pub mod ingest;
