//! De-duplication window: identical events (service, level, message) within the window become
//! one stored row whose `repeat_count` says how many arrived. A repeat of a row that is still in
//! the batch being built bumps its count in memory; a repeat of a row already written is
//! remembered and applied by one UPDATE with the next batch.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;

use chrono::{DateTime, Utc};

/// Where the row that absorbs a repeat is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No such event within the window: store a new row.
    New,
    /// Fold into the row at this index of the batch being built.
    InBatch(usize),
    /// Fold into a row already sent with batch `seq` (at `index` in it), whose ts is `ts`.
    Sent {
        seq: u64,
        index: usize,
        ts: DateTime<Utc>,
    },
}

struct Entry {
    service: String,
    level: i16,
    message: String,
    first_ts: DateTime<Utc>,
    seq: u64,
    index: usize,
}

/// Entries kept at most; beyond this the oldest are dropped (dedup is then best-effort for
/// very high-cardinality streams, which rarely repeat anyway).
const MAX_ENTRIES: usize = 200_000;

pub struct Dedup {
    window_us: i64,
    hasher: RandomState,
    entries: HashMap<u64, Vec<Entry>>,
    len: usize,
    newest: Option<DateTime<Utc>>,
}

impl Dedup {
    /// A zero window disables de-duplication.
    pub fn new(window: std::time::Duration) -> Dedup {
        Dedup {
            window_us: i64::try_from(window.as_micros()).unwrap_or(i64::MAX),
            hasher: RandomState::new(),
            entries: HashMap::new(),
            len: 0,
            newest: None,
        }
    }

    pub fn enabled(&self) -> bool {
        self.window_us > 0
    }

    /// Looks the event up; when it is new, remembers it as row `index` of batch `seq`.
    pub fn check(
        &mut self,
        service: &str,
        level: i16,
        message: &str,
        ts: DateTime<Utc>,
        seq: u64,
        index: usize,
    ) -> Verdict {
        if !self.enabled() {
            return Verdict::New;
        }
        if self.newest.is_none_or(|n| ts > n) {
            self.newest = Some(ts);
        }
        let hash = self.hasher.hash_one((service, level, message));
        let bucket = self.entries.entry(hash).or_default();
        if let Some(e) = bucket
            .iter_mut()
            .find(|e| e.level == level && e.service == service && e.message == message)
        {
            let gap = (ts - e.first_ts).num_microseconds().unwrap_or(i64::MAX);
            if gap.abs() < self.window_us {
                return if e.seq == seq {
                    Verdict::InBatch(e.index)
                } else {
                    Verdict::Sent {
                        seq: e.seq,
                        index: e.index,
                        ts: e.first_ts,
                    }
                };
            }
            e.first_ts = ts;
            e.seq = seq;
            e.index = index;
            return Verdict::New;
        }
        bucket.push(Entry {
            service: service.to_string(),
            level,
            message: message.to_string(),
            first_ts: ts,
            seq,
            index,
        });
        self.len += 1;
        Verdict::New
    }

    /// Forgets events whose window has closed (relative to the newest event seen).
    pub fn prune(&mut self) {
        let Some(newest) = self.newest else {
            return;
        };
        let window = self.window_us;
        let before = self.len;
        let mut removed = 0;
        self.entries.retain(|_, bucket| {
            let n = bucket.len();
            bucket.retain(|e| {
                (newest - e.first_ts)
                    .num_microseconds()
                    .is_some_and(|g| g < window)
            });
            removed += n - bucket.len();
            !bucket.is_empty()
        });
        self.len = before - removed;
        if self.len > MAX_ENTRIES {
            self.entries.clear();
            self.len = 0;
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
    }

    #[test]
    fn folds_within_window_only() {
        let mut d = Dedup::new(Duration::from_secs(10));
        assert_eq!(d.check("a", 2, "m", t(0), 0, 0), Verdict::New);
        assert_eq!(d.check("a", 2, "m", t(9_999), 0, 1), Verdict::InBatch(0));
        assert_eq!(d.check("a", 3, "m", t(1), 0, 1), Verdict::New);
        assert_eq!(
            d.check("a", 2, "m", t(5_000), 1, 0),
            Verdict::Sent {
                seq: 0,
                index: 0,
                ts: t(0)
            }
        );
        assert_eq!(d.check("a", 2, "m", t(10_000), 1, 0), Verdict::New);
        d.check("b", 2, "m", t(20_000), 1, 1);
        d.prune();
        assert_eq!(d.len(), 1);
        let mut off = Dedup::new(Duration::ZERO);
        assert_eq!(off.check("a", 2, "m", t(0), 0, 0), Verdict::New);
        assert_eq!(off.check("a", 2, "m", t(0), 0, 1), Verdict::New);
    }

    proptest! {
        /// Simulates storage: every event is either a new row or adds to one. The counts add up
        /// to the events, and two rows of one key are never closer than the window.
        #[test]
        fn counts_add_up_and_rows_respect_the_window(
            events in prop::collection::vec((0u8..2, 0u8..2, 0u8..3, 0i64..6000, any::<bool>()), 1..300),
            window_ms in 1u64..20_000,
        ) {
            let mut d = Dedup::new(Duration::from_millis(window_ms));
            type Key = (u8, u8, u8);
            // (batch, index) -> (key, first ts, count)
            let mut rows: HashMap<(u64, usize), (Key, i64, u64)> = HashMap::new();
            let mut seq = 0u64;
            let mut batch_len = 0usize;
            let mut now = 0i64;
            for (svc, lvl, msg, step, seal) in &events {
                now += step;
                let key = (*svc, *lvl, *msg);
                let service = format!("s{svc}");
                let message = format!("m{msg}");
                match d.check(&service, i16::from(*lvl), &message, t(now), seq, batch_len) {
                    Verdict::New => {
                        rows.insert((seq, batch_len), (key, now, 1));
                        batch_len += 1;
                    }
                    Verdict::InBatch(i) => rows.get_mut(&(seq, i)).unwrap().2 += 1,
                    Verdict::Sent { seq: s, index, ts } => {
                        let row = rows.get_mut(&(s, index)).unwrap();
                        prop_assert_eq!(t(row.1), ts);
                        row.2 += 1;
                    }
                }
                if *seal {
                    seq += 1;
                    batch_len = 0;
                    d.prune();
                }
            }
            let total: u64 = rows.values().map(|r| r.2).sum();
            prop_assert_eq!(total, events.len() as u64);
            let mut by_key: HashMap<Key, Vec<i64>> = HashMap::new();
            for (key, ts, _) in rows.values() {
                by_key.entry(*key).or_default().push(*ts);
            }
            for times in by_key.values_mut() {
                times.sort();
                for w in times.windows(2) {
                    prop_assert!(w[1] - w[0] >= window_ms as i64, "rows {} and {} closer than {}", w[0], w[1], window_ms);
                }
            }
        }
    }
}
