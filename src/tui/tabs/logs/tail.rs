//! The live tail view: the engine it starts and the events it drains straight from the engine's
//! channel, the range and pacing it follows, and its list's draw.

use super::*;

/// The running tail: its handle, its events, and (under the event loop) the waker that calls
/// this tab back when lines come after a quiet spell.
pub(super) struct Engine {
    pub(super) handle: TailHandle,
    pub(super) events: mpsc::Receiver<TailEvent>,
    pub(super) waker: Option<crate::tail::Waker>,
    /// The window last given to the engine (a change refills it).
    pub(super) range: Option<std::time::Duration>,
}

/// At most this many engine events are taken per drain (the channel's own size), so a flood
/// leaves the loop free for keys between two drains.
pub(super) const DRAIN_MAX: usize = 256;

/// The newest line is at most this old for the list to say LIVE.
pub(super) const LIVE_WITHIN: chrono::Duration = chrono::Duration::minutes(1);

/// Lines per second arriving from the tail, over windows of half a second: above
/// `STREAMING_LINES_PER_SEC` the lines scroll by faster than anyone reads them, and the shell
/// draws the data at `tui::FRAME_WHILE_STREAMING` instead of at every read.
#[derive(Debug, Default)]
pub(super) struct StreamRate {
    window_start: Option<std::time::Instant>,
    in_window: u64,
    per_sec: f64,
}

/// More lines a second than the eye follows (a reader manages a few).
pub(super) const STREAMING_LINES_PER_SEC: f64 = 100.0;

pub(super) const RATE_WINDOW: Duration = Duration::from_millis(500);

impl StreamRate {
    pub(super) fn add(&mut self, lines: u64, now: std::time::Instant) {
        let start = *self.window_start.get_or_insert(now);
        self.in_window += lines;
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= RATE_WINDOW {
            self.per_sec = self.in_window as f64 / elapsed.as_secs_f64();
            self.window_start = Some(now);
            self.in_window = 0;
        }
    }

    /// True while the last full window was fast and lines still came within two windows.
    pub(super) fn streaming(&self, now: std::time::Instant) -> bool {
        self.per_sec >= STREAMING_LINES_PER_SEC
            && self
                .window_start
                .is_some_and(|s| now.saturating_duration_since(s) < 2 * RATE_WINDOW)
    }
}

impl LogsTab {
    /// Keeps the list inside the range as it slides (the engine delivers only lines inside
    /// it; lines already held grow older).
    pub(super) fn prune(&mut self, ctx: &TabCtx) {
        let (r, _) = self.history_range(ctx.now, ctx.range);
        self.list.drop_before(r.from);
    }

    /// A new shared range reads the list again (and gives the engine the new window).
    pub(super) fn follow_range(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        if self.range == Some(ctx.range) {
            self.prune(ctx);
            return Vec::new();
        }
        let first = self.range.is_none();
        self.range = Some(ctx.range);
        self.goto_from = None;
        if first {
            // The engine was just started on this range; the first load comes from
            // `want_pages`.
            return Vec::new();
        }
        self.reload(ctx)
    }

    pub(super) fn start_engine(&mut self, ctx: &TabCtx) {
        if self.engine.is_some() {
            return;
        }
        let mut opts = TailOptions::new(self.capacity);
        opts.filter = Some(self.filter.clone());
        opts.query_timeout = ctx.db.query_timeout;
        opts.floor_margin = self.floor_margin;
        let (r, _) = self.history_range(ctx.now, ctx.range);
        opts.range = (ctx.now - r.from).to_std().ok();
        let opts_range = opts.range;
        opts.waker = ctx.events.cloned().map(|tx| {
            crate::tail::Waker::new(move || {
                let _ = tx.send(crate::tui::msg::Event::Wake(Tab::Logs));
            })
        });
        let waker = opts.waker.clone();
        let (handle, rx) = crate::tail::spawn(ctx.db, opts);
        self.engine = Some(Engine {
            handle,
            events: rx,
            waker,
            range: opts_range,
        });
        // A new engine starts under the tab's filter and numbers its commands from 1: nothing
        // it sends is stale, and a number awaited from an earlier engine would never come.
        self.tail_awaiting = None;
    }

