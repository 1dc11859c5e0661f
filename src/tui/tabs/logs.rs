//! Logs tab: the live tail (follow by default, space pauses with a count of waiting lines, `G`
//! resumes), the filter language on `/` (applied on Enter only; a mistake is shown with its
//! position and the previous filter stays in force; guessed operators get a hint), a detail
//! pane, error/match jumps, the trace waterfall, the error groups and audit trail views, and
//! export.
//!
//! The list is the lines of the filter inside the shell's range, in event-time order (the
//! buffer places late lines by their time), and the header's counts and the export use that
//! same condition (`lq::stats` and `in_range`), so the three describe the same lines.
//!
//! The tail engine (`crate::tail`) runs on its own tasks and queues its events on a bounded
//! channel this tab owns. The tab takes what is queued straight from that channel, inside
//! `update`: when the engine wakes it after it went idle (`Event::Wake`), on every tick and when
//! the operator changes what the tail shows. No query, lock or task stands in between.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::export::{self, Format};
use crate::filter::{self, Filter, FilterError};
use crate::model::Level;
use crate::model::TimeRange;
use crate::query::audit::{self, AuditEvent, AuditQuery, DiffLine, MassDelete};
use crate::query::error_groups::{self, ErrorGroup, GroupQuery, GroupStatus};
use crate::query::logs::{self as lq, LogLine, LogStats};
use crate::query::trace::{self, TraceItem};
use crate::sanitize::sanitize;
use crate::tail::buffer::{key_of, LineKey};
use crate::tail::{self, TailBuffer, TailEvent, TailHandle, TailOptions};
use crate::tui::keymap::Action;
use crate::tui::msg::{Data, Effect, Jump, LogsData, QueryRequest, Tab};
use crate::tui::theme::{Role, Theme};
use crate::tui::view::{Binding, Cursor, DrawCtx, Panel, Refresher, TabCtx, TabView};
use crate::tui::widgets::{
    block, draw_note, fmt_count, fmt_ms, put_line, row_style, spark_text, status_role, truncate,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Tail,
    Trace,
    Groups,
    Audit,
}

/// What the audit view lists.
#[derive(Debug, Clone, PartialEq)]
pub enum AuditMode {
    Trail,
    WhoDeleted(String),
    MassDeletes(i64),
}

/// The running tail: its handle, its events, and (under the event loop) the waker that calls
/// this tab back when lines come after a quiet spell.
struct Engine {
    handle: TailHandle,
    events: mpsc::Receiver<TailEvent>,
    waker: Option<tail::Waker>,
}

/// At most this many engine events are taken per drain (the channel's own size), so a flood
/// leaves the loop free for keys between two drains.
const DRAIN_MAX: usize = 256;

struct Export {
    path: std::path::PathBuf,
    rows: Arc<AtomicU64>,
    done: oneshot::Receiver<Result<u64, String>>,
}

pub struct LogsTab {
    capacity: usize,
    floor_margin: Duration,
    saved: std::collections::BTreeMap<String, String>,
    engine: Option<Engine>,
    pub buffer: TailBuffer,
    pub paused: bool,
    pub waiting: u64,
    pub skipped: u64,
    pub follow: bool,
    /// The selected line by its place in time (`ts`, id): stable while lines scroll out and
    /// while late lines are inserted before it. None: the newest.
    selected: Option<LineKey>,
    /// The range the engine was given (the shell's range; a change refills).
    range: Option<TimeRange>,
    pub wrap: bool,
    hscroll: usize,
    pub detail: bool,
    /// The whole selected line for the detail pane (the tail reads lines `partial`), and the
    /// id last asked for.
    full: Option<LogLine>,
    full_asked: Option<i64>,
    filter_text: String,
    filter: Filter,
    /// The text being typed and why it is refused; the previous filter stays in force.
    pub filter_error: Option<(String, FilterError)>,
    /// What the filter being typed (or applied) likely meant, when it uses syntax the language
    /// lacks (`OR`, `ts>03:00`): see `filter::hint`.
    pub filter_hint: Option<String>,
    pub tail_error: Option<String>,
    pub stats: Panel<LogStats>,
    pub view: View,
    pub trace_id: String,
    pub trace: Panel<Vec<TraceItem>>,
    trace_cursor: Cursor,
    pub groups: Panel<Vec<ErrorGroup>>,
    group_cursor: Cursor,
    pub audit_mode: AuditMode,
    pub audit: Panel<Vec<AuditEvent>>,
    pub mass: Panel<Vec<MassDelete>>,
    audit_cursor: Cursor,
    pub message: Option<(String, Role)>,
    export: Option<Export>,
    refresher: Refresher,
    /// While lines arrive the counts are read again at most this often, so the header keeps
    /// up with the list (10 s of lines unaccounted for would contradict it).
    recount: Refresher,
    /// Lines arrived since the counts were last asked for.
    uncounted: bool,
    /// Lines per second arriving from the tail, to pace frames while they stream.
    rate: StreamRate,
}

impl LogsTab {
    pub fn new(cfg: &Config) -> LogsTab {
        LogsTab {
            capacity: cfg.ui.tail_buffer.max(100),
            floor_margin: Duration::from_secs(u64::from(cfg.logs.tail_floor_hours) * 3600),
            saved: cfg.logs.saved_filters.clone(),
            engine: None,
            buffer: TailBuffer::new(cfg.ui.tail_buffer.max(100)),
            paused: false,
            waiting: 0,
            skipped: 0,
            follow: true,
            selected: None,
            range: None,
            wrap: false,
            hscroll: 0,
            detail: false,
            full: None,
            full_asked: None,
            filter_text: String::new(),
            filter: Filter::default(),
            filter_error: None,
            filter_hint: None,
            tail_error: None,
            stats: Panel::default(),
            view: View::Tail,
            trace_id: String::new(),
            trace: Panel::default(),
            trace_cursor: Cursor::default(),
            groups: Panel::default(),
            group_cursor: Cursor::default(),
            audit_mode: AuditMode::Trail,
            audit: Panel::default(),
            mass: Panel::default(),
            audit_cursor: Cursor::default(),
            message: None,
            export: None,
            refresher: Refresher::every(10),
            recount: Refresher::every(2),
            uncounted: false,
            rate: StreamRate::default(),
        }
    }

    /// Index in the buffer of the selected line.
    pub fn selected_index(&self) -> Option<usize> {
        if self.buffer.is_empty() {
            return None;
        }
        let last = self.buffer.len() - 1;
        match self.selected {
            Some(k) if !self.follow => Some(self.buffer.position(k).min(last)),
            _ => Some(last),
        }
    }

    pub fn selected_line(&self) -> Option<&LogLine> {
        self.selected_index().and_then(|i| self.buffer.get(i))
    }

    /// The selected line as the detail pane shows it: whole once read, else as the tail read
    /// it (`partial`).
    fn detail_line(&self) -> Option<&LogLine> {
        let line = self.selected_line()?;
        match &self.full {
            Some(full) if full.id == line.id => Some(full),
            _ => Some(line),
        }
    }

