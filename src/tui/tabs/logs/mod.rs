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
//! One file per view beside this one (`tail`, `trace`, `groups`, `audit`), plus the detail
//! pane, the export and the key dispatch; each adds its part of `LogsTab` (its queries, its data
//! handling, its draw). This file keeps what they share: the tab's state, the filter and range,
//! the header's counts and the `TabView` dispatch to the view on screen. It is longer than 600
//! lines because that dispatch (data, commands, bindings, draw) is one `impl` block.

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
mod tail;
mod trace;

pub use detail::detail_lines;
use detail::kv;
use export::Export;
use groups::GROUP_KEYS;
use history::LoadKind;
pub use list::LogList;
use list::{PAGE, PREFETCH};
use tail::{Engine, StreamRate, LIVE_WITHIN};

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
    /// The rows the audit filter line selects, newest first, paged.
    Trail,
    WhoDeleted(String),
    /// `:who-deleted TABLE ID`.
    WhoDeletedIn(String, String),
    MassDeletes(i64),
}

pub struct LogsTab {
    capacity: usize,
    floor_margin: Duration,
    saved: std::collections::BTreeMap<String, String>,
    engine: Option<Engine>,
    /// The list's lines: a window onto the range's history, joined by the tail.
    pub list: LogList,
    /// `:goto` to an instant before the range moves the list's start back to that day.
    goto_from: Option<chrono::DateTime<Utc>>,
    /// The header's count of what the range and filter hold (exact, or `~N` estimated).
    pub count: Panel<crate::query::history::HeaderCount>,
    /// The volume histogram above the list (`i`).
    pub volume: histogram::VolumeView,
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
    /// The audit view's filter line (`filter::audit`), applied on Enter.
    audit_filter: crate::filter::audit::AuditFilter,
    /// Whether the last page of the trail came back full (more rows to page to).
    audit_more: bool,
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
            list: LogList::new(cfg.ui.tail_buffer.max(100)),
            goto_from: None,
            count: Panel::default(),
            volume: histogram::VolumeView::default(),
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
            audit_filter: crate::filter::audit::AuditFilter::default(),
            audit_more: false,
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