    /// Takes the events the engine has queued and applies them. When the channel is empty
    /// the tab tells the waker it stopped reading, so the engine's next event wakes it
    /// (`Event::Wake`); after `DRAIN_MAX` events it wakes itself instead, to go on after any
    /// keys that are waiting.
    pub(super) fn drain(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        let Some(engine) = &mut self.engine else {
            return Vec::new();
        };
        if let Some(w) = &engine.waker {
            w.busy();
        }
        let mut events = Vec::new();
        let mut more = false;
        loop {
            while events.len() < DRAIN_MAX {
                match engine.events.try_recv() {
                    Ok(ev) => events.push(ev),
                    Err(_) => break,
                }
            }
            if events.len() >= DRAIN_MAX {
                more = true;
                break;
            }
            let Some(w) = &engine.waker else { break };
            // Idle first, then one more look, so no event falls in between (at worst a spare
            // wake-up finds the channel empty).
            w.went_idle();
            match engine.events.try_recv() {
                Ok(ev) => {
                    w.busy();
                    events.push(ev);
                }
                Err(_) => break,
            }
        }
        if more {
            if let Some(tx) = ctx.events {
                let _ = tx.send(crate::tui::msg::Event::Wake(Tab::Logs));
            }
        }
        if events.is_empty() {
            return Vec::new();
        }
        let arrived = events.iter().any(|e| match e {
            TailEvent::Lines(l) | TailEvent::Reset(l) => !l.is_empty(),
            _ => false,
        });
        self.apply_events(events);
        self.prune(ctx);
        // Following moves the selection: the pane's line changes too.
        let mut fx = self.want_detail(ctx);
        // A gap (`Skipped`) or a full fill leaves older lines to load behind the window.
        fx.extend(self.want_pages(ctx));
        // The counts follow at the next tick (`LogsTab::tick`, within a second), not here:
        // asked here, the per-level and in-range counts (two queries over the range) ran at
        // the very moment a line arrived after a quiet spell, and their work (the server's
        // scans, this process's query tasks) competed with drawing that line on a small
        // machine: ~3 ms later on screen in paired samples (`cargo bench --bench tui`).
        self.uncounted |= arrived;
        fx
    }

    pub(super) fn apply_events(&mut self, events: Vec<TailEvent>) {
        for ev in events {
            let cursor = if self.follow { None } else { self.selected };
            match (&ev, self.tail_awaiting) {
                (TailEvent::Applied(n), Some(want)) if *n >= want => {
                    self.tail_awaiting = None;
                    continue;
                }
                (TailEvent::Applied(_), _) => continue,
                (TailEvent::Lines(_) | TailEvent::Reset(_) | TailEvent::Skipped(_), Some(_)) => {
                    continue
                }
                _ => {}
            }
            match ev {
                TailEvent::Reset(lines) => {
                    self.list.tail_reset(lines, false);
                    // The cursor stays on its line while the list holds it (a `:goto` made
                    // just before the engine's first fill keeps its place).
                    if self.selected.is_some_and(|k| !self.list.holds(k)) {
                        self.selected = None;
                        self.follow = true;
                    }
                    self.tail_error = None;
                }
                TailEvent::Lines(lines) => {
                    self.rate.add(lines.len() as u64, std::time::Instant::now());
                    self.list.push_tail(lines, cursor);
                    self.tail_error = None;
                }
                TailEvent::Skipped(n) => {
                    // The lines passed over leave a gap: the window restarts at the lines
                    // that follow, and older pages fill in behind them.
                    self.skipped += n;
                    self.list.tail_reset(Vec::new(), true);
                }
                // A count queued before a resume is stale.
                TailEvent::Waiting(n) if self.paused => self.waiting = Some(n),
                TailEvent::Waiting(_) => {}
                TailEvent::Listening { .. } => self.tail_error = None,
                TailEvent::Error(e) => self.tail_error = Some(e),
                TailEvent::Applied(_) => {}
            }
        }
    }

