//! The scripted incidents and their schedule. The schedule is a fixed loop, the same in the
//! backfilled history and in live traffic. By default it is aligned on wall-clock time (UTC), so
//! a restarted demo picks up where the loop stands; `Schedule::first_at` moves the loop so that
//! a chosen incident starts at a chosen moment (the demo starts one within seconds, so a
//! newcomer sees an alert fire in the first minute instead of waiting up to half an hour).
//!
//! Default loop (30 min, one slot = 1 min):
//!
//! | slots   | incident                                              |
//! |---------|-------------------------------------------------------|
//! | 0 - 4   | error spike on POST /api/checkout (checkout)          |
//! | 5 - 9   | latency regression on GET /api/search (search)       |
//! | 10 - 13 | slow query burst: orders by user_id (checkout)        |
//! | 15 - 19 | service down: recommendations                         |
//! | 21 - 24 | mass delete: one admin deletes 40 products            |
//! | 26 - 29 | failed-login burst: 300 attempts from one IP          |

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IncidentKind {
    ErrorSpike,
    LatencyRegression,
    SlowQueryBurst,
    ServiceDown,
    MassDelete,
    FailedLoginBurst,
}

/// One incident of the loop, in slots of `cycle / SLOTS`.
pub struct Incident {
    pub kind: IncidentKind,
    pub start_slot: u32,
    pub slots: u32,
    pub description: &'static str,
}

pub const SLOTS: u32 = 30;

/// Deletes made during one mass-delete incident, and failed logins during one burst: fixed per
/// occurrence (not per second) so the signature holds for any loop length.
pub const MASS_DELETES: u32 = 40;
pub const FAILED_LOGINS: u32 = 300;

/// Latency multiplier on the regressed route, error probability on the spiking route.
pub const REGRESSION_FACTOR: f64 = 9.0;
pub const SPIKE_ERROR_RATE: f64 = 0.45;

pub const INCIDENTS: &[Incident] = &[
    Incident {
        kind: IncidentKind::ErrorSpike,
        start_slot: 0,
        slots: 4,
        description: "error spike: POST /api/checkout (checkout) fails ~45% with InventoryReservationException",
    },
    Incident {
        kind: IncidentKind::LatencyRegression,
        start_slot: 5,
        slots: 4,
        description: "latency regression: GET /api/search (search) ~9x slower",
    },
    Incident {
        kind: IncidentKind::SlowQueryBurst,
        start_slot: 10,
        slots: 3,
        description: "slow query burst: orders by user_id (checkout) takes 1.5-6 s",
    },
    Incident {
        kind: IncidentKind::ServiceDown,
        start_slot: 15,
        slots: 4,
        description: "service down: recommendations (health checks down, requests fail with 503)",
    },
    Incident {
        kind: IncidentKind::MassDelete,
        start_slot: 21,
        slots: 3,
        description: "mass delete: admin u10007 deletes 40 products",
    },
    Incident {
        kind: IncidentKind::FailedLoginBurst,
        start_slot: 26,
        slots: 3,
        description: "failed-login burst: 300 attempts from 185.220.101.47",
    },
];

/// The route and service each incident hits.
pub const SPIKE_ROUTE: (&str, &str) = ("POST", "/api/checkout");
pub const REGRESSION_ROUTE: (&str, &str) = ("GET", "/api/search");
pub const DOWN_SERVICE: &str = "recommendations";

/// Where one occurrence of an incident runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    pub kind: IncidentKind,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    cycle_ms: i64,
    /// A moment at which a cycle starts (ms since the epoch).
    origin_ms: i64,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::new(Duration::from_secs(30 * 60))
    }
}

impl Schedule {
    /// A loop of `cycle` (at least 30 s, so every slot is at least a second long).
    pub fn new(cycle: Duration) -> Schedule {
        let ms = i64::try_from(cycle.as_millis()).unwrap_or(i64::MAX / 4);
        Schedule {
            cycle_ms: ms.max(30_000),
            origin_ms: 0,
        }
    }

    /// The same loop, shifted so that an occurrence of `kind` starts at `at`.
    pub fn first_at(self, kind: IncidentKind, at: DateTime<Utc>) -> Schedule {
        let slot = INCIDENTS
            .iter()
            .find(|i| i.kind == kind)
            .map_or(0, |i| i64::from(i.start_slot));
        Schedule {
            origin_ms: at.timestamp_millis() - slot * self.slot_ms(),
            ..self
        }
    }

    /// Start of the cycle holding `ms`.
    fn cycle_start(&self, ms: i64) -> i64 {
        self.origin_ms + (ms - self.origin_ms).div_euclid(self.cycle_ms) * self.cycle_ms
    }