    /// Reads the whole selected line when the detail pane shows a line the tail read partly.
    /// While following a stream with the pane open this asks once per new selection; the
    /// runner keeps one read in flight and the newest request.
    fn want_detail(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        if !self.detail || self.view != View::Tail {
            return Vec::new();
        }
        let Some(line) = self.selected_line().filter(|l| l.partial) else {
            return Vec::new();
        };
        let id = line.id;
        if self.full.as_ref().is_some_and(|f| f.id == id) || self.full_asked == Some(id) {
            return Vec::new();
        }
        self.full_asked = Some(id);
        let pool = ctx.db.read.clone();
        vec![Effect::Query(QueryRequest::new(
            "detail",
            async move { Ok(lq::line(&pool, id).await?) },
            LogsData::Detail,
        ))]
    }

    fn select_index(&mut self, idx: usize) {
        self.selected = self.buffer.get(idx).map(key_of);
    }

    /// Keeps the buffer inside the range as it slides (the engine delivers only lines inside
    /// it; lines already held grow older).
    fn prune(&mut self, ctx: &TabCtx) {
        self.buffer.drop_before(ctx.now - ctx.range.duration());
    }

    /// Gives the engine the shell's range when it changed, and drops what fell out of it.
    fn follow_range(&mut self, ctx: &TabCtx) {
        if self.range != Some(ctx.range) {
            self.range = Some(ctx.range);
            if let Some(Engine { handle: h, .. }) = &self.engine {
                h.set_range(ctx.range.duration().to_std().ok());
            }
        }
        self.prune(ctx);
    }

    fn start_engine(&mut self, ctx: &TabCtx) {
        if self.engine.is_some() {
            return;
        }
        let mut opts = TailOptions::new(self.capacity);
        opts.filter = Some(self.filter.clone());
        opts.query_timeout = ctx.db.query_timeout;
        opts.floor_margin = self.floor_margin;
        opts.range = ctx.range.duration().to_std().ok();
        self.range = Some(ctx.range);
        opts.waker = ctx.events.cloned().map(|tx| {
            tail::Waker::new(move || {
                let _ = tx.send(crate::tui::msg::Event::Wake(Tab::Logs));
            })
        });
        let waker = opts.waker.clone();
        let (handle, rx) = tail::spawn(ctx.db, opts);
        self.engine = Some(Engine {
            handle,
            events: rx,
            waker,
        });
    }

    /// Takes the events the engine has queued and applies them. When the channel is empty
    /// the tab tells the waker it stopped reading, so the engine's next event wakes it
    /// (`Event::Wake`); after `DRAIN_MAX` events it wakes itself instead, to go on after any
    /// keys that are waiting.
    fn drain(&mut self, ctx: &TabCtx) -> Vec<Effect> {
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
        self.uncounted |= arrived;
        if self.uncounted && self.recount.due(ctx.now) {
            fx.push(self.stats_query(ctx));
        }
        fx
    }

    fn apply_events(&mut self, events: Vec<TailEvent>) {
        for ev in events {
            match ev {
                TailEvent::Reset(lines) => {
                    self.selected = None;
                    self.buffer.clear();
                    self.buffer.push_batch(lines);
                    self.tail_error = None;
                    if !self.follow {
                        self.follow = true;
                    }
                }
                TailEvent::Lines(lines) => {
                    self.rate.add(lines.len() as u64, std::time::Instant::now());
                    self.buffer.push_batch(lines);
                    self.tail_error = None;
                }
                TailEvent::Skipped(n) => {
                    self.skipped += n;
                    self.buffer.note_skipped(n);
                }
                TailEvent::Waiting(n) => self.waiting = n,
                TailEvent::Listening { .. } => self.tail_error = None,
                TailEvent::Error(e) => self.tail_error = Some(e),
            }
        }
    }

    fn stats_query(&mut self, ctx: &TabCtx) -> Effect {
        self.stats_since(ctx, ctx.now - ctx.range.duration())
    }

    /// The header's counts: lines matching the filter stamped from `start` on (the range), the
    /// same condition as the tail's fill and the export.
    fn stats_since(&mut self, ctx: &TabCtx, start: chrono::DateTime<Utc>) -> Effect {
        let db = ctx.db.clone();
        let f = self.filter.clone();
        self.recount.done(ctx.now);
        self.uncounted = false;
        self.stats.loading = true;
        Effect::Query(QueryRequest::new(
            "stats",
            async move { Ok(lq::stats(&db.read, &f, start).await?) },
            LogsData::Stats,
        ))
    }

    fn view_query(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        let db = ctx.db.clone();
        match self.view {
            View::Tail => Vec::new(),
            View::Trace => {
                let id = self.trace_id.clone();
                self.trace.loading = true;
                vec![Effect::Query(QueryRequest::new(
                    "trace",
                    async move { Ok(trace::trace(&db.read, &id, 2000).await?) },
                    LogsData::Trace,
                ))]
            }
            View::Groups => {
                self.groups.loading = true;
                vec![Effect::Query(QueryRequest::new(
                    "groups",
                    async move {
                        Ok(error_groups::list(
                            &db.read,
                            &GroupQuery::default(),
                            200,
                            chrono::Duration::hours(24),
                            24,
                        )
                        .await?)
                    },
                    LogsData::Groups,
                ))]
            }
            View::Audit => match self.audit_mode.clone() {
                AuditMode::Trail => {
                    self.audit.loading = true;
                    vec![Effect::Query(QueryRequest::new(
                        "audit",
                        async move {
                            Ok(audit::trail(&db.read, &AuditQuery::default(), None, 500).await?)
                        },
                        LogsData::Audit,
                    ))]
                }
                AuditMode::WhoDeleted(what) => {
                    self.audit.loading = true;
                    vec![Effect::Query(QueryRequest::new(
                        "audit",
                        async move { Ok(audit::who_deleted(&db.read, &what, 500).await?) },
                        LogsData::Audit,
                    ))]
                }
                AuditMode::MassDeletes(n) => {
                    self.mass.loading = true;
                    let since = ctx.now - ctx.range.duration();
                    vec![Effect::Query(QueryRequest::new(
                        "mass",
                        async move {
                            Ok(audit::mass_deletes(
                                &db.read,
                                since,
                                chrono::Duration::minutes(5),
                                n,
                            )
                            .await?)
                        },
                        LogsData::Mass,
                    ))]
                }
            },
        }
    }

    fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        if let Some(Engine { handle: h, .. }) = &self.engine {
            if paused {
                h.pause();
            } else {
                h.resume();
            }
        }
        if !paused {
            self.waiting = 0;
            self.follow = true;
        }
    }

    /// Jumps to the next (or previous) line satisfying `pred`, from the selection.
    fn jump(&mut self, forward: bool, pred: impl Fn(&LogLine) -> bool) -> bool {
        let Some(cur) = self.selected_index() else {
            return false;
        };
        let len = self.buffer.len();
        let found = if forward {
            (cur + 1..len).find(|&i| self.buffer.get(i).is_some_and(&pred))
        } else {
            (0..cur)
                .rev()
                .find(|&i| self.buffer.get(i).is_some_and(&pred))
        };
        if let Some(i) = found {
            self.follow = false;
            self.select_index(i);
            true
        } else {
            false
        }
    }

    fn transition(&mut self, to: GroupStatus, note: Option<String>, ctx: &TabCtx) -> Vec<Effect> {
        let doing = match to {
            GroupStatus::Acknowledged => "acknowledging an error group",
            GroupStatus::InProgress => "starting work on an error group",
            GroupStatus::Resolved => "resolving an error group",
            GroupStatus::Ignored => "ignoring an error group",
            GroupStatus::New => "reopening an error group",
        };
        if let Some(why) = ctx.db.access.refusal(doing) {
            return vec![Effect::Say {
                text: why,
                error: true,
            }];
        }
        let Some(g) = self
            .groups
            .data
            .as_ref()
            .and_then(|g| g.get(self.group_cursor.selected))
        else {
            return Vec::new();
        };
        let fp = g.fingerprint.clone();
        let db = ctx.db.clone();
        let actor = operator();
        vec![Effect::Query(QueryRequest::new(
            "transition",
            async move {
                error_groups::transition(&db.write, &fp, to, &actor, note.as_deref())
                    .await
                    .map_err(anyhow::Error::from)
            },
            LogsData::Transition,
        ))]
    }

    /// Exports what the header counts: the lines matching the filter inside the range, from
    /// the range's start at this instant on; the header's counts are read again with the same
    /// start so the two agree.
    fn start_export(
        &mut self,
        path: Option<std::path::PathBuf>,
        force: bool,
        ctx: &TabCtx,
    ) -> Vec<Effect> {
        if self.export.is_some() {
            self.message = Some(("an export is already running".into(), Role::Warn));
            return Vec::new();
        }
        let start = ctx.now - ctx.range.duration();
        let f = match in_range(&self.filter, start) {
            Ok(f) => f,
            Err(e) => {
                self.message = Some((format!("export: {e}"), Role::Error));
                return Vec::new();
            }
        };
        let format = path
            .as_ref()
            .and_then(|p| p.extension())
            .and_then(|e| e.to_str())
            .map(|e| match e {
                "json" => Format::Json,
                "log" | "txt" => Format::Text,
                _ => Format::Csv,
            })
            .unwrap_or(Format::Csv);
        let path = path.unwrap_or_else(|| {
            export::default_path(&std::env::current_dir().unwrap_or_default(), format)
        });
        let rows = Arc::new(AtomicU64::new(0));
        let (tx, rx) = oneshot::channel();
        let pool = ctx.db.write.clone();
        let counter = rows.clone();
        let target = path.clone();
        // Not a panel query: an export may take longer than the query timeout.
        tokio::spawn(async move {
            let r = export::export_to_file(&pool, &f, format, &target, force, |n| {
                counter.store(n, Ordering::Relaxed)
            })
            .await
            .map_err(|e| format!("{e:#}"));
            let _ = tx.send(r);
        });
        self.export = Some(Export {
            path,
            rows,
            done: rx,
        });
        vec![self.stats_since(ctx, start)]
    }

    fn poll_export(&mut self) {
        let Some(ex) = &mut self.export else {
            return;
        };
        match ex.done.try_recv() {
            Ok(Ok(n)) => {
                self.message = Some((
                    format!("exported {n} lines to {}", ex.path.display()),
                    Role::Ok,
                ));
                self.export = None;
            }
            Ok(Err(e)) => {
                self.message = Some((format!("export failed: {e}"), Role::Error));
                self.export = None;
            }
            Err(oneshot::error::TryRecvError::Empty) => {}
            Err(oneshot::error::TryRecvError::Closed) => {
                self.message = Some(("export stopped".into(), Role::Error));
                self.export = None;
            }
        }
    }
}

/// The newest line is at most this old for the list to say LIVE.
const LIVE_WITHIN: chrono::Duration = chrono::Duration::minutes(1);

/// Lines per second arriving from the tail, over windows of half a second: above
/// `STREAMING_LINES_PER_SEC` the lines scroll by faster than anyone reads them, and the shell
/// draws the data at `tui::FRAME_WHILE_STREAMING` instead of at every read.
#[derive(Debug, Default)]
struct StreamRate {
    window_start: Option<std::time::Instant>,
    in_window: u64,
    per_sec: f64,
}

/// More lines a second than the eye follows (a reader manages a few).
const STREAMING_LINES_PER_SEC: f64 = 100.0;
const RATE_WINDOW: Duration = Duration::from_millis(500);

impl StreamRate {
    fn add(&mut self, lines: u64, now: std::time::Instant) {
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
    fn streaming(&self, now: std::time::Instant) -> bool {
        self.per_sec >= STREAMING_LINES_PER_SEC
            && self
                .window_start
                .is_some_and(|s| now.saturating_duration_since(s) < 2 * RATE_WINDOW)
    }
}

/// `filter` restricted to lines stamped from `start` on: what the header counts over the range.
fn in_range(filter: &Filter, start: chrono::DateTime<Utc>) -> Result<Filter, FilterError> {
    let since = start.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    filter::parse(&format!("{} since:{since}", filter.source()))
}

/// The error-group triage keys (one binding; they write, so a reader sees them unavailable).
const GROUP_KEYS: &str = "a p R i o";

/// Who the operator is, for the audit trail.
fn operator() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "opsdash".into())
}

impl TabView for LogsTab {
    fn id(&self) -> Tab {
        Tab::Logs
    }

    fn refresh(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        self.refresher.done(ctx.now);
        self.start_engine(ctx);
        self.follow_range(ctx);
        // The counts first: the drain then finds them just asked for and asks no second time.
        let mut fx = vec![self.stats_query(ctx)];
        fx.extend(self.drain(ctx));
        fx.extend(self.view_query(ctx));
        fx
    }

    fn tick(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        self.poll_export();
        self.prune(ctx);
        let mut fx = Vec::new();
        if self.refresher.due(ctx.now) || (self.uncounted && self.recount.due(ctx.now)) {
            self.refresher.done(ctx.now);
            fx.push(self.stats_query(ctx));
        }
        fx.extend(self.drain(ctx));
        fx
    }

    fn on_wake(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        self.drain(ctx)
    }

    fn paced_frame(&self) -> Option<Duration> {
        let streaming = self.view == View::Tail
            && !self.paused
            && self.rate.streaming(std::time::Instant::now());
        streaming.then_some(crate::tui::view::FRAME_WHILE_STREAMING)
    }

