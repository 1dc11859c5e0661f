//! The lines the Logs tab keeps in memory: a ring buffer of the newest `capacity` lines in
//! event-time order (`ts`, then `id`), so memory stays bounded whatever the rate. Older lines
//! stay in the database (search).
//!
//! The tail reads rows in commit order (`(tx, id)`, see `query::logs`), which is not time
//! order: two writers commit out of order, and a collector catching up delivers lines stamped
//! an hour ago after the live ones. Each line is therefore put where its time says: appended
//! when it is the newest (the common case, O(1)), inserted in place when it came late (a binary
//! search and a shift of the lines after it). When full, the oldest line by time goes, so the
//! buffer always holds the newest `capacity` lines by time, whatever order they came in.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

use crate::query::logs::LogLine;

/// Where a line sorts: its event time, then its id (ties of one timestamp keep insert order).
pub type LineKey = (DateTime<Utc>, i64);

pub fn key_of(l: &LogLine) -> LineKey {
    (l.ts, l.id)
}

#[derive(Debug)]
pub struct TailBuffer {
    lines: VecDeque<LogLine>,
    capacity: usize,
    /// Lines that scrolled out of the buffer (or were skipped on a long pause) since the start.
    dropped: u64,
    /// Lines added since the start.
    appended: u64,
    /// Lines that arrived older than the newest line already held (placed by their time).
    late: u64,
}

impl TailBuffer {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        TailBuffer {
            lines: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity,
            dropped: 0,
            appended: 0,
            late: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// Lines placed before the newest line because they arrived after it (late lines).
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Adds lines in any order; each goes where its time says. A late line older than every
    /// line of a full buffer is not kept (it would be the first to go).
    pub fn push_batch(&mut self, batch: Vec<LogLine>) {
        for line in batch {
            self.appended += 1;
            let k = key_of(&line);
            let newest = self.lines.back().is_none_or(|b| key_of(b) <= k);
            if newest {
                if self.lines.len() == self.capacity {
                    self.lines.pop_front();
                    self.dropped += 1;
                }
                self.lines.push_back(line);
                continue;
            }
            self.late += 1;
            if self.lines.len() == self.capacity {
                if self.lines.front().is_some_and(|f| k < key_of(f)) {
                    self.dropped += 1;
                    continue;
                }
                self.lines.pop_front();
                self.dropped += 1;
            }
            let at = self.position(k);
            self.lines.insert(at, line);
        }
    }

    /// Index of the first line at or after `k` (`len()` when every line is before it).
    pub fn position(&self, k: LineKey) -> usize {
        self.lines.partition_point(|l| key_of(l) < k)
    }

    /// Drops the lines stamped before `start` (the range slid past them); returns how many.
    pub fn drop_before(&mut self, start: DateTime<Utc>) -> usize {
        let n = self.lines.partition_point(|l| l.ts < start);
        self.lines.drain(..n);
        n
    }

    /// Lines passed over by the engine (a pause longer than the buffer).
    pub fn note_skipped(&mut self, n: u64) {
        self.dropped += n;
    }

    pub fn clear(&mut self) {
        self.lines.clear();
    }

    pub fn get(&self, i: usize) -> Option<&LogLine> {
        self.lines.get(i)
    }

    pub fn first(&self) -> Option<&LogLine> {
        self.lines.front()
    }

    pub fn last(&self) -> Option<&LogLine> {
        self.lines.back()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &LogLine> + ExactSizeIterator {
        self.lines.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(id: i64, secs: i64) -> LogLine {
        LogLine::partial(
            id,
            id,
            Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap(),
            2,
            "s".into(),
            format!("m{id}"),
            None,
        )
    }

    fn ids(b: &TailBuffer) -> Vec<i64> {
        b.iter().map(|l| l.id).collect()
    }

    #[test]
    fn keeps_the_newest_lines_within_capacity() {
        let mut b = TailBuffer::new(3);
        b.push_batch((1..=5).map(|i| at(i, i)).collect());
        assert_eq!(ids(&b), vec![3, 4, 5]);
        assert_eq!(b.dropped(), 2);
        assert_eq!(b.appended(), 5);
        assert_eq!(b.late(), 0);
    }

    #[test]
    fn lines_in_commit_order_are_held_in_time_order() {
        let mut b = TailBuffer::new(10);
        // Committed 1, 2, 3, 4 but stamped 30 s, 10 s, 40 s, 20 s.
        b.push_batch(vec![at(1, 30), at(2, 10), at(3, 40), at(4, 20)]);
        assert_eq!(ids(&b), vec![2, 4, 1, 3]);
        assert_eq!(b.late(), 2);
        // Same timestamp: by id.
        b.push_batch(vec![at(6, 20), at(5, 20)]);
        assert_eq!(ids(&b), vec![2, 4, 5, 6, 1, 3]);
    }

    #[test]
    fn a_full_buffer_keeps_the_newest_by_time() {
        let mut b = TailBuffer::new(3);
        b.push_batch(vec![at(1, 10), at(2, 20), at(3, 30)]);
        // Older than all: not kept.
        b.push_batch(vec![at(4, 5)]);
        assert_eq!(ids(&b), vec![1, 2, 3]);
        // Between: the oldest goes, the late line takes its place by time.
        b.push_batch(vec![at(5, 25)]);
        assert_eq!(ids(&b), vec![2, 5, 3]);
        assert_eq!(b.dropped(), 2);
    }

    #[test]
    fn the_range_sliding_past_drops_the_oldest() {
        let mut b = TailBuffer::new(10);
        b.push_batch(vec![at(1, 10), at(2, 20), at(3, 30)]);
        assert_eq!(
            b.drop_before(Utc.timestamp_opt(1_800_000_020, 0).unwrap()),
            1
        );
        assert_eq!(ids(&b), vec![2, 3]);
        assert_eq!(
            b.position((Utc.timestamp_opt(1_800_000_025, 0).unwrap(), 0)),
            1
        );
    }
}
