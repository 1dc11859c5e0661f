//! The list over all of history: which window of time it reads (the shared range, or the
//! filter's own `since:`/`until:`, or back to a `:goto` instant), the loads that fill it
//! (`query::history` pages older and newer than its ends, the newest or oldest page, the lines
//! around an instant) and the header's count of what the range and filter hold.

use super::*;
use crate::query::history::{self as hq, Direction, HistoryKey, HistoryRange, Loaded};

/// Counting stops being exact above this many lines (then the planner's estimate, `~N`).
const COUNT_CAP: i64 = 100_000;
/// ... or when counting takes longer than this.
const COUNT_BUDGET: Duration = Duration::from_millis(800);

/// How a load changes the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LoadKind {
    /// Replaces the window with the newest lines of the range (start, new filter, `G`).
    Newest,
    /// Replaces the window with the oldest lines of the range (`g` / Home).
    Oldest,
    /// Replaces the window with the lines around an instant (`:goto`, the histogram's Enter).
    Around,
    /// Adds a page before the window's first line.
    Older,
    /// Adds a page after the window's last line.
    Newer,
}

/// A query's error as one line, in the filter's words when the filter caused it (a regular
/// expression over its time budget, a pattern the server refuses).
pub(super) fn explained(filter: &Filter, e: sqlx::Error) -> anyhow::Error {
    match filter::explain_error(filter, &e) {
        Some(why) => anyhow::anyhow!(why),
        None => e.into(),
    }
}

/// An open range reaches now and goes on: its end is far enough never to cut a line.
fn open_end(now: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    now + chrono::Duration::days(36_500)
}

impl LogsTab {
    /// The window of time the list reads, and whether it reaches now (then the tail joins).
    /// The filter's `since:`/`until:` choose it when given (`since:4d until:2d` reads those
    /// two days whatever the shared range); `until:` alone ends the shared range's length
    /// there. A `:goto` before the start moves the start back to that instant's day.
    pub(super) fn history_range(
        &self,
        now: chrono::DateTime<Utc>,
        range: TimeRange,
    ) -> (HistoryRange, bool) {
        let (since, until) = self.filter.time_bounds(now);
        let end = until.filter(|u| *u <= now);
        let from = since.unwrap_or_else(|| end.unwrap_or(now) - range.duration());
        let from = match self.goto_from {
            Some(g) => from.min(g),
            None => from,
        };
        let open = end.is_none();
        (
            HistoryRange {
                from,
                until: end.unwrap_or_else(|| open_end(now)),
            },
            open,
        )
    }

    /// What the header says the list covers: the shared range's name, `window` when the
    /// filter's `since:`/`until:` set it (the filter is shown too), or the bounds `:goto` chose.
    pub(super) fn range_label(&self, ctx: &DrawCtx) -> String {
        let (since, until) = self.filter.time_bounds(ctx.now);
        if since.is_none() && until.is_none() && self.goto_from.is_none() {
            return ctx.range.label().to_string();
        }
        if since.is_some() || until.is_some() {
            // The filter, shown beside the counts, already says the window; at 80 columns
            // its dates here would push the filter itself off the line.
            return "window".to_string();
        }
        let (r, open) = self.history_range(ctx.now, ctx.range);
        let t = |t| ctx.fmt_time(t, "%m-%d %H:%M");
        if open {
            format!("since {}", t(r.from))
        } else {
            format!("{} – {}", t(r.from), t(r.until))
        }
    }

    /// Empties the list and reads the range again from its newest line: a new filter, a new
    /// range. The engine follows the same window, so the tail joins it.
    pub(super) fn reload(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        self.list.clear();
        self.selected = None;
        self.follow = true;
        self.detail.forget();
        let (r, open) = self.history_range(ctx.now, ctx.range);
        if let Some(engine) = &mut self.engine {
            // Lines the engine read under the old filter may still be queued: they are dropped
            // until it says the new one is in force (`TailEvent::Applied`).
            let mut issued = engine.handle.set_filter(Some(self.filter.clone()));
            let window = (ctx.now - r.from).to_std().ok();
            // Whole seconds: a `since:` instant gives a window that grows with the clock.
            let secs = |w: Option<std::time::Duration>| w.map(|w| w.as_secs());
            if open && secs(window) != secs(engine.range) {
                issued = engine.handle.set_range(window);
                engine.range = window;
            }
            self.tail_awaiting = Some(issued);
        }
        let mut fx = self.stats_query(ctx);
        fx.extend(self.load(LoadKind::Newest, ctx));
        fx.extend(self.volume_query(ctx));
        fx
    }

    /// Asks for a load of `kind`; a load that replaces the window starts a new epoch, so
    /// pages asked for the old window are dropped when they come.
    pub(super) fn load(&mut self, kind: LoadKind, ctx: &TabCtx) -> Vec<Effect> {
        self.load_at(kind, None, ctx)
    }