    fn on_data(&mut self, data: Data, ctx: &TabCtx) -> Vec<Effect> {
        let Data::Logs(data) = data else {
            return Vec::new();
        };
        match data {
            LogsData::Stats(r) => self.stats.set(r),
            LogsData::Detail(r) => match r {
                Ok(Some(full)) => self.full = Some(full),
                // Retention dropped its day since the tail read it.
                Ok(None) => {
                    self.message =
                        Some(("this line is no longer in the database".into(), Role::Dim))
                }
                Err(e) => self.message = Some((format!("reading the line: {e}"), Role::Error)),
            },
            LogsData::Trace(r) => {
                self.trace.set(r);
                self.trace_cursor
                    .clamp(self.trace.data.as_ref().map_or(0, Vec::len));
            }
            // A refresh re-sorts the groups by count: the cursor stays on its group, so `R`
            // resolves the group the operator was looking at.
            LogsData::Groups(r) => {
                let fps = |g: &Panel<Vec<ErrorGroup>>| -> Vec<String> {
                    g.data
                        .iter()
                        .flatten()
                        .map(|g| g.fingerprint.clone())
                        .collect()
                };
                let had = fps(&self.groups).get(self.group_cursor.selected).cloned();
                self.groups.set(r);
                self.group_cursor.follow(had.as_ref(), fps(&self.groups));
            }
            LogsData::Audit(r) => {
                let ids = |a: &Panel<Vec<AuditEvent>>| -> Vec<i64> {
                    a.data.iter().flatten().map(|e| e.id).collect()
                };
                let had = ids(&self.audit).get(self.audit_cursor.selected).copied();
                self.audit.set(r);
                self.audit_cursor.follow(had.as_ref(), ids(&self.audit));
            }
            LogsData::Mass(r) => self.mass.set(r),
            LogsData::Transition(r) => {
                match r {
                    Ok(g) => {
                        self.message = Some((
                            format!("{} is now {}", sanitize(&g.fingerprint), g.status),
                            Role::Ok,
                        ))
                    }
                    Err(e) => self.message = Some((e, Role::Error)),
                }
                return self.view_query(ctx);
            }
        }
        Vec::new()
    }

    fn on_action(&mut self, action: Action, ctx: &TabCtx) -> Vec<Effect> {
        let mut fx = self.act(action, ctx);
        fx.extend(self.want_detail(ctx));
        fx
    }

    fn on_key(&mut self, key: &KeyEvent, ctx: &TabCtx) -> Option<Vec<Effect>> {
        let mut fx = self.key(key, ctx)?;
        fx.extend(self.want_detail(ctx));
        Some(fx)
    }

    /// While typing: the filter is checked (a mistake shows at once, with its position, and
    /// syntax the language lacks gets a hint) but applied on Enter only, so each keystroke does
    /// not restart the tail, and an emptied line is not the empty filter until Enter. Esc
    /// hands back the applied filter's text (the shell restores it), which clears the notes.
    fn on_filter(&mut self, text: &str, _ctx: &TabCtx) -> Vec<Effect> {
        if self.view == View::Audit {
            return Vec::new();
        }
        self.filter_error = filter::parse(text).err().map(|e| (text.to_string(), e));
        self.filter_hint = filter::hint(text);
        Vec::new()
    }

    fn on_filter_submit(&mut self, text: &str, ctx: &TabCtx) -> Vec<Effect> {
        if self.view == View::Audit {
            // The audit view's quick filters: `deleted:X`, `mass` / `mass:N`; empty: the trail.
            let t = text.trim();
            self.audit_mode = if let Some(x) = t.strip_prefix("deleted:") {
                AuditMode::WhoDeleted(x.trim().to_string())
            } else if let Some(n) = t.strip_prefix("mass") {
                AuditMode::MassDeletes(n.trim_start_matches(':').trim().parse().unwrap_or(10))
            } else {
                AuditMode::Trail
            };
            return self.view_query(ctx);
        }
        self.filter_hint = filter::hint(text);
        match filter::parse(text) {
            Ok(f) => {
                self.filter_error = None;
                if f == self.filter {
                    return Vec::new();
                }
                self.filter_text = text.trim().to_string();
                self.filter = f;
                if let Some(Engine { handle: h, .. }) = &self.engine {
                    h.set_filter(Some(self.filter.clone()));
                }
                self.follow = true;
                let mut fx = vec![self.stats_query(ctx)];
                fx.extend(self.drain(ctx));
                fx
            }
            Err(e) => {
                self.filter_error = Some((text.to_string(), e));
                Vec::new()
            }
        }
    }

    /// From an alert (its scope and time window) or a slow request (its trace): the tail view
    /// with that filter, following, or the trace view when a trace is given. The shell
    /// refreshes the tab right after, which reads the view's data.
    fn on_jump(&mut self, jump: &Jump, ctx: &TabCtx) -> Vec<Effect> {
        self.detail = false;
        self.message = None;
        if self.paused {
            self.set_paused(false);
        }
        self.view = View::Tail;
        let fx = self.on_filter_submit(&jump.filter, ctx);
        if let Some(id) = &jump.trace {
            self.trace_id = id.clone();
            self.trace = Panel::default();
            self.trace_cursor = Cursor::default();
            self.view = View::Trace;
        }
        fx
    }

    fn filter(&self) -> &str {
        &self.filter_text
    }

    fn on_command(&mut self, name: &str, args: &str, ctx: &TabCtx) -> Option<Vec<Effect>> {
        let note = (!args.trim().is_empty()).then(|| args.trim().to_string());
        match name {
            "export" | "export!" => {
                let path = note.map(std::path::PathBuf::from);
                Some(self.start_export(path, name == "export!", ctx))
            }
            "ack" if self.view == View::Groups => {
                Some(self.transition(GroupStatus::Acknowledged, note, ctx))
            }
            "progress" if self.view == View::Groups => {
                Some(self.transition(GroupStatus::InProgress, note, ctx))
            }
            "resolve" if self.view == View::Groups => {
                Some(self.transition(GroupStatus::Resolved, note, ctx))
            }
            "ignore" if self.view == View::Groups => {
                Some(self.transition(GroupStatus::Ignored, note, ctx))
            }
            "reopen" if self.view == View::Groups => {
                Some(self.transition(GroupStatus::New, note, ctx))
            }
            "f" | "filter" if self.view == View::Tail => {
                let name = args.trim();
                if name.is_empty() {
                    let names: Vec<&str> = self.saved.keys().map(String::as_str).collect();
                    self.message =
                        Some((format!("saved filters: {}", names.join(", ")), Role::Dim));
                    return Some(Vec::new());
                }
                match self.saved.get(name).cloned() {
                    Some(text) => Some(self.on_filter_submit(&text, ctx)),
                    None => {
                        self.message = Some((format!("no saved filter named {name}"), Role::Error));
                        Some(Vec::new())
                    }
                }
            }
            "trace" => {
                self.trace_id = args.trim().to_string();
                self.view = View::Trace;
                Some(self.view_query(ctx))
            }
            _ => None,
        }
    }