    pub(super) fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        self.waiting = None;
        if let Some(Engine { handle: h, .. }) = &self.engine {
            if paused {
                h.pause();
            } else {
                h.resume();
            }
        }
        if !paused {
            self.follow = true;
        }
    }

    pub(super) fn draw_tail(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let area = if self.volume.shown {
            let [h, rest] =
                Layout::vertical([Constraint::Length(self.volume.height()), Constraint::Min(1)])
                    .areas(area);
            self.volume.draw(f, h, ctx);
            rest
        } else {
            area
        };
        let (list, detail) = if self.detail.shown {
            let [a, b] = Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)])
                .areas(area);
            (a, Some(b))
        } else {
            (area, None)
        };
        if self.list.is_empty() {
            let msg = if self.engine.is_none() {
                "starting the live tail…"
            } else {
                "no lines yet (waiting for new log lines)"
            };
            draw_note(f, list, msg, Role::Dim, theme);
        } else {
            self.draw_lines(f, list, ctx);
        }
        if let Some(area) = detail {
            self.detail.draw(f, area, self.selected_line(), ctx);
        }
    }

    pub(super) fn draw_lines(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let width = area.width as usize;
        let height = area.height as usize;
        if height == 0 || width == 0 {
            return;
        }
        let sel = self.selected_index().unwrap_or(0);
        let time_fmt = self.time_format(ctx);
        let time_w = ctx.fmt_time(ctx.now, time_fmt).chars().count() + 1;
        let show_trace = width >= 70;
        let fixed = time_w + 6 + 11 + if show_trace { 11 } else { 0 };
        let msg_width = width.saturating_sub(fixed).max(10);
        // Rows of one log line (more than one when wrapping).
        let render = |i: usize, l: &LogLine| -> Vec<Line<'static>> {
            let selected = i == sel;
            let base = row_style(selected, theme);
            let msg: String = safe(&l.message).chars().skip(self.hscroll).collect();
            let chunks: Vec<String> = if self.wrap {
                let chars: Vec<char> = msg.chars().collect();
                if chars.is_empty() {
                    vec![String::new()]
                } else {
                    chars
                        .chunks(msg_width)
                        .map(|c| c.iter().collect())
                        .collect()
                }
            } else {
                vec![truncate(&msg, msg_width)]
            };
            let mut out = Vec::new();
            for (k, chunk) in chunks.into_iter().enumerate() {
                let mut spans = if k == 0 {
                    vec![
                        Span::styled(format!("{:<time_w$}", ctx.fmt_time(l.ts, time_fmt)), base),
                        Span::styled(
                            format!("{:<6}", l.level.name()),
                            if selected {
                                base
                            } else {
                                theme.style(level_role(l.level))
                            },
                        ),
                        Span::styled(format!("{:<11}", truncate(&safe(&l.service), 10)), base),
                    ]
                } else {
                    vec![Span::styled(" ".repeat(time_w + 17), base)]
                };
                spans.push(Span::styled(format!("{chunk:<msg_width$}"), base));
                if show_trace && k == 0 {
                    let t = l.trace_id.as_deref().map(safe).unwrap_or_default();
                    spans.push(Span::styled(
                        format!(" {}", truncate(&t, 10)),
                        if selected {
                            base
                        } else {
                            theme.style(Role::Dim)
                        },
                    ));
                }
                out.push(Line::from(spans));
            }
            out
        };
        // Walk back from the selection (kept at the bottom when following) to fill the area.
        let mut rows: Vec<Line<'static>> = Vec::new();
        let mut i = sel as i64;
        while i >= 0 && rows.len() < height {
            if let Some(l) = self.list.get(i as usize) {
                let mut r = render(i as usize, l);
                r.extend(rows);
                rows = r;
            }
            i -= 1;
        }
        // Room left below the selection (scrolled up): show the following lines too.
        let mut j = sel + 1;
        while rows.len() < height && j < self.list.len() {
            if let Some(l) = self.list.get(j) {
                rows.extend(render(j, l));
            }
            j += 1;
        }
        let skip = rows.len().saturating_sub(height);
        // One line per row, written straight into the frame: a Paragraph would run its
        // line-breaking machinery over every row of every frame while the tail streams.
        let buf = f.buffer_mut();
        for (y, row) in (area.y..).zip(rows.iter().skip(skip).take(height)) {
            put_line(buf, area.x, y, row, area.width);
        }
    }

    /// The time column: the time of day while every line and the whole range are today (in
    /// the chosen clock); the date too as soon as the range spans more than one calendar day
    /// or a line is from another day; the year when a line is from another year. The buffer
    /// is in time order, so its first and last lines bound every line's day.
    pub(super) fn time_format(&self, ctx: &DrawCtx) -> &'static str {
        let day = |t| ctx.fmt_time(t, "%Y-%m-%d");
        let today = day(ctx.now);
        let start = ctx.now - ctx.range.duration();
        let ends = [self.list.first(), self.list.last()];
        let lines_days: Vec<String> = ends.iter().flatten().map(|l| day(l.ts)).collect();
        let year = |d: &str| d.split('-').next().unwrap_or("").to_string();
        if lines_days.iter().any(|d| year(d) != year(&today)) {
            "%Y-%m-%d %H:%M:%S%.3f"
        } else if day(start) != today || lines_days.iter().any(|d| *d != today) {
            "%m-%d %H:%M:%S%.3f"
        } else {
            "%H:%M:%S%.3f"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn frames_are_paced_only_while_lines_stream_faster_than_anyone_reads() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut r = StreamRate::default();
        // 10 lines a second: slow enough to read, every read is drawn at once.
        for k in 0..20 {
            r.add(1, at(k * 100));
        }
        assert!(!r.streaming(at(1_950)));
        // 10,000 lines a second in reads of 500 every 50 ms: paced.
        for k in 0..20 {
            r.add(500, at(2_000 + k * 50));
        }
        assert!(r.streaming(at(2_960)));
        // The stream stops: within two windows frames are drawn at once again.
        assert!(!r.streaming(at(2_950 + 2 * RATE_WINDOW.as_millis() as u64)));
    }

    fn line(sec: i64, id: i64, msg: &str) -> LogLine {
        let ts = chrono::DateTime::from_timestamp(1_800_000_000 + sec, 0).unwrap();
        LogLine::partial(
            id,
            0,
            ts,
            crate::model::Level::Info,
            "api".into(),
            msg.into(),
            None,
        )
    }

    #[test]
    fn lines_read_under_the_old_filter_are_dropped_until_the_new_one_is_in_force() {
        let mut tab = LogsTab::new(&crate::config::Config::default());
        tab.apply_events(vec![TailEvent::Reset(vec![line(0, 1, "fp:a first")])]);
        // The filter changes (command 2 after a range change numbered 1): lines the engine
        // read under the old filter were still queued, then it took the commands.
        tab.list.clear();
        tab.tail_awaiting = Some(2);
        tab.apply_events(vec![
            TailEvent::Lines(vec![line(5, 2, "fp:b queued before the change")]),
            TailEvent::Applied(1),
            TailEvent::Lines(vec![line(6, 3, "fp:b read under command 1")]),
            TailEvent::Applied(2),
            TailEvent::Reset(vec![line(1, 4, "fp:a matching")]),
            TailEvent::Lines(vec![line(7, 5, "fp:a new")]),
        ]);
        let ids: Vec<i64> = tab.list.iter().map(|l| l.id).collect();
        assert_eq!(ids, vec![4, 5]);
        assert_eq!(tab.list.late(), 0);
        assert_eq!(tab.tail_awaiting, None);
    }

    #[test]
    fn the_waiting_count_shows_once_the_engine_has_taken_the_pause() {
        let mut tab = LogsTab::new(&crate::config::Config::default());
        tab.set_paused(true);
        assert_eq!(tab.waiting, None, "no count until the engine counts");
        // A line the engine was reading when the pause came is still delivered; its first
        // count acknowledges the pause.
        tab.apply_events(vec![
            TailEvent::Lines(vec![line(1, 1, "read before the pause")]),
            TailEvent::Waiting(0),
        ]);
        assert_eq!(tab.waiting, Some(0));
        tab.apply_events(vec![TailEvent::Waiting(3)]);
        assert_eq!(tab.waiting, Some(3));
        // After resuming, a count still queued from the pause is stale.
        tab.set_paused(false);
        tab.apply_events(vec![TailEvent::Waiting(3)]);
        assert_eq!(tab.waiting, None);
    }
}
