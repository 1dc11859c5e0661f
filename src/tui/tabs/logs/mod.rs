//! Logs tab: the live tail (follow by default, space pauses with a count of waiting lines, `G`
//! resumes), the filter language on `/` (applied on Enter only; a mistake is shown with its
//! position and the previous filter stays in force; guessed operators get a hint), a detail
//! pane, error/match jumps, the trace waterfall, the error groups and audit trail views, and
//! export.
//!
//! The list is a window onto all of history (`list`, `history`): the lines of the filter inside
//! the shell's range (or the filter's own `since:`/`until:`, or back to a `:goto` instant), in
//! event-time order, read page by page as the cursor nears either end and held to a bounded
//! number of lines; the live tail joins it while it reaches the newest line. The header's
//! counts (`history::count`, `lq::stats`) and the export use that same condition, so the three
//! describe the same lines.
//!
//! The tail engine (`crate::tail`) runs on its own tasks and queues its events on a bounded
//! channel this tab owns. The tab takes what is queued straight from that channel, inside
//! `update`: when the engine wakes it after it went idle (`Event::Wake`), on every tick and when
//! the operator changes what the tail shows. No query, lock or task stands in between.
//!
//! The views are components, one a file, as in the Alerts tab: `trace::TraceView`,
//! `groups::GroupsView`, `audit::AuditView`, the list's `detail::DetailPane` and the
//! `export::Exporter`; each owns its state, its keys, its data handling and its draw. The
//! list itself (the tail and the window onto history) is the tab's own state, spread over
//! `list`, `history`, `histogram` and `tail`. This file keeps what the views share (the
//! filter and range, the header's counts, the note line) and the `TabView` dispatch to the
//! view on screen; `keys` dispatches the keys.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::export::Format;
use crate::filter::{self, Filter, FilterError};
use crate::model::Level;
use crate::model::TimeRange;
use crate::query::audit::{AuditEvent, DiffLine, MassDelete};
use crate::query::error_groups::{self, ErrorGroup, GroupQuery, GroupStatus};
use crate::query::logs::{self as lq, LogLine, LogStats};
use crate::query::trace::TraceItem;
use crate::sanitize::sanitize;
use crate::tail::{TailEvent, TailHandle, TailOptions};
use crate::tui::keymap::Action;
use crate::tui::msg::{Data, Effect, Jump, LogsData, QueryRequest, Tab};
use crate::tui::theme::{Role, Theme};
use crate::tui::view::{Binding, Cursor, DrawCtx, Panel, Refresher, TabCtx, TabView};
use crate::tui::widgets::{
    block, draw_note, fmt_count, fmt_ms, put_line, row_style, spark_text, status_role, truncate,
};
use list::{key_of, LineKey};

mod audit;
mod copy;
mod detail;
mod export;
mod groups;
mod histogram;
mod history;
mod keys;
mod list;
mod status;
mod tail;
mod trace;

pub use audit::AuditMode;
use audit::AuditView;
pub use detail::detail_lines;
use detail::{kv, DetailPane};
use export::Exporter;
use groups::{GroupsView, GROUP_KEYS};
use history::LoadKind;
pub use list::LogList;
use list::{PAGE, PREFETCH};
use tail::{Engine, StreamRate, LIVE_WITHIN};
use trace::TraceView;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Tail,
    Trace,
    Groups,
    Audit,
}

/// The note line's message (under the view), which every view may set.
pub(super) type Note = Option<(String, Role)>;