    fn operator_keys(&self) -> &'static [&'static str] {
        &[GROUP_KEYS]
    }

    fn bindings(&self) -> Vec<Binding> {
        let mut b = vec![
            Binding {
                keys: "space",
                help: "pause / resume the tail",
            },
            Binding {
                keys: "G",
                help: "follow the newest lines",
            },
            Binding {
                keys: "enter",
                help: "details",
            },
            Binding {
                keys: "w",
                help: "wrap long lines",
            },
            Binding {
                keys: "h l",
                help: "scroll sideways",
            },
            Binding {
                keys: "e E",
                help: "next / previous error",
            },
            Binding {
                keys: "n N",
                help: "next / previous match",
            },
            Binding {
                keys: "t",
                help: "trace of this line",
            },
            Binding {
                keys: "v",
                help: "tail / error groups / audit",
            },
            Binding {
                keys: ":f NAME",
                help: "apply a saved filter ([logs.saved_filters])",
            },
            Binding {
                keys: "x",
                help: "export the lines the header counts: filter and range (:export FILE)",
            },
        ];
        if self.view == View::Groups {
            b.push(Binding {
                keys: GROUP_KEYS,
                help: "ack / in progress / resolve / ignore / reopen (:resolve NOTE)",
            });
        }
        if self.view == View::Audit {
            b.push(Binding {
                keys: "D m",
                help: "who deleted this / mass deletes",
            });
        }
        b
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let [status, body, note] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(1),
            Constraint::Length(1),
        ])
        .areas(area);
        crate::tui::widgets::render(f, Paragraph::new(self.status_line(ctx)), status);
        match self.view {
            View::Tail => self.draw_tail(f, body, ctx),
            View::Trace => self.draw_trace(f, body, ctx),
            View::Groups => self.draw_groups(f, body, ctx),
            View::Audit => self.draw_audit(f, body, ctx),
        }
        crate::tui::widgets::render(f, Paragraph::new(self.note_line(theme)), note);
    }
}

fn level_role(level: i16) -> Role {
    match Level::from_i16(level) {
        Level::Trace | Level::Debug => Role::Dim,
        Level::Info => Role::Info,
        Level::Warn => Role::Warn,
        Level::Error => Role::Error,
        Level::Fatal => Role::Critical,
    }
}

/// Text from the database, made safe for the terminal.
fn safe(s: &str) -> String {
    sanitize(s).into_owned()
}

impl LogsTab {
    /// The tab's navigation actions (`on_action` adds the detail pane's read).
    fn act(&mut self, action: Action, ctx: &TabCtx) -> Vec<Effect> {
        let page = 10;
        match self.view {
            View::Tail => match action {
                Action::Up | Action::Down | Action::PageUp | Action::PageDown | Action::Top => {
                    let Some(cur) = self.selected_index() else {
                        return Vec::new();
                    };
                    let mut c = Cursor { selected: cur };
                    c.apply(action, self.buffer.len(), page);
                    self.follow = false;
                    self.select_index(c.selected);
                }
                Action::Bottom => {
                    self.set_paused(false);
                    self.follow = true;
                }
                Action::Left => self.hscroll = self.hscroll.saturating_sub(8),
                Action::Right => self.hscroll += 8,
                Action::Select => self.detail = !self.detail,
                Action::Back => {
                    self.detail = false;
                    self.message = None;
                }
                _ => {}
            },
            View::Trace => match action {
                Action::Back => self.view = View::Tail,
                a => {
                    let n = self.trace.data.as_ref().map_or(0, Vec::len);
                    self.trace_cursor.apply(a, n, page);
                }
            },
            View::Groups => match action {
                Action::Back => self.view = View::Tail,
                Action::Select => self.detail = !self.detail,
                a => {
                    let n = self.groups.data.as_ref().map_or(0, Vec::len);
                    self.group_cursor.apply(a, n, page);
                }
            },
            View::Audit => match action {
                Action::Back => {
                    if self.audit_mode != AuditMode::Trail {
                        self.audit_mode = AuditMode::Trail;
                        return self.view_query(ctx);
                    }
                    self.view = View::Tail;
                }
                Action::Select => self.detail = !self.detail,
                a => {
                    let n = self.audit.data.as_ref().map_or(0, Vec::len);
                    self.audit_cursor.apply(a, n, page);
                }
            },
        }
        Vec::new()
    }

    /// The tab's own keys (`on_key` adds the detail pane's read).
    fn key(&mut self, key: &KeyEvent, ctx: &TabCtx) -> Option<Vec<Effect>> {
        let KeyCode::Char(c) = key.code else {
            return None;
        };
        match (self.view, c) {
            (_, 'v') => {
                self.view = match self.view {
                    View::Tail | View::Trace => View::Groups,
                    View::Groups => View::Audit,
                    View::Audit => View::Tail,
                };
                self.detail = false;
                Some(self.view_query(ctx))
            }
            (_, 'x') => Some(self.start_export(None, false, ctx)),
            (View::Tail, ' ') => {
                let p = !self.paused;
                self.set_paused(p);
                Some(self.drain(ctx))
            }
            (View::Tail, 'w') => {
                self.wrap = !self.wrap;
                Some(Vec::new())
            }
            (View::Tail, 'e') | (View::Tail, 'E') => {
                if !self.jump(c == 'e', |l| l.level >= Level::Error.as_i16()) {
                    self.message = Some(("no more errors in the buffer".into(), Role::Dim));
                }
                Some(Vec::new())
            }
            (View::Tail, 'n') | (View::Tail, 'N') => {
                let terms: Vec<String> = self
                    .filter
                    .message_terms()
                    .iter()
                    .map(|t| t.to_lowercase())
                    .collect();
                if terms.is_empty() {
                    self.message = Some((
                        "no search words in the filter (type / then words)".into(),
                        Role::Dim,
                    ));
                } else if !self.jump(c == 'n', |l| {
                    let m = l.message.to_lowercase();
                    terms.iter().any(|t| m.contains(t.as_str()))
                }) {
                    self.message = Some(("no more matches in the buffer".into(), Role::Dim));
                }
                Some(Vec::new())
            }
            (View::Tail, 't') => {
                let Some(id) = self.selected_line().and_then(|l| l.trace_id.clone()) else {
                    self.message = Some(("this line has no trace id".into(), Role::Dim));
                    return Some(Vec::new());
                };
                self.trace_id = id;
                self.trace = Panel::default();
                self.trace_cursor = Cursor::default();
                self.view = View::Trace;
                Some(self.view_query(ctx))
            }
            (View::Groups, 'a') => Some(self.transition(GroupStatus::Acknowledged, None, ctx)),
            (View::Groups, 'p') => Some(self.transition(GroupStatus::InProgress, None, ctx)),
            (View::Groups, 'R') => Some(self.transition(GroupStatus::Resolved, None, ctx)),
            (View::Groups, 'i') => Some(self.transition(GroupStatus::Ignored, None, ctx)),
            (View::Groups, 'o') => Some(self.transition(GroupStatus::New, None, ctx)),
            (View::Audit, 'm') => {
                self.audit_mode = AuditMode::MassDeletes(10);
                Some(self.view_query(ctx))
            }
            (View::Audit, 'D') => {
                let what = self
                    .audit
                    .data
                    .as_ref()
                    .and_then(|a| a.get(self.audit_cursor.selected))
                    .and_then(|a| a.resource_id.clone())?;
                self.audit_mode = AuditMode::WhoDeleted(what);
                Some(self.view_query(ctx))
            }
            _ => None,
        }
    }
}

