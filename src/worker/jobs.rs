//! The registry of background jobs. Each area exposes `job()` from its own module and is listed
//! here; the scheduler runs every listed job in exactly one opsdash instance at a time.

use super::wake::Wake;
use super::Job;
use crate::config::Config;

pub fn all(cfg: &Config) -> Vec<Job> {
    // One wake-up listener for the jobs that would otherwise poll every tick.
    let wake = Wake::default();
    vec![
        crate::alerts::engine::job(cfg, &wake),
        crate::notify::job(cfg, &wake),
        crate::alerts::external::job(),
        super::health::job(),
        super::rollup::job(),
        super::retention::job(),
        super::statements::job(),
    ]
}
