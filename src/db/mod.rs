//! Database access: connection pools, TLS, migrations, the embedded cluster and the test kit.

pub mod access;
pub mod copy;
pub mod embedded;
pub mod listen;
pub mod migrate;
pub mod pool;
pub mod testkit;
pub mod tls;
pub mod topology;

pub use pool::{Db, DbTarget};

/// NOTIFY channel raised once per batch of `log_event` rows (ingest, demo). It only wakes the
/// live tail, which then reads rows by cursor; the payload is not relied on.
pub const LOGS_CHANNEL: &str = "opsdash_logs";