impl LogsTab {
    fn status_line(&self, ctx: &DrawCtx) -> Line<'static> {
        let theme = ctx.theme;
        let mut spans = Vec::new();
        // LIVE means "what you see is happening now": following, and the newest line is
        // recent. Following a stream of old lines (a backfill, an import, a quiet service)
        // says how old the newest line is instead.
        let newest_age = self.buffer.last().map(|l| ctx.now - l.ts);
        if self.paused {
            spans.push(Span::styled(
                format!(" PAUSED ({} waiting) ", fmt_count(self.waiting as f64)),
                theme.style(Role::Warn),
            ));
        } else if !self.follow {
            spans.push(Span::styled(" SCROLL ", theme.style(Role::Accent)));
        } else if let Some(age) = newest_age.filter(|a| *a > LIVE_WITHIN) {
            spans.push(Span::styled(
                format!(
                    " FOLLOWING · newest line {} ",
                    crate::tui::widgets::human_age(age)
                ),
                theme.style(Role::Accent),
            ));
        } else {
            spans.push(Span::styled(" LIVE ", theme.style(Role::Ok)));
        }
        // Counts over exactly what the list holds: the filter's lines inside the range (the
        // tail's fill, the export and these counts use the same condition).
        if let Some(s) = &self.stats.data {
            let shown = if s.in_range > self.buffer.capacity() as i64 {
                format!(
                    " (list: newest {})",
                    fmt_count(self.buffer.capacity() as f64)
                )
            } else {
                String::new()
            };
            spans.push(Span::styled(
                format!(
                    " {} in {}{shown} · E{} W{} I{} ",
                    fmt_count(s.in_range as f64),
                    ctx.range.label(),
                    fmt_count((s.by_level[4] + s.by_level[5]) as f64),
                    fmt_count(s.by_level[3] as f64),
                    fmt_count(s.by_level[2] as f64),
                ),
                theme.style(Role::Dim),
            ));
        }
        if self.buffer.late() > 0 {
            spans.push(Span::styled(
                format!(" {} late ", fmt_count(self.buffer.late() as f64)),
                theme.style(Role::Warn),
            ));
        }
        // The filter before the buffer's fill: at 80 columns the line is cut at the right, and
        // what the list is filtered by matters more than how full the ring is.
        if !self.filter_text.is_empty() {
            spans.push(Span::styled(
                format!(" · filter: {}", safe(&self.filter_text)),
                theme.style(Role::Accent),
            ));
        }
        spans.push(Span::styled(
            format!(
                " buffer {}/{}",
                fmt_count(self.buffer.len() as f64),
                fmt_count(self.buffer.capacity() as f64)
            ),
            theme.style(Role::Dim),
        ));
        if self.skipped > 0 {
            spans.push(Span::styled(
                format!(" · {} skipped on resume", fmt_count(self.skipped as f64)),
                theme.style(Role::Dim),
            ));
        }
        Line::from(spans)
    }

    fn note_line(&self, theme: &Theme) -> Line<'static> {
        if let Some((text, e)) = &self.filter_error {
            // The caret under the mistake needs the text; both are the user's own typing, made
            // safe anyway.
            let before: String = text.chars().take(e.pos).collect();
            let at: String = text.chars().skip(e.pos).take(12).collect();
            return Line::from(vec![
                Span::styled(format!("filter {e}: "), theme.style(Role::Error)),
                Span::styled(safe(&before), theme.style(Role::Dim)),
                Span::styled(format!("▶{}", safe(&at)), theme.style(Role::Error)),
                Span::styled(" (previous filter kept)", theme.style(Role::Dim)),
            ]);
        }
        if let Some(h) = &self.filter_hint {
            return Line::from(Span::styled(safe(h), theme.style(Role::Warn)));
        }
        if let Some(ex) = &self.export {
            return Line::from(Span::styled(
                format!(
                    "exporting to {}: {} lines…",
                    safe(&ex.path.display().to_string()),
                    fmt_count(ex.rows.load(Ordering::Relaxed) as f64)
                ),
                theme.style(Role::Accent),
            ));
        }
        if let Some((m, role)) = &self.message {
            return Line::from(Span::styled(safe(m), theme.style(*role)));
        }
        if let Some(e) = &self.tail_error {
            return Line::from(Span::styled(safe(e), theme.style(Role::Error)));
        }
        Line::default()
    }

    fn draw_tail(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let (list, detail) = if self.detail {
            let [a, b] = Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)])
                .areas(area);
            (a, Some(b))
        } else {
            (area, None)
        };
        if self.buffer.is_empty() {
            let msg = if self.engine.is_none() {
                "starting the live tail…"
            } else {
                "no lines yet (waiting for new log lines)"
            };
            draw_note(f, list, msg, Role::Dim, theme);
        } else {
            self.draw_lines(f, list, ctx);
        }
        if let (Some(area), Some(line)) = (detail, self.detail_line()) {
            let p = Paragraph::new(detail_lines(line, ctx))
                .block(block("details", true, theme))
                .wrap(Wrap { trim: false });
            crate::tui::widgets::render(f, p, area);
        }
    }

    fn draw_lines(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
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
                            format!("{:<6}", Level::from_i16(l.level).name()),
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
            if let Some(l) = self.buffer.get(i as usize) {
                let mut r = render(i as usize, l);
                r.extend(rows);
                rows = r;
            }
            i -= 1;
        }
        // Room left below the selection (scrolled up): show the following lines too.
        let mut j = sel + 1;
        while rows.len() < height && j < self.buffer.len() {
            if let Some(l) = self.buffer.get(j) {
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
    fn time_format(&self, ctx: &DrawCtx) -> &'static str {
        let day = |t| ctx.fmt_time(t, "%Y-%m-%d");
        let today = day(ctx.now);
        let start = ctx.now - ctx.range.duration();
        let ends = [self.buffer.first(), self.buffer.last()];
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

    fn draw_trace(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let b = block(&format!("trace {}", safe(&self.trace_id)), true, theme);
        let inner = b.inner(area);
        crate::tui::widgets::render(f, b, area);
        let Some(items) = &self.trace.data else {
            let (t, r) = self
                .trace
                .placeholder()
                .unwrap_or((String::new(), Role::Dim));
            draw_note(f, inner, &t, r, theme);
            return;
        };
        if items.is_empty() {
            draw_note(f, inner, "nothing carries this trace id", Role::Dim, theme);
            return;
        }
        let (bars, span) = trace::waterfall(items);
        let bar_w = (inner.width as usize / 3).max(10);
        let text_w = (inner.width as usize).saturating_sub(bar_w + 8 + 8 + 9 + 4);
        let height = inner.height as usize;
        let top = self
            .trace_cursor
            .selected
            .saturating_sub(height.saturating_sub(1));
        let lines: Vec<Line> = items
            .iter()
            .zip(&bars)
            .enumerate()
            .skip(top)
            .take(height)
            .map(|(i, (it, bar))| {
                let scale = if span > 0.0 { bar_w as f64 / span } else { 0.0 };
                let start = ((bar.offset_ms * scale) as usize).min(bar_w.saturating_sub(1));
                let len = ((bar.duration_ms * scale).ceil() as usize).clamp(1, bar_w - start);
                let mut wf = " ".repeat(start);
                wf.push_str(&(if bar.duration_ms > 0.0 { "█" } else { "│" }).repeat(len));
                wf.push_str(&" ".repeat(bar_w - start - len));
                let role = match (it.level, it.status) {
                    _ if it.failed => Role::Error,
                    (Some(l), _) => level_role(l),
                    (_, Some(s)) if s >= 500 => Role::Error,
                    (_, Some(s)) if s >= 400 => Role::Warn,
                    _ => Role::ChartPrimary,
                };
                let sel = i == self.trace_cursor.selected;
                Line::from(vec![
                    Span::styled(
                        format!("{:>8} ", fmt_ms(bar.offset_ms)),
                        row_style(sel, theme),
                    ),
                    Span::styled(wf, theme.style(role)),
                    Span::styled(
                        format!(" {:>7} ", it.duration_ms.map(fmt_ms).unwrap_or_default()),
                        row_style(sel, theme),
                    ),
                    Span::styled(format!("{:<8}", it.kind.name()), theme.style(Role::Dim)),
                    Span::styled(
                        truncate(
                            // Spans indent under their parent (two columns a level).
                            &format!(
                                "{:indent$}{} {}",
                                "",
                                safe(&it.service),
                                safe(&it.summary),
                                indent = 2 * usize::from(it.depth)
                            ),
                            text_w,
                        ),
                        row_style(sel, theme),
                    ),
                ])
            })
            .collect();
        crate::tui::widgets::render(f, Paragraph::new(lines), inner);
    }

    fn draw_groups(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let b = block("error groups (24 h sparkline)", true, theme);
        let inner = b.inner(area);
        crate::tui::widgets::render(f, b, area);
        let Some(groups) = &self.groups.data else {
            let (t, r) = self
                .groups
                .placeholder()
                .unwrap_or((String::new(), Role::Dim));
            draw_note(f, inner, &t, r, theme);
            return;
        };
        if groups.is_empty() {
            draw_note(f, inner, "no error groups", Role::Dim, theme);
            return;
        }
        let (list, detail) = if self.detail {
            let [a, b] = Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(inner);
            (a, Some(b))
        } else {
            (inner, None)
        };
        let height = list.height as usize;
        let sel = self.group_cursor.selected;
        let top = sel.saturating_sub(height.saturating_sub(1));
        let w = list.width as usize;
        let lines: Vec<Line> = groups
            .iter()
            .enumerate()
            .skip(top)
            .take(height)
            .map(|(i, g)| {
                let s = i == sel;
                let status = if g.regressed {
                    "regressed".to_string()
                } else {
                    g.status.to_string()
                };
                Line::from(vec![
                    Span::styled(
                        format!("{:<12}", status),
                        theme.style(if g.regressed {
                            Role::Error
                        } else {
                            status_role(g.status.as_str())
                        }),
                    ),
                    Span::styled(
                        format!("{:>7} ", fmt_count(g.count as f64)),
                        row_style(s, theme),
                    ),
                    Span::styled(
                        format!("{:>5}u ", fmt_count(g.affected_users as f64)),
                        row_style(s, theme),
                    ),
                    Span::styled(
                        format!("{} ", spark_text(&g.sparkline, g.sparkline.len())),
                        theme.style(Role::Spark),
                    ),
                    Span::styled(
                        format!("{:>8} ", ctx.ago(g.last_seen)),
                        theme.style(Role::Dim),
                    ),
                    Span::styled(
                        truncate(
                            &format!("{} {}", safe(&g.service), safe(&g.sample_message)),
                            w.saturating_sub(12 + 8 + 7 + 25 + 9),
                        ),
                        row_style(s, theme),
                    ),
                ])
            })
            .collect();
        crate::tui::widgets::render(f, Paragraph::new(lines), list);
        if let (Some(area), Some(g)) = (detail, groups.get(sel)) {
            let mut l = vec![
                kv("fingerprint", &g.fingerprint, theme),
                kv("service", &g.service, theme),
                kv("type", g.error_type.as_deref().unwrap_or("-"), theme),
                kv(
                    "first seen",
                    &ctx.fmt_time(g.first_seen, "%Y-%m-%d %H:%M:%S"),
                    theme,
                ),
                kv(
                    "last seen",
                    &ctx.fmt_time(g.last_seen, "%Y-%m-%d %H:%M:%S"),
                    theme,
                ),
                kv("assignee", g.assignee.as_deref().unwrap_or("-"), theme),
                kv("note", g.note.as_deref().unwrap_or("-"), theme),
            ];
            l.push(kv("sample", &g.sample_message, theme));
            crate::tui::widgets::render(
                f,
                Paragraph::new(l)
                    .block(block("group", false, theme))
                    .wrap(Wrap { trim: false }),
                area,
            );
        }
    }

    fn draw_audit(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let title = match &self.audit_mode {
            AuditMode::Trail => "audit trail (/deleted:ID, /mass:N)".to_string(),
            AuditMode::WhoDeleted(x) => format!("who deleted {}", safe(x)),
            AuditMode::MassDeletes(n) => format!("actors with more than {n} deletes in 5 minutes"),
        };
        let b = block(&title, true, theme);
        let inner = b.inner(area);
        crate::tui::widgets::render(f, b, area);
        if let AuditMode::MassDeletes(_) = self.audit_mode {
            let Some(rows) = &self.mass.data else {
                let (t, r) = self
                    .mass
                    .placeholder()
                    .unwrap_or((String::new(), Role::Dim));
                draw_note(f, inner, &t, r, theme);
                return;
            };
            if rows.is_empty() {
                draw_note(f, inner, "no mass deletes in the range", Role::Ok, theme);
                return;
            }
            let lines: Vec<Line> = rows
                .iter()
                .map(|m| {
                    Line::from(vec![
                        Span::styled(
                            format!("{:<20}", truncate(&safe(&m.actor), 19)),
                            theme.style(Role::Error),
                        ),
                        Span::styled(
                            format!(
                                "{} deletes in 5 min (until {}), {} in range",
                                m.peak,
                                ctx.fmt_time(m.peak_at, "%H:%M:%S"),
                                m.total
                            ),
                            theme.style(Role::Text),
                        ),
                    ])
                })
                .collect();
            crate::tui::widgets::render(f, Paragraph::new(lines), inner);
            return;
        }
        let Some(events) = &self.audit.data else {
            let (t, r) = self
                .audit
                .placeholder()
                .unwrap_or((String::new(), Role::Dim));
            draw_note(f, inner, &t, r, theme);
            return;
        };
        if events.is_empty() {
            draw_note(f, inner, "no audit events", Role::Dim, theme);
            return;
        }
        let (list, detail) = if self.detail {
            let [a, b] = Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)])
                .areas(inner);
            (a, Some(b))
        } else {
            (inner, None)
        };
        let height = list.height as usize;
        let sel = self.audit_cursor.selected;
        let top = sel.saturating_sub(height.saturating_sub(1));
        let w = list.width as usize;
        let lines: Vec<Line> = events
            .iter()
            .enumerate()
            .skip(top)
            .take(height)
            .map(|(i, a)| {
                let s = i == sel;
                let deleting = a.action.to_lowercase().contains("delet");
                Line::from(vec![
                    Span::styled(
                        format!("{:<20}", ctx.fmt_time(a.ts, "%m-%d %H:%M:%S")),
                        row_style(s, theme),
                    ),
                    Span::styled(
                        format!("{:<14}", truncate(&safe(&a.actor), 13)),
                        row_style(s, theme),
                    ),
                    Span::styled(
                        format!("{:<18}", truncate(&safe(&a.action), 17)),
                        if deleting {
                            theme.style(Role::Warn)
                        } else {
                            row_style(s, theme)
                        },
                    ),
                    Span::styled(
                        truncate(
                            &format!(
                                "{} {}",
                                safe(a.resource_type.as_deref().unwrap_or("")),
                                safe(a.resource_id.as_deref().unwrap_or(""))
                            ),
                            w.saturating_sub(52),
                        ),
                        row_style(s, theme),
                    ),
                ])
            })
            .collect();
        crate::tui::widgets::render(f, Paragraph::new(lines), list);
        if let (Some(area), Some(a)) = (detail, events.get(sel)) {
            let mut l = vec![
                kv(
                    "actor",
                    &format!("{} ({})", a.actor, a.actor_role.as_deref().unwrap_or("-")),
                    theme,
                ),
                kv("outcome", &a.outcome, theme),
                kv("source", &a.source, theme),
                kv("ip", a.ip.as_deref().unwrap_or("-"), theme),
            ];
            for d in audit::diff(a.before.as_ref(), a.after.as_ref()) {
                l.push(match d {
                    DiffLine::Added { key, after } => Line::from(Span::styled(
                        format!("+ {}: {}", safe(&key), safe(&after)),
                        theme.style(Role::Ok),
                    )),
                    DiffLine::Removed { key, before } => Line::from(Span::styled(
                        format!("- {}: {}", safe(&key), safe(&before)),
                        theme.style(Role::Error),
                    )),
                    DiffLine::Changed { key, before, after } => Line::from(Span::styled(
                        format!("~ {}: {} → {}", safe(&key), safe(&before), safe(&after)),
                        theme.style(Role::Warn),
                    )),
                });
            }
            crate::tui::widgets::render(
                f,
                Paragraph::new(l)
                    .block(block("before → after", false, theme))
                    .wrap(Wrap { trim: false }),
                area,
            );
        }
    }
}

