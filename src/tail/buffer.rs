//! The lines the Logs tab keeps in memory: a ring buffer of the newest `capacity` lines, so
//! memory stays bounded whatever the rate. Older lines stay in the database (search).

use std::collections::VecDeque;

use crate::query::logs::LogLine;

#[derive(Debug)]
pub struct TailBuffer {
    lines: VecDeque<LogLine>,
    capacity: usize,
    /// Lines that scrolled out of the buffer (or were skipped on a long pause) since the start.
    dropped: u64,
    /// Lines appended since the start, to let a view keep its position as lines arrive.
    appended: u64,
}

impl TailBuffer {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        TailBuffer {
            lines: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity,
            dropped: 0,
            appended: 0,
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

    pub fn push_batch(&mut self, batch: Vec<LogLine>) {
        for line in batch {
            if self.lines.len() == self.capacity {
                self.lines.pop_front();
                self.dropped += 1;
            }
            self.lines.push_back(line);
            self.appended += 1;
        }
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

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &LogLine> + ExactSizeIterator {
        self.lines.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: i64) -> LogLine {
        LogLine::partial(
            id,
            id,
            chrono::Utc::now(),
            2,
            "s".into(),
            format!("m{id}"),
            None,
        )
    }

    #[test]
    fn keeps_the_newest_lines_within_capacity() {
        let mut b = TailBuffer::new(3);
        b.push_batch((1..=5).map(line).collect());
        assert_eq!(b.len(), 3);
        assert_eq!(b.iter().map(|l| l.id).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert_eq!(b.dropped(), 2);
        assert_eq!(b.appended(), 5);
    }
}