    pub fn cycle(&self) -> Duration {
        Duration::from_millis(self.cycle_ms as u64)
    }

    fn slot_ms(&self) -> i64 {
        self.cycle_ms / i64::from(SLOTS)
    }

    fn occurrence_in_cycle(&self, inc: &Incident, cycle_start_ms: i64) -> Occurrence {
        let start = cycle_start_ms + i64::from(inc.start_slot) * self.slot_ms();
        let end = start + i64::from(inc.slots) * self.slot_ms();
        Occurrence {
            kind: inc.kind,
            start: ms_to_time(start),
            end: ms_to_time(end),
        }
    }

    /// The incidents running at `t`.
    pub fn active_at(&self, t: DateTime<Utc>) -> Vec<Occurrence> {
        let cycle_start = self.cycle_start(t.timestamp_millis());
        INCIDENTS
            .iter()
            .map(|inc| self.occurrence_in_cycle(inc, cycle_start))
            .filter(|o| o.start <= t && t < o.end)
            .collect()
    }

    pub fn is_active(&self, kind: IncidentKind, t: DateTime<Utc>) -> bool {
        self.active_kinds(t).any(|k| k == kind)
    }

    /// The kinds of the incidents running at `t`, without allocating (called per request).
    pub fn active_kinds(&self, t: DateTime<Utc>) -> impl Iterator<Item = IncidentKind> + '_ {
        let offset = (t.timestamp_millis() - self.origin_ms).rem_euclid(self.cycle_ms);
        let slot_ms = self.slot_ms();
        INCIDENTS
            .iter()
            .filter(move |inc| {
                let start = i64::from(inc.start_slot) * slot_ms;
                start <= offset && offset < start + i64::from(inc.slots) * slot_ms
            })
            .map(|inc| inc.kind)
    }

    /// Every occurrence overlapping `[from, to)`, in start order.
    pub fn occurrences(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Occurrence> {
        let mut out = Vec::new();
        let mut cycle_start = self.cycle_start(from.timestamp_millis());
        while cycle_start < to.timestamp_millis() {
            for inc in INCIDENTS {
                let o = self.occurrence_in_cycle(inc, cycle_start);
                if o.start < to && o.end > from {
                    out.push(o);
                }
            }
            cycle_start += self.cycle_ms;
        }
        out.sort_by_key(|o| o.start);
        out
    }
}

pub fn describe(kind: IncidentKind) -> &'static str {
    INCIDENTS
        .iter()
        .find(|i| i.kind == kind)
        .map(|i| i.description)
        .unwrap_or("")
}

fn ms_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + TimeDelta::milliseconds(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incidents_do_not_overlap_and_fit_the_loop() {
        let mut slots = [false; SLOTS as usize];
        for inc in INCIDENTS {
            for s in inc.start_slot..inc.start_slot + inc.slots {
                assert!(!slots[s as usize], "slot {s} used twice");
                slots[s as usize] = true;
            }
        }
    }

    #[test]
    fn a_shifted_loop_starts_the_chosen_incident_at_the_chosen_moment() {
        let at = ms_to_time(1_700_000_123_456);
        let s = Schedule::new(Duration::from_secs(1800)).first_at(IncidentKind::MassDelete, at);
        assert!(s.is_active(IncidentKind::MassDelete, at));
        assert!(!s.is_active(IncidentKind::MassDelete, at - TimeDelta::milliseconds(1)));
        let occ = s.occurrences(at - TimeDelta::hours(2), at + TimeDelta::hours(2));
        let starts: Vec<_> = occ
            .iter()
            .filter(|o| o.kind == IncidentKind::MassDelete)
            .map(|o| o.start)
            .collect();
        assert!(starts.contains(&at), "{starts:?}");
        assert_eq!(
            s.active_at(at).iter().map(|o| o.kind).collect::<Vec<_>>(),
            vec![IncidentKind::MassDelete]
        );
    }

    #[test]
    fn every_incident_occurs_once_per_cycle() {
        let s = Schedule::new(Duration::from_secs(300));
        let from = ms_to_time(1_700_000_000_000);
        let occ = s.occurrences(from, from + TimeDelta::seconds(300 * 4));
        for inc in INCIDENTS {
            let n = occ.iter().filter(|o| o.kind == inc.kind).count();
            assert!((4..=5).contains(&n), "{:?} {n}", inc.kind);
        }
        for o in &occ {
            let mid = o.start + (o.end - o.start) / 2;
            assert!(s.is_active(o.kind, mid));
            assert!(!s.is_active(o.kind, o.end));
        }
    }
}
