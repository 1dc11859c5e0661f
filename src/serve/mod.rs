//! `opsdash serve`: network receivers that decode shippers' protocols into ingest records.

pub mod loki;
pub mod syslog;
