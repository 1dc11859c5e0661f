//! The Logs list's lines: a window onto all of history in (ts, id) order, loaded page by page
//! as the cursor nears either end, joined by the live tail while the window reaches the newest
//! line, and held to `capacity` lines by dropping the end farther from the cursor.
//!
//! Two flags say what lies beyond the window: `older_left` (lines before the first may exist in
//! the range: not loaded yet, or dropped to bound memory) and `newer_left` (the window stops
//! short of the newest line: the operator scrolled back far enough that the newest lines were
//! dropped, or jumped into the past). While `newer_left` holds, the tail's lines wait in `side`
//! (bounded too) instead of joining; when a newer page comes back short the window has reached
//! the newest line again, and the waiting lines join it. Lines are de-duplicated by (ts, id) on
//! every merge, so a line read both by a page and by the tail is held once.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

use crate::query::logs::LogLine;

/// Where a line sorts: its event time, then its id (ties of one timestamp keep insert order).
pub type LineKey = (DateTime<Utc>, i64);

pub fn key_of(l: &LogLine) -> LineKey {
    (l.ts, l.id)
}

/// Lines per page read from history.
pub(super) const PAGE: i64 = 500;

/// A page is asked for when the cursor comes this close to an end of the window with more
/// lines beyond it, so scrolling rarely waits on the database.
pub(super) const PREFETCH: usize = 100;

#[derive(Debug)]
pub struct LogList {
    lines: VecDeque<LogLine>,
    capacity: usize,
    pub older_left: bool,
    pub newer_left: bool,
    /// The tail's lines that came while the window stopped short of the newest line.
    side: VecDeque<LogLine>,
    /// Which loads are on their way (one per end at a time).
    pub asking_older: bool,
    pub asking_newer: bool,
    /// A load that replaces the window is on its way (no page is asked for meanwhile).
    pub replacing: bool,
    /// Bumped whenever the window is emptied for a new question (filter, range, jump), so a
    /// load asked for before is recognised and dropped.
    pub epoch: u64,
    /// Lines placed before the newest line because they arrived after it (late lines).
    late: u64,
}

