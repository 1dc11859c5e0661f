//! The registry of background jobs. Each area exposes `job()` from its own module and is listed
//! here; the scheduler runs every listed job in exactly one opsdash instance at a time.

use super::Job;
use crate::config::Config;

pub fn all(cfg: &Config) -> Vec<Job> {
    vec![
        crate::alerts::engine::job(cfg),
        crate::notify::job(cfg),
        super::health::job(),
        super::rollup::job(),
        super::retention::job(),
    ]
}
