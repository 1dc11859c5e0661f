//! The volume histogram above the list (`i`, as lnav's histogram view): lines per time bucket
//! over the list's window, stacked by level, the bucket size following the window
//! (`histogram::bucket_for`). Levels are told apart by glyph as well as colour, so a burst of
//! errors reads on a terminal without colour: `█` errors (and fatal), `▒` warnings, `░` the
//! rest. While it is shown, left/right move a cursor over the buckets and Enter moves the list
//! to the cursor's bucket (`history::around` its start).

use super::*;
use crate::query::histogram::{self as hg, VolumeBucket};

/// Buckets across the window: fits 80 columns beside nothing else.
pub(super) const BUCKETS: usize = 60;
/// Rows of bars.
const BAR_ROWS: usize = 5;

/// The histogram's own state: shown or not, its buckets, its cursor.
#[derive(Default)]
pub struct VolumeView {
    pub shown: bool,
    pub data: Panel<Vec<VolumeBucket>>,
    /// The bucket size the data was asked with.
    bucket: Option<chrono::Duration>,
    /// The cursor's bucket (None: the newest).
    cursor: Option<usize>,
    refresher: Option<Refresher>,
}

/// Glyphs per stacked part, bottom up: errors (and fatal), warnings, the rest.
const GLYPHS: [char; 3] = ['█', '▒', '░'];

/// Errors+fatal, warnings, the rest, of one bucket.
fn parts(b: &VolumeBucket) -> [i64; 3] {
    let l = &b.by_level;
    [l[4] + l[5], l[3], l[0] + l[1] + l[2]]
}

/// One bucket's column, bottom row first: each part gets cells in proportion to its count
/// against the tallest bucket, and at least one cell when it has any line, so one error in a
/// flood of info lines still shows.
fn column(b: &VolumeBucket, max: i64) -> Vec<char> {
    let total = b.total();
    if total == 0 || max == 0 {
        return vec![' '; BAR_ROWS];
    }
    let height = ((total as f64 / max as f64) * BAR_ROWS as f64).ceil() as usize;
    let height = height.clamp(1, BAR_ROWS);
    let p = parts(b);
    let mut cells = [0usize; 3];
    for (i, n) in p.iter().enumerate() {
        if *n > 0 {
            cells[i] = ((*n as f64 / total as f64) * height as f64)
                .round()
                .max(1.0) as usize;
        }
    }
    // Trim the largest part until the column fits its height (the minimum of one cell per
    // present part can overshoot), then give any room left to the largest part.
    while cells.iter().sum::<usize>() > height {
        if let Some(i) = (0..3).filter(|i| cells[*i] > 1).max_by_key(|i| cells[*i]) {
            cells[i] -= 1;
        } else {
            break;
        }
    }
    let mut out = Vec::with_capacity(BAR_ROWS);
    for (i, c) in cells.iter().enumerate() {
        out.extend(std::iter::repeat_n(GLYPHS[i], *c));
    }
    out.truncate(BAR_ROWS);
    out.resize(BAR_ROWS, ' ');
    out
}

impl VolumeView {
    /// The cursor's bucket index in `n` buckets.
    fn at(&self, n: usize) -> usize {
        self.cursor
            .unwrap_or(n.saturating_sub(1))
            .min(n.saturating_sub(1))
    }

    /// The cursor's bucket.
    pub fn selected(&self) -> Option<&VolumeBucket> {
        let d = self.data.data.as_ref()?;
        d.get(self.at(d.len()))
    }

    pub fn move_cursor(&mut self, by: i64) {
        let n = self.data.data.as_ref().map_or(0, Vec::len);
        if n == 0 {
            return;
        }
        let at = (self.at(n) as i64 + by).clamp(0, n as i64 - 1) as usize;
        self.cursor = Some(at);
    }

    /// Rows the histogram takes above the list.
    pub fn height(&self) -> u16 {
        if self.shown {
            BAR_ROWS as u16 + 2
        } else {
            0
        }
    }