    fn view_query(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        let db = ctx.db.clone();
        match self.view {
            View::Tail => Vec::new(),
            View::Trace => {
                let id = self.trace_id.clone();
                self.trace.loading = true;
                vec![Effect::Query(QueryRequest::new(
                    "trace",
                    async move { Ok(crate::query::trace::trace(&db.read, &id, 2000).await?) },
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
                    let f = self.audit_filter.clone();
                    vec![Effect::Query(QueryRequest::new(
                        "audit",
                        async move {
                            Ok(crate::query::audit::search(&db.read, &f, None, AUDIT_PAGE).await?)
                        },
                        LogsData::Audit,
                    ))]
                }
                AuditMode::WhoDeletedIn(table, id) => {
                    self.audit.loading = true;
                    vec![Effect::Query(QueryRequest::new(
                        "audit",
                        async move {
                            Ok(
                                crate::query::audit::who_deleted_in(&db.read, &table, &id, 500)
                                    .await?,
                            )
                        },
                        LogsData::Audit,
                    ))]
                }
                AuditMode::WhoDeleted(what) => {
                    self.audit.loading = true;
                    vec![Effect::Query(QueryRequest::new(
                        "audit",
                        async move { Ok(crate::query::audit::who_deleted(&db.read, &what, 500).await?) },
                        LogsData::Audit,
                    ))]
                }
                AuditMode::MassDeletes(n) => {
                    self.mass.loading = true;
                    let since = ctx.now - ctx.range.duration();
                    vec![Effect::Query(QueryRequest::new(
                        "mass",
                        async move {
                            Ok(crate::query::audit::mass_deletes(
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

/// Rows per page of the audit trail.
const AUDIT_PAGE: i64 = 200;

/// The audit view's quick forms: `deleted:X` (who deleted X), `mass` / `mass:N` (actors with
/// more than N deletes in 5 minutes). None: the filter line proper.
fn audit_quick(text: &str) -> Option<AuditMode> {
    let t = text.trim();
    if let Some(x) = t.strip_prefix("deleted:") {
        return Some(AuditMode::WhoDeleted(x.trim().to_string()));
    }
    let n = t.strip_prefix("mass")?;
    let n = n.strip_prefix(':').unwrap_or(n).trim();
    if n.is_empty() {
        return Some(AuditMode::MassDeletes(10));
    }
    n.parse().ok().map(AuditMode::MassDeletes)
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
                self.audit_more = self.audit_mode == AuditMode::Trail
                    && r.as_ref().is_ok_and(|rows| rows.len() as i64 >= AUDIT_PAGE);
                self.audit.set(r);
                self.audit_cursor.follow(had.as_ref(), ids(&self.audit));
            }
            LogsData::Mass(r) => self.mass.set(r),
            LogsData::AuditMore(r) => self.audit_page_in(r),
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
            self.filter_hint = None;
            self.filter_error = audit_quick(text)
                .is_none()
                .then(|| crate::filter::audit::parse_audit(text).err())
                .flatten()
                .map(|e| (text.to_string(), e));
            return Vec::new();
        }
        self.filter_error = filter::parse(text).err().map(|e| (text.to_string(), e));
        self.filter_hint = filter::hint(text);
        Vec::new()
    }

    fn on_filter_submit(&mut self, text: &str, ctx: &TabCtx) -> Vec<Effect> {
        if self.view == View::Audit {
            // The audit view's quick filters: `deleted:X`, `mass` / `mass:N`; empty: the trail.
            // Otherwise the filter line over the trail (`filter::audit`).
            self.audit_mode = match audit_quick(text) {
                Some(mode) => mode,
                None => match crate::filter::audit::parse_audit(text) {
                    Ok(f) => {
                        self.filter_error = None;
                        self.audit_filter = f;
                        self.audit_cursor = Cursor::default();
                        AuditMode::Trail
                    }
                    Err(e) => {
                        self.filter_error = Some((text.to_string(), e));
                        return Vec::new();
                    }
                },
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
        if self.view == View::Audit {
            return self.audit_filter.source();
        }
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
            "goto" | "go" => Some(self.goto(args, ctx)),
            "who-deleted" | "whodeleted" => {
                let mut words = args.split_whitespace();
                match (words.next(), words.next(), words.next()) {
                    (Some(table), Some(id), None) => {
                        self.view = View::Audit;
                        self.detail = false;
                        self.audit_cursor = Cursor::default();
                        self.audit_mode = AuditMode::WhoDeletedIn(table.into(), id.into());
                        Some(self.view_query(ctx))
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
                keys: "y",
                help: "copy the line / trace id / group / audit event (OSC 52)",
            },
            Binding {
                keys: "i",
                help: "volume histogram (←/→ a bucket, enter: the list there)",
            },
            Binding {
                keys: "g",
                help: "the range's first line (paging through all of history)",
            },
            Binding {
                keys: ":goto TIME",
                help: "lines at 2026-12-01 14:00, 14:00 or 2h (ago)",
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

impl LogsTab {}

impl LogsTab {
    fn status_line(&self, ctx: &DrawCtx) -> Line<'static> {
        let theme = ctx.theme;
        let mut spans = Vec::new();
        // LIVE means "what you see is happening now": following, and the newest line is
        // recent. Following a stream of old lines (a backfill, an import, a quiet service)
        // says how old the newest line is instead.
        let newest_age = self.list.last().map(|l| ctx.now - l.ts);
        if self.paused {
            spans.push(Span::styled(
                format!(" PAUSED ({} waiting) ", fmt_count(self.waiting as f64)),
                theme.style(Role::Warn),
            ));
        } else if self.list.newer_left {
            // Back in history, past what the list holds of the newest lines.
            let aside = self.list.waiting_aside();
            let new = if aside > 0 {
                format!("· {} new ", fmt_count(aside as f64))
            } else {
                String::new()
            };
            spans.push(Span::styled(
                format!(" HISTORY {new}(G: newest) "),
                theme.style(Role::Accent),
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
        // Counts over exactly what the list pages through: the filter's lines inside the
        // list's window (the list, these counts and the export use the same condition).
        if let Some(s) = &self.stats.data {
            let total = match &self.count.data {
                Some(c) if c.estimated => format!("~{}", fmt_count(c.lines as f64)),
                Some(c) => fmt_count(c.lines as f64),
                None => fmt_count(s.in_range as f64),
            };
            spans.push(Span::styled(
                format!(
                    " {total} in {} · E{} W{} I{} ",
                    self.range_label(ctx),
                    fmt_count((s.by_level[4] + s.by_level[5]) as f64),
                    fmt_count(s.by_level[3] as f64),
                    fmt_count(s.by_level[2] as f64),
                ),
                theme.style(Role::Dim),
            ));
        }
        if self.list.late() > 0 {
            spans.push(Span::styled(
                format!(" {} late ", fmt_count(self.list.late() as f64)),
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
                fmt_count(self.list.len() as f64),
                fmt_count(self.list.capacity() as f64)
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
}
