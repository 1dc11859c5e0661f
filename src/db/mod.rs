//! Database access: connection pools, migrations, the embedded cluster and the test kit.

pub mod copy;
pub mod embedded;
pub mod migrate;
pub mod pool;
pub mod testkit;

pub use pool::{Db, DbTarget};
