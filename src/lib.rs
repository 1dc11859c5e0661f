//! opsdash: a terminal operations dashboard backed by PostgreSQL.
//!
//! The binary (`src/main.rs`) is a thin CLI over this library so tests and benchmarks run the
//! same code as users do.

pub mod alerts;
pub mod archive;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod export;
pub mod filter;
pub mod ingest;
pub mod jobs;
pub mod model;
pub mod notify;
pub mod query;
pub mod sanitize;
pub mod serve;
pub mod tail;
pub mod trust;
pub mod tui;
pub mod worker;