pub struct LogsTab {
    capacity: usize,
    floor_margin: Duration,
    saved: std::collections::BTreeMap<String, String>,
    engine: Option<Engine>,
    /// The last filter or range command given to the engine and not yet in force: the tail's
    /// lines and resets before its `TailEvent::Applied` were read under an older filter and
    /// are dropped (they showed as `late` lines that did not match the filter).
    tail_awaiting: Option<u64>,
    /// The list's lines: a window onto the range's history, joined by the tail.
    pub list: LogList,
    /// `:goto` to an instant before the range moves the list's start back to that day.
    goto_from: Option<chrono::DateTime<Utc>>,
    /// The header's count of what the range and filter hold (exact, or `~N` estimated).
    pub count: Panel<crate::query::history::HeaderCount>,
    /// The volume histogram above the list (`i`).
    pub volume: histogram::VolumeView,
    pub paused: bool,
    /// While paused, the lines waiting after the engine's cursor, once the engine has counted
    /// them: its first count after `pause()` acknowledges the pause (no line is delivered
    /// after it), so the status shows a number only when the pause is in force.
    pub waiting: Option<u64>,
    pub skipped: u64,
    pub follow: bool,
    /// The selected line by its place in time (`ts`, id): stable while lines scroll out and
    /// while late lines are inserted before it. None: the newest.
    selected: Option<LineKey>,
    /// The range the engine was given (the shell's range; a change refills).
    range: Option<TimeRange>,
    pub wrap: bool,
    hscroll: usize,
    /// The list's detail pane.
    detail: DetailPane,
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
    trace: TraceView,
    groups: GroupsView,
    audit: AuditView,
    pub message: Note,
    export: Exporter,
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
            tail_awaiting: None,
            list: LogList::new(cfg.ui.tail_buffer.max(100)),
            goto_from: None,
            count: Panel::default(),
            volume: histogram::VolumeView::default(),
            paused: false,
            waiting: None,
            skipped: 0,
            follow: true,
            selected: None,
            range: None,
            wrap: false,
            hscroll: 0,
            detail: DetailPane::default(),
            filter_text: String::new(),
            filter: Filter::default(),
            filter_error: None,
            filter_hint: None,
            tail_error: None,
            stats: Panel::default(),
            view: View::Tail,
            trace: TraceView::default(),
            groups: GroupsView::default(),
            audit: AuditView::default(),
            message: None,
            export: Exporter::default(),
            refresher: Refresher::every(10),
            recount: Refresher::every(2),
            uncounted: false,
            rate: StreamRate::default(),
        }
    }

    /// Index in the buffer of the selected line.
    pub fn selected_index(&self) -> Option<usize> {
        if self.list.is_empty() {
            return None;
        }
        let last = self.list.len() - 1;
        match self.selected {
            Some(k) if !self.follow => Some(self.list.position(k).min(last)),
            _ => Some(last),
        }
    }

    pub fn selected_line(&self) -> Option<&LogLine> {
        self.selected_index().and_then(|i| self.list.get(i))
    }

    fn select_index(&mut self, idx: usize) {
        self.selected = self.list.get(idx).map(key_of);
    }

    /// The header's counts over the list's window: the count of lines (`history::count`)
    /// and the lines per level.
    fn stats_query(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        let (r, _) = self.history_range(ctx.now, ctx.range);
        vec![self.stats_since(ctx, r.from), self.count_query(ctx)]
    }

    /// The lines per level: lines matching the filter stamped from `start` on (the range), the
    /// same condition as the list and the export.
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

    /// The data of the view on screen (the list reads its own, page by page).
    fn view_query(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        match self.view {
            View::Tail => Vec::new(),
            View::Trace => vec![self.trace.request(ctx)],
            View::Groups => vec![self.groups.request(ctx)],
            View::Audit => vec![self.audit.request(ctx)],
        }
    }

    /// Closes every view's detail pane (switching views, a jump).
    fn close_details(&mut self) {
        self.detail.shown = false;
        self.groups.detail = false;
        self.audit.detail = false;
    }

    /// Jumps to the next (or previous) line satisfying `pred`, from the selection.
    fn jump(&mut self, forward: bool, pred: impl Fn(&LogLine) -> bool) -> bool {
        let Some(cur) = self.selected_index() else {
            return false;
        };
        let len = self.list.len();
        let found = if forward {
            (cur + 1..len).find(|&i| self.list.get(i).is_some_and(&pred))
        } else {
            (0..cur)
                .rev()
                .find(|&i| self.list.get(i).is_some_and(&pred))
        };
        if let Some(i) = found {
            self.follow = false;
            self.select_index(i);
            true
        } else {
            false
        }
    }
}

/// `filter` restricted to lines stamped from `start` on: what the header counts over the range.
fn in_range(filter: &Filter, start: chrono::DateTime<Utc>) -> Result<Filter, FilterError> {
    let since = start.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    filter::parse(&format!("{} since:{since}", filter.source()))
}

impl TabView for LogsTab {
    fn id(&self) -> Tab {
        Tab::Logs
    }

    fn refresh(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        self.refresher.done(ctx.now);
        self.start_engine(ctx);
        let reloaded = self.follow_range(ctx);
        // The counts first: the drain then finds them just asked for and asks no second time.
        let mut fx = if reloaded.is_empty() {
            self.stats_query(ctx)
        } else {
            reloaded
        };
        fx.extend(self.drain(ctx));
        fx.extend(self.want_pages(ctx));
        fx.extend(self.view_query(ctx));
        fx
    }