    pub fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let Some(buckets) = &self.data.data else {
            let (t, r) = self
                .data
                .placeholder()
                .unwrap_or((String::new(), Role::Dim));
            draw_note(f, area, &t, r, theme);
            return;
        };
        let max = buckets.iter().map(VolumeBucket::total).max().unwrap_or(0);
        let cur = self.at(buckets.len());
        let cols: Vec<Vec<char>> = buckets.iter().map(|b| column(b, max)).collect();
        let roles = [Role::Error, Role::Warn, Role::Info];
        let mut lines: Vec<Line> = Vec::new();
        // Top row first.
        for row in (0..BAR_ROWS).rev() {
            let mut spans = Vec::with_capacity(cols.len());
            for (i, c) in cols.iter().enumerate() {
                let g = c[row];
                let role = GLYPHS
                    .iter()
                    .position(|x| *x == g)
                    .map_or(Role::Dim, |p| roles[p]);
                let style = if i == cur && g == ' ' {
                    theme.style(Role::Dim)
                } else {
                    theme.style(role)
                };
                spans.push(Span::styled(
                    if i == cur && g == ' ' {
                        "·".to_string()
                    } else {
                        g.to_string()
                    },
                    style,
                ));
            }
            if row == BAR_ROWS - 1 {
                spans.push(Span::styled(
                    format!(" max {}", fmt_count(max as f64)),
                    theme.style(Role::Dim),
                ));
            }
            lines.push(Line::from(spans));
        }
        // The cursor's mark, then what its bucket holds.
        let mut axis = " ".repeat(cur);
        axis.push('^');
        lines.push(Line::from(Span::styled(axis, theme.style(Role::Accent))));
        if let Some(b) = buckets.get(cur) {
            let p = parts(b);
            let size = self.bucket.map(fmt_span).unwrap_or_default();
            lines.push(Line::from(vec![
                Span::styled(
                    format!(
                        "{} +{size}: {} lines · █ E{} ▒ W{} ░ I{}",
                        ctx.fmt_time(b.start, "%m-%d %H:%M:%S"),
                        fmt_count(b.total() as f64),
                        fmt_count(p[0] as f64),
                        fmt_count(p[1] as f64),
                        fmt_count(p[2] as f64),
                    ),
                    theme.style(Role::Text),
                ),
                Span::styled(" (←/→ Enter: go there)", theme.style(Role::Dim)),
            ]));
        }
        crate::tui::widgets::render(f, Paragraph::new(lines), area);
    }
}

/// A bucket size as people write it: 30s, 5m, 1h, 1d.
fn fmt_span(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

impl LogsTab {
    /// The histogram's buckets over the list's window and filter.
    pub(super) fn volume_query(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        if !self.volume.shown {
            return Vec::new();
        }
        let (mut range, open) = self.history_range(ctx.now, ctx.range);
        if open {
            range.until = ctx.now;
        }
        let bucket = hg::bucket_for(range.until - range.from, BUCKETS);
        if self.volume.bucket != Some(bucket) {
            self.volume.cursor = None;
        }
        self.volume.bucket = Some(bucket);
        self.volume
            .refresher
            .get_or_insert_with(|| Refresher::every(10))
            .done(ctx.now);
        self.volume.data.loading = true;
        let pool = ctx.db.read.clone();
        let f = self.filter.clone();
        vec![Effect::Query(QueryRequest::new(
            "volume",
            async move {
                hg::volume(&pool, range, &f, bucket)
                    .await
                    .map_err(|e| history::explained(&f, e))
            },
            LogsData::Volume,
        ))]
    }

    /// Read again every 10 s while shown (lines keep arriving at the newest bucket).
    pub(super) fn volume_due(&self, now: chrono::DateTime<Utc>) -> bool {
        self.volume.shown && self.volume.refresher.as_ref().is_none_or(|r| r.due(now))
    }

    /// `i`: shows or hides the histogram.
    pub(super) fn toggle_volume(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        self.volume.shown = !self.volume.shown;
        self.volume.cursor = None;
        self.volume_query(ctx)
    }

    /// Enter on the histogram: the list at the cursor's bucket.
    pub(super) fn volume_enter(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        let Some(start) = self.volume.selected().map(|b| b.start) else {
            return Vec::new();
        };
        let (r, _) = self.history_range(ctx.now, ctx.range);
        // The first bucket starts on its grid, which may be before the window.
        self.goto_instant(start.max(r.from), ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(levels: [i64; 6]) -> VolumeBucket {
        VolumeBucket {
            start: chrono::DateTime::<Utc>::UNIX_EPOCH,
            by_level: levels,
        }
    }

    #[test]
    fn a_column_stacks_errors_under_warnings_under_the_rest_and_never_hides_one_error() {
        // The tallest bucket fills the column; one error among 999 info lines still shows.
        let c = column(&b([0, 0, 999, 0, 1, 0]), 1000);
        assert_eq!(c.len(), BAR_ROWS);
        assert_eq!(c[0], '█');
        assert!(c[1..].iter().all(|g| *g == '░'));
        let c = column(&b([0, 0, 10, 10, 20, 0]), 40);
        assert_eq!(c.iter().collect::<String>(), "███▒░");
        // An empty bucket is blank; a small one is one cell high.
        assert!(column(&b([0; 6]), 40).iter().all(|g| *g == ' '));
        assert_eq!(column(&b([0, 0, 1, 0, 0, 0]), 1000)[0], '░');
        assert_eq!(column(&b([0, 0, 1, 0, 0, 0]), 1000)[1], ' ');
    }
}