fn kv(k: &str, v: &str, theme: &Theme) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{k:>12}: "), theme.style(Role::Dim)),
        Span::styled(safe(v), theme.style(Role::Text)),
    ])
}

/// Every field of a line; multi-line messages and stack traces line by line; attributes
/// pretty-printed. Each piece is sanitized separately, so a newline in the data becomes a new
/// row here and never an escape.
pub fn detail_lines(l: &LogLine, ctx: &DrawCtx) -> Vec<Line<'static>> {
    let theme = ctx.theme;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    // What an operator reads first: when, how bad, the message and the stack trace.
    let mut out = vec![Line::from(vec![
        Span::styled(
            ctx.fmt_time(l.ts, "%Y-%m-%d %H:%M:%S%.6f "),
            theme.style(Role::Dim),
        ),
        Span::styled(
            format!("{} ", Level::from_i16(l.level).name()),
            theme.style(level_role(l.level)),
        ),
        Span::styled(safe(&l.service), theme.style(Role::Accent)),
    ])];
    for line in l.message.split('\n') {
        out.push(Line::from(Span::styled(
            safe(line),
            theme.style(Role::Text),
        )));
    }
    let stack = l.attrs.as_ref().and_then(|attrs| {
        [
            "stack",
            "stacktrace",
            "stack_trace",
            "exception",
            "traceback",
            "backtrace",
        ]
        .iter()
        .find_map(|k| attrs.get(*k).and_then(|v| v.as_str()).map(|s| (*k, s)))
    });
    if let Some((k, s)) = stack {
        out.push(Line::from(Span::styled(
            format!("{k}:"),
            theme.style(Role::Dim),
        )));
        for line in s.lines() {
            out.push(Line::from(Span::styled(
                format!("  {}", safe(line)),
                theme.style(Role::Error),
            )));
        }
    }
    if l.partial {
        // The tail read only the list's columns; the whole line is on its way.
        out.extend([
            kv("trace", &opt(&l.trace_id), theme),
            kv("id", &format!("{} (tx {})", l.id, l.tx), theme),
            Line::from(Span::styled(
                "reading every field of this line…",
                theme.style(Role::Dim),
            )),
        ]);
        return out;
    }
    out.extend([
        kv("trace", &opt(&l.trace_id), theme),
        kv("span", &opt(&l.span_id), theme),
        kv("request", &opt(&l.request_id), theme),
        kv("user", &opt(&l.user_id), theme),
        kv("host", &opt(&l.host), theme),
        kv(
            "http",
            &format!(
                "{} {} {} {}",
                opt(&l.method),
                opt(&l.route),
                l.status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
                l.duration_ms.map(fmt_ms).unwrap_or_default()
            ),
            theme,
        ),
        kv("ip", &opt(&l.ip), theme),
        kv("user agent", &opt(&l.user_agent), theme),
        kv("error type", &opt(&l.error_type), theme),
        kv("fingerprint", &opt(&l.fingerprint), theme),
        kv("repeated", &l.repeat_count.to_string(), theme),
        kv("id", &format!("{} (tx {})", l.id, l.tx), theme),
    ]);
    if let Some(attrs) = &l.attrs {
        out.push(Line::from(Span::styled(
            "attributes:",
            theme.style(Role::Dim),
        )));
        let pretty = serde_json::to_string_pretty(attrs).unwrap_or_default();
        for line in pretty.lines() {
            out.push(Line::from(Span::styled(
                format!("  {}", safe(line)),
                theme.style(Role::Text),
            )));
        }
    }
    out
}

/// Summary for tests and the help: the time of the newest line.
pub fn newest_age(buffer: &TailBuffer) -> Option<chrono::Duration> {
    buffer.iter().last().map(|l| Utc::now() - l.ts)
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
}