    fn tick(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        self.poll_export();
        self.prune(ctx);
        let mut fx = Vec::new();
        if self.refresher.due(ctx.now) || (self.uncounted && self.recount.due(ctx.now)) {
            self.refresher.done(ctx.now);
            fx.extend(self.stats_query(ctx));
        }
        if self.view == View::Tail && self.volume_due(ctx.now) {
            fx.extend(self.volume_query(ctx));
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
            LogsData::Count(r) => self.count.set(r),
            LogsData::Volume(r) => self.volume.data.set(r),
            LogsData::Newest(r) => return self.loaded(LoadKind::Newest, r, ctx),
            LogsData::Oldest(r) => return self.loaded(LoadKind::Oldest, r, ctx),
            LogsData::Around(r) => return self.loaded(LoadKind::Around, r, ctx),
            LogsData::Older(r) => return self.loaded(LoadKind::Older, r, ctx),
            LogsData::Newer(r) => return self.loaded(LoadKind::Newer, r, ctx),
            LogsData::Detail(r) => {
                if let Some(said) = self.detail.on_data(r) {
                    self.message = Some(said);
                }
            }
            LogsData::Trace(r) => self.trace.on_data(r),
            LogsData::Groups(r) => self.groups.on_data(r),
            LogsData::Audit(r) => self.audit.on_rows(r),
            LogsData::Mass(r) => self.audit.on_mass(r),
            LogsData::AuditMore(r) => {
                if let Some(said) = self.audit.page_in(r) {
                    self.message = Some(said);
                }
            }
            LogsData::Transition(r) => {
                self.message = Some(GroupsView::on_transition(r));
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
        match self.view {
            View::Audit => {
                self.filter_hint = None;
                self.filter_error = AuditView::check_filter(text);
                return Vec::new();
            }
            View::Groups => {
                self.filter_hint = None;
                self.filter_error = GroupsView::check_filter(text);
                return Vec::new();
            }
            View::Tail | View::Trace => {}
        }
        self.filter_error = filter::parse(text).err().map(|e| (text.to_string(), e));
        self.filter_hint = filter::hint(text);
        Vec::new()
    }

    fn on_filter_submit(&mut self, text: &str, ctx: &TabCtx) -> Vec<Effect> {
        // The audit and groups views filter their own rows; a mistake keeps the previous
        // filter in force.
        let own = match self.view {
            View::Audit => Some(self.audit.on_filter_submit(text, ctx)),
            View::Groups => Some(self.groups.on_filter_submit(text, ctx)),
            View::Tail | View::Trace => None,
        };
        if let Some(r) = own {
            return match r {
                Ok(fx) => {
                    self.filter_error = None;
                    fx
                }
                Err(e) => {
                    self.filter_error = Some(e);
                    Vec::new()
                }
            };
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
                self.goto_from = None;
                let mut fx = self.reload(ctx);
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
        self.close_details();
        self.message = None;
        if self.paused {
            self.set_paused(false);
        }
        self.view = View::Tail;
        let fx = self.on_filter_submit(&jump.filter, ctx);
        if let Some(id) = &jump.trace {
            self.trace.open(id.clone());
            self.view = View::Trace;
        }
        fx
    }

    fn filter(&self) -> &str {
        match self.view {
            View::Audit => self.audit.filter_text(),
            View::Groups => self.groups.filter_text(),
            View::Tail | View::Trace => &self.filter_text,
        }
    }

    fn captures_input(&self) -> bool {
        self.view == View::Groups && self.groups.prompt_open()
    }

    fn on_command(&mut self, name: &str, args: &str, ctx: &TabCtx) -> Option<Vec<Effect>> {
        let note = (!args.trim().is_empty()).then(|| args.trim().to_string());
        match name {
            "export" | "export!" => {
                let path = note.map(std::path::PathBuf::from);
                Some(self.start_export(path, name == "export!", ctx))
            }
            "ack" | "progress" | "resolve" | "ignore" | "reopen" if self.view == View::Groups => {
                let to = groups::verb(name)?;
                Some(self.groups.transition(to, note, ctx))
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
            "goto" | "go" => Some(self.goto(args, ctx)),
            "who-deleted" | "whodeleted" => {
                let mut words = args.split_whitespace();
                match (words.next(), words.next(), words.next()) {
                    (Some(table), Some(id), None) => {
                        self.view = View::Audit;
                        self.close_details();
                        let mode = AuditMode::WhoDeletedIn(table.into(), id.into());
                        Some(self.audit.show(mode, ctx))
                    }
                    _ => {
                        self.message = Some((
                            "usage: :who-deleted TABLE ID (e.g. :who-deleted public.orders 42)"
                                .into(),
                            Role::Error,
                        ));
                        Some(Vec::new())
                    }
                }
            }
            "trace" => {
                self.trace.id = args.trim().to_string();
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
        self.key_bindings()
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
            View::Trace => self.trace.draw(f, body, ctx),
            View::Groups => self.groups.draw(f, body, ctx),
            View::Audit => self.audit.draw(f, body, ctx),
        }
        crate::tui::widgets::render(f, Paragraph::new(self.note_line(theme)), note);
    }
}

fn level_role(level: Level) -> Role {
    match level {
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