impl LogList {
    pub fn new(capacity: usize) -> LogList {
        LogList {
            lines: VecDeque::new(),
            capacity: capacity.max(PAGE as usize * 2),
            older_left: true,
            newer_left: false,
            side: VecDeque::new(),
            asking_older: false,
            asking_newer: false,
            replacing: false,
            epoch: 0,
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

    pub fn get(&self, i: usize) -> Option<&LogLine> {
        self.lines.get(i)
    }

    pub fn first(&self) -> Option<&LogLine> {
        self.lines.front()
    }

    pub fn last(&self) -> Option<&LogLine> {
        self.lines.back()
    }

    pub fn late(&self) -> u64 {
        self.late
    }

    /// Lines of the tail waiting for the window to reach the newest line.
    pub fn waiting_aside(&self) -> usize {
        self.side.len()
    }

    /// Index of the first line at or after `k` (`len()` when every line is before it).
    pub fn position(&self, k: LineKey) -> usize {
        self.lines.partition_point(|l| key_of(l) < k)
    }

    /// Whether the window holds the line of key `k`.
    pub fn holds(&self, k: LineKey) -> bool {
        self.lines
            .get(self.position(k))
            .is_some_and(|l| key_of(l) == k)
    }

    /// Empties the window for a new question.
    pub fn clear(&mut self) {
        self.lines.clear();
        self.side.clear();
        self.older_left = true;
        self.newer_left = false;
        self.renew();
        self.replacing = false;
    }

    /// A load that replaces the window is asked for: pages asked for before are dropped when
    /// they come (a new epoch), and none is asked for until it is in.
    pub fn renew(&mut self) {
        self.epoch += 1;
        self.asking_older = false;
        self.asking_newer = false;
        self.replacing = true;
    }

    /// Drops the lines stamped before `start` (the range slid past them).
    pub fn drop_before(&mut self, start: chrono::DateTime<chrono::Utc>) {
        let n = self.lines.partition_point(|l| l.ts < start);
        self.lines.drain(..n);
        let n = self.side.partition_point(|l| l.ts < start);
        self.side.drain(..n);
    }

    /// Puts `line` where its key says, unless a line with that key is already held. Returns
    /// whether it was added.
    fn insert(&mut self, line: LogLine) -> bool {
        let k = key_of(&line);
        if self.lines.back().is_none_or(|b| key_of(b) < k) {
            self.lines.push_back(line);
            return true;
        }
        let at = self.position(k);
        if self.lines.get(at).is_some_and(|l| key_of(l) == k) {
            return false;
        }
        self.late += 1;
        self.lines.insert(at, line);
        true
    }

    /// Lines from the live tail. While the window reaches the newest line they join it (a
    /// line older than the window's first is left to the older pages, where it belongs);
    /// otherwise they wait aside.
    pub fn push_tail(&mut self, lines: Vec<LogLine>, cursor: Option<LineKey>) {
        if self.newer_left {
            for l in lines {
                if self.side.len() >= self.capacity {
                    self.side.pop_front();
                }
                self.side.push_back(l);
            }
            return;
        }
        for l in lines {
            let before_window =
                self.older_left && self.lines.front().is_some_and(|f| key_of(&l) < key_of(f));
            if !before_window {
                self.insert(l);
            }
        }
        self.trim(cursor);
    }

    /// The tail's fill after a start, a new filter, a new range or a reconnect: the newest
    /// lines of the engine's window, or an empty one after a gap (`Skipped`). While the list
    /// reaches the newest line they join it. A fill shorter than the buffer holds every line
    /// of the engine's window, so the lines held before its first stay (they may come from a
    /// `:goto` further back than the engine's range, loaded just before the engine's first
    /// fill arrived); a full one may leave a gap behind it, and older pages fill in instead.
    pub fn tail_reset(&mut self, lines: Vec<LogLine>, gap: bool) {
        if self.newer_left {
            self.side = lines.into();
            return;
        }
        if gap || lines.len() >= self.capacity {
            self.lines = lines.into();
            self.older_left = true;
            return;
        }
        let before = match lines.first().map(key_of) {
            Some(f) => self.lines.partition_point(|l| key_of(l) < f),
            None => self.lines.len(),
        };
        self.lines.truncate(before);
        self.lines.extend(lines);
        self.trim(None);
    }

    /// A load that replaces the window (newest, oldest or around an instant). Lines of the
    /// tail held so far join it when it reaches the newest line.
    pub fn replace(&mut self, lines: Vec<LogLine>, older_left: bool, newer_left: bool) {
        self.replacing = false;
        let keep: Vec<LogLine> = if newer_left {
            Vec::new()
        } else {
            self.lines.drain(..).chain(self.side.drain(..)).collect()
        };
        self.lines = lines.into();
        self.older_left = older_left;
        self.newer_left = newer_left;
        self.side.clear();
        let first = self.lines.front().map(key_of);
        for l in keep {
            // The tail's lines are the newest; older ones than the load's first line belong
            // to pages not loaded (when there are any).
            if !(older_left && first.is_some_and(|f| key_of(&l) < f)) {
                self.insert(l);
            }
        }
    }

    /// An older page (oldest first, every line before the window's first).
    pub fn prepend(&mut self, page: Vec<LogLine>, older_left: bool, cursor: Option<LineKey>) {
        self.asking_older = false;
        let first = self.lines.front().map(key_of);
        for l in page.into_iter().rev() {
            if first.is_none_or(|f| key_of(&l) < f) {
                self.lines.push_front(l);
            }
        }
        self.older_left = older_left;
        self.trim(cursor);
    }

    /// A newer page (oldest first, every line after the window's last). A short page means
    /// the window reached the newest line of the range: the tail's waiting lines join.
    pub fn append(&mut self, page: Vec<LogLine>, newer_left: bool, cursor: Option<LineKey>) {
        self.asking_newer = false;
        let last = self.lines.back().map(key_of);
        for l in page {
            if last.is_none_or(|k| key_of(&l) > k) {
                self.lines.push_back(l);
            }
        }
        self.newer_left = newer_left;
        if !newer_left {
            let side: Vec<LogLine> = self.side.drain(..).collect();
            for l in side {
                self.insert(l);
            }
        }
        self.trim(cursor);
    }

    /// Holds the window to `capacity` lines, dropping from the end farther from the cursor
    /// (the oldest lines when following the newest).
    fn trim(&mut self, cursor: Option<LineKey>) {
        let over = self.lines.len().saturating_sub(self.capacity);
        if over == 0 {
            return;
        }
        let at = cursor.map_or(self.lines.len(), |k| self.position(k));
        if at < self.lines.len() / 2 {
            self.lines.truncate(self.capacity);
            self.newer_left = true;
        } else {
            self.lines.drain(..over);
            self.older_left = true;
        }
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &LogLine> + ExactSizeIterator {
        self.lines.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn line(sec: i64, id: i64) -> LogLine {
        let ts = Utc.timestamp_opt(1_800_000_000 + sec, 0).unwrap();
        LogLine::partial(
            id,
            0,
            ts,
            crate::model::Level::Info,
            "api".into(),
            format!("line {id}"),
            None,
        )
    }

    fn ids(l: &LogList) -> Vec<i64> {
        l.iter().map(|l| l.id).collect()
    }

    #[test]
    fn pages_join_the_window_once_each_and_memory_stays_bounded() {
        let mut l = LogList::new(0);
        let cap = l.capacity() as i64;
        let span = |a: i64, b: i64| (a..b).map(|i| line(i, i)).collect::<Vec<_>>();
        l.replace(span(2 * cap, 3 * cap), true, false);
        // Scrolled to the top, an older page overlapping the window by one line: the overlap
        // is held once, and the page past capacity drops the newest end, so the window no
        // longer reaches the newest line and the tail's lines wait aside.
        let top = Some(key_of(l.first().unwrap()));
        l.prepend(span(2 * cap - PAGE, 2 * cap + 1), true, top);
        assert_eq!(l.len(), l.capacity());
        assert!(l.newer_left && l.older_left);
        assert_eq!(l.first().unwrap().id, 2 * cap - PAGE);
        l.push_tail(vec![line(4 * cap, 4 * cap)], top);
        assert_eq!(l.waiting_aside(), 1);
        // Back down: a short newer page reaches the newest line; the waiting line joins after
        // it, and the oldest end goes.
        let bottom = Some(key_of(l.last().unwrap()));
        let last = l.last().unwrap().id;
        l.append(span(last, 3 * cap), false, bottom);
        assert!(!l.newer_left && l.older_left);
        assert_eq!(l.last().unwrap().id, 4 * cap);
        assert_eq!(l.len(), l.capacity());
        assert_eq!(l.waiting_aside(), 0);
        let v = ids(&l);
        assert!(v.windows(2).all(|w| w[0] < w[1]), "in order, no repeats");
        assert_eq!(v[v.len() - 2], 3 * cap - 1, "no line skipped at the join");
    }

    #[test]
    fn a_tail_fill_keeps_the_older_lines_it_leaves_no_gap_behind() {
        let mut l = LogList::new(0);
        // A `:goto` a day back reached the newest line; the engine's first fill (its range
        // holds nothing) comes after it: the day-old lines stay.
        l.replace(vec![line(10, 1), line(20, 2)], true, false);
        l.tail_reset(Vec::new(), false);
        assert_eq!(ids(&l), vec![1, 2]);
        // A fill overlapping the held lines: each line once, in order, none counted late.
        l.tail_reset(vec![line(20, 2), line(30, 3)], false);
        assert_eq!(ids(&l), vec![1, 2, 3]);
        assert_eq!(l.late(), 0);
        // After a gap the fill starts the window again; older pages fill in behind it.
        l.older_left = false;
        l.tail_reset(vec![line(40, 4)], true);
        assert_eq!(ids(&l), vec![4]);
        assert!(l.older_left);
        // So does a full fill: lines may be missing between it and the held ones.
        let cap = l.capacity() as i64;
        l.replace(vec![line(0, 0)], false, false);
        l.tail_reset((1..=cap).map(|i| line(i, i)).collect(), false);
        assert_eq!(l.first().unwrap().id, 1);
        assert!(l.older_left);
    }

    #[test]
    fn tail_lines_are_placed_by_time_and_never_twice() {
        let mut l = LogList::new(0);
        l.replace(vec![line(10, 1), line(20, 2)], false, false);
        l.push_tail(vec![line(15, 3), line(20, 2), line(30, 4)], None);
        assert_eq!(ids(&l), vec![1, 3, 2, 4]);
        assert_eq!(l.late(), 1);
        // With older lines not loaded, a late line before the window is left to the pages.
        l.older_left = true;
        l.push_tail(vec![line(5, 5)], None);
        assert_eq!(ids(&l), vec![1, 3, 2, 4]);
    }
}