    pub(super) fn load_at(
        &mut self,
        kind: LoadKind,
        at: Option<chrono::DateTime<Utc>>,
        ctx: &TabCtx,
    ) -> Vec<Effect> {
        let (range, _) = self.history_range(ctx.now, ctx.range);
        let key = |l: Option<&LogLine>| l.map(HistoryKey::from);
        let (dir, from_key) = match kind {
            LoadKind::Newest | LoadKind::Around => (Direction::Older, None),
            LoadKind::Oldest => (Direction::Newer, None),
            LoadKind::Older => (Direction::Older, key(self.list.first())),
            LoadKind::Newer => (Direction::Newer, key(self.list.last())),
        };
        match kind {
            LoadKind::Older => self.list.asking_older = true,
            LoadKind::Newer => self.list.asking_newer = true,
            _ => self.list.renew(),
        }
        let tag = self.list.epoch;
        let pool = ctx.db.read.clone();
        let f = self.filter.clone();
        let (panel, wrap): (&'static str, fn(_) -> LogsData) = match kind {
            LoadKind::Newest => ("load", LogsData::Newest),
            LoadKind::Oldest => ("load", LogsData::Oldest),
            LoadKind::Around => ("load", LogsData::Around),
            LoadKind::Older => ("older", LogsData::Older),
            LoadKind::Newer => ("newer", LogsData::Newer),
        };
        vec![Effect::Query(QueryRequest::new(
            panel,
            async move {
                let l = match at {
                    Some(at) => hq::load_around(&pool, range, &f, at, (PAGE / 2, PAGE), tag).await,
                    None => hq::load_page(&pool, range, &f, dir, from_key, PAGE, tag).await,
                };
                l.map_err(|e| explained(&f, e))
            },
            wrap,
        ))]
    }

    /// The header's count over the list's window.
    pub(super) fn count_query(&mut self, ctx: &TabCtx) -> Effect {
        let (range, _) = self.history_range(ctx.now, ctx.range);
        let pool = ctx.db.read.clone();
        let f = self.filter.clone();
        self.count.loading = true;
        Effect::Query(QueryRequest::new(
            "count",
            async move {
                hq::count(&pool, range, &f, COUNT_CAP, COUNT_BUDGET)
                    .await
                    .map_err(|e| explained(&f, e))
            },
            LogsData::Count,
        ))
    }

    /// Asks for the pages the cursor is about to need: the first load of an empty window,
    /// and a page beyond an end the cursor has come within `PREFETCH` lines of.
    pub(super) fn want_pages(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        if self.view != View::Tail || self.list.replacing {
            return Vec::new();
        }
        if self.list.is_empty() {
            if self.list.older_left {
                return self.load(LoadKind::Newest, ctx);
            }
            return Vec::new();
        }
        let idx = self.selected_index().unwrap_or(0);
        let mut fx = Vec::new();
        if idx < PREFETCH && self.list.older_left && !self.list.asking_older {
            fx.extend(self.load(LoadKind::Older, ctx));
        }
        let below = self.list.len().saturating_sub(1 + idx);
        if below < PREFETCH && self.list.newer_left && !self.list.asking_newer {
            fx.extend(self.load(LoadKind::Newer, ctx));
        }
        fx
    }

    /// `:goto TIME`: the lines around that instant, the cursor on the first at or after it.
    pub(super) fn goto(&mut self, text: &str, ctx: &TabCtx) -> Vec<Effect> {
        let at = match crate::model::parse_goto(text, ctx.now) {
            Ok(t) => t,
            Err(e) => {
                self.message = Some((e, Role::Error));
                return Vec::new();
            }
        };
        self.goto_instant(at, ctx)
    }

    pub(super) fn goto_instant(&mut self, at: chrono::DateTime<Utc>, ctx: &TabCtx) -> Vec<Effect> {
        let (r, open) = self.history_range(ctx.now, ctx.range);
        if !open && at >= r.until {
            self.message = Some((
                "that instant is after the filter's until: (change the filter)".into(),
                Role::Error,
            ));
            return Vec::new();
        }
        if at < r.from {
            // Back to that instant's day, so paging on from it has room.
            let day = at.date_naive().and_hms_opt(0, 0, 0).map(|d| d.and_utc());
            self.goto_from = Some(day.unwrap_or(at));
        }
        if self.view == View::Trace {
            self.view = View::Tail;
        }
        self.follow = false;
        self.message = Some((
            format!(
                "at {}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            Role::Dim,
        ));
        let mut fx = self.load_at(LoadKind::Around, Some(at), ctx);
        fx.extend(self.stats_query(ctx));
        fx
    }

    /// A load came back: it joins the window if it is still wanted.
    pub(super) fn loaded(
        &mut self,
        kind: LoadKind,
        r: crate::tui::msg::Res<Loaded>,
        ctx: &TabCtx,
    ) -> Vec<Effect> {
        let l = match r {
            Ok(l) => l,
            Err(e) => {
                match kind {
                    LoadKind::Older => self.list.asking_older = false,
                    LoadKind::Newer => self.list.asking_newer = false,
                    _ => {
                        self.list.replacing = false;
                        // Nothing more to try for this window until asked again.
                        self.list.older_left = false;
                    }
                }
                self.message = Some((format!("reading history: {e}"), Role::Error));
                return Vec::new();
            }
        };
        if l.tag != self.list.epoch {
            return Vec::new();
        }
        let cursor = if self.follow { None } else { self.selected };
        match kind {
            LoadKind::Older => self.list.prepend(l.lines, l.older_left, cursor),
            LoadKind::Newer => self.list.append(l.lines, l.newer_left, cursor),
            LoadKind::Newest => {
                self.list.replace(l.lines, l.older_left, false);
            }
            LoadKind::Oldest => {
                self.list.replace(l.lines, false, l.newer_left);
                self.follow = false;
                self.select_index(0);
            }
            LoadKind::Around => {
                let at = l.cursor.and_then(|i| l.lines.get(i)).map(key_of);
                // A short page after the instant reaches the newest line: the tail joins
                // (a closed range simply ends there).
                self.list.replace(l.lines, l.older_left, l.newer_left);
                self.follow = false;
                match at {
                    Some(k) => self.selected = Some(k),
                    None => {
                        let last = self.list.len().saturating_sub(1);
                        self.select_index(last);
                    }
                }
            }
        }
        self.want_pages(ctx)
    }
}
