//! Performance tab: a sortable endpoint table (p50/p95/p99 from the rollups' histograms, rps,
//! error %, a request sparkline, the regression status), the latency chart of the selected
//! endpoint, an error heatmap (time x endpoint, shade characters so it reads without colour),
//! slow requests and slow queries. Enter drills down: endpoint -> its slowest requests -> the
//! request's trace, shown by the Logs tab (a cross-tab jump). `x` recomputes the selected row
//! exactly from raw rows.
//!
//! One file: the table, chart, heatmap and drill-down share the selected endpoint and its sort;
//! splitting them into components as the Logs and Alerts tabs are is the next step when the tab
//! grows.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph, Row};
use ratatui::Frame;

use crate::config::Config;
use crate::query::perf::{
    self, EndpointKey, EndpointStat, HeatCell, LatencyPoint, Regression, RegressionStatus,
    SlowQuery, SlowRequest,
};
use crate::sanitize::sanitize;
use crate::tui::keymap::Action;
use crate::tui::msg::{Data, Effect, Jump, PerfData, QueryRequest, Sparks, Tab};
use crate::tui::theme::{Role, Theme};
use crate::tui::view::{Binding, Cursor, DrawCtx, Panel, Refresher, TabCtx, TabView};
use crate::tui::widgets::{
    draw_note, draw_table_panel, fmt_count, fmt_ms, fmt_pct, framed, row_style, spark_text,
    truncate, visible_page, Columns,
};

/// Requests at or over this are "slow" in the slow-requests panel.
pub const SLOW_REQUEST_MS: f64 = 1000.0;
/// Queries at or over this are "slow" in the slow-queries panel.
pub const SLOW_QUERY_MS: f64 = 500.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Overview,
    Slow,
}

/// Where Enter on a slow request leads: its trace in the Logs tab (every log line, request,
/// query and audit event under that id, as a waterfall), with the tail filtered to the trace.
pub fn trace_jump(r: &SlowRequest) -> Option<Jump> {
    let id = r.trace_id.as_deref().filter(|t| !t.is_empty())?;
    Some(Jump {
        tab: Some(Tab::Logs),
        filter: crate::filter::field_term("trace", id),
        trace: Some(id.to_string()),
        range: None,
        note: format!("trace of the {} ms request", r.duration_ms.round()),
    })
}

/// Where the drill-down stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    Top,
    Endpoint(EndpointKey),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    P99,
    P95,
    P50,
    Rps,
    Errors,
    Name,
}

impl SortBy {
    fn next(self) -> SortBy {
        match self {
            SortBy::P99 => SortBy::P95,
            SortBy::P95 => SortBy::P50,
            SortBy::P50 => SortBy::Rps,
            SortBy::Rps => SortBy::Errors,
            SortBy::Errors => SortBy::Name,
            SortBy::Name => SortBy::P99,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SortBy::P99 => "p99",
            SortBy::P95 => "p95",
            SortBy::P50 => "p50",
            SortBy::Rps => "rps",
            SortBy::Errors => "err%",
            SortBy::Name => "name",
        }
    }
}

pub struct PerfTab {
    pub view: View,
    pub level: Vec<Level>,
    pub sort: SortBy,
    pub descending: bool,
    pub stats: Panel<Vec<EndpointStat>>,
    pub regressions: Panel<Vec<Regression>>,
    pub sparks: Panel<Sparks>,
    pub heat: Panel<Vec<HeatCell>>,
    pub series: Panel<(EndpointKey, Vec<LatencyPoint>)>,
    pub slow_requests: Panel<Vec<SlowRequest>>,
    pub slow_queries: Panel<Vec<SlowQuery>>,
    pub drill: Panel<(EndpointKey, Vec<SlowRequest>)>,
    /// Rows recomputed exactly from raw rows (`x`), shown instead of the rollup figures.
    pub exact: HashMap<EndpointKey, EndpointStat>,
    pub exact_error: Option<String>,
    pub cursor: Cursor,
    pub slow_cursor: Cursor,
    pub drill_cursor: Cursor,
    filter: String,
    refresher: Refresher,
    window: (DateTime<Utc>, DateTime<Utc>, Duration),
}

impl PerfTab {
    pub fn new(_cfg: &Config) -> PerfTab {
        let now = Utc::now();
        PerfTab {
            view: View::Overview,
            level: vec![Level::Top],
            sort: SortBy::P99,
            descending: true,
            stats: Panel::default(),
            regressions: Panel::default(),
            sparks: Panel::default(),
            heat: Panel::default(),
            series: Panel::default(),
            slow_requests: Panel::default(),
            slow_queries: Panel::default(),
            drill: Panel::default(),
            exact: HashMap::new(),
            exact_error: None,
            cursor: Cursor::default(),
            slow_cursor: Cursor::default(),
            drill_cursor: Cursor::default(),
            filter: String::new(),
            refresher: Refresher::every(10),
            window: (now - Duration::hours(1), now, Duration::minutes(1)),
        }
    }

    fn level(&self) -> &Level {
        self.level.last().unwrap_or(&Level::Top)
    }

    /// The endpoint rows as shown: filtered, then sorted.
    pub fn rows(&self) -> Vec<&EndpointStat> {
        let f = self.filter.to_lowercase();
        let mut rows: Vec<&EndpointStat> = self
            .stats
            .data
            .iter()
            .flatten()
            .filter(|s| f.is_empty() || label(&s.key).to_lowercase().contains(&f))
            .collect();
        let key = |s: &EndpointStat| -> f64 {
            match self.sort {
                SortBy::P99 => s.p99_ms.unwrap_or(0.0),
                SortBy::P95 => s.p95_ms.unwrap_or(0.0),
                SortBy::P50 => s.p50_ms.unwrap_or(0.0),
                SortBy::Rps => s.rps,
                SortBy::Errors => s.error_pct.unwrap_or(0.0),
                SortBy::Name => 0.0,
            }
        };
        rows.sort_by(|a, b| {
            let ord = if self.sort == SortBy::Name {
                a.key.cmp(&b.key)
            } else {
                key(a).total_cmp(&key(b)).then_with(|| b.key.cmp(&a.key))
            };
            if self.descending && self.sort != SortBy::Name {
                ord.reverse()
            } else {
                ord
            }
        });
        rows
    }

    pub fn selected(&self) -> Option<&EndpointKey> {
        self.rows().get(self.cursor.selected).map(|s| &s.key)
    }

    /// Puts the endpoint cursor back on `before` after the rows changed order or content.
    fn keep_selected(&mut self, before: Option<&EndpointKey>) {
        let keys: Vec<EndpointKey> = self.rows().iter().map(|s| s.key.clone()).collect();
        self.cursor.follow(before, keys);
    }

    fn window(ctx: &TabCtx) -> (DateTime<Utc>, DateTime<Utc>, Duration) {
        (ctx.range.start(ctx.now), ctx.now, ctx.range.bucket())
    }

    fn requests(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        self.refresher.done(ctx.now);
        self.window = Self::window(ctx);
        let (from, to, step) = self.window;
        let mut fx = Vec::new();
        let db = ctx.db.clone();
        fx.push(QueryRequest::new(
            "stats",
            async move { Ok(perf::endpoint_stats(&db.read, from, to).await?) },
            PerfData::Stats,
        ));
        let (db, now) = (ctx.db.clone(), ctx.now);
        fx.push(QueryRequest::new(
            "regressions",
            async move { Ok(perf::regressions(&db.read, now).await?) },
            PerfData::Regressions,
        ));
        let db = ctx.db.clone();
        fx.push(QueryRequest::new(
            "sparks",
            async move { Ok(perf::request_series(&db.read, from, to, step).await?) },
            PerfData::Sparks,
        ));
        let db = ctx.db.clone();
        fx.push(QueryRequest::new(
            "heat",
            async move { Ok(perf::error_heatmap(&db.read, from, to, step).await?) },
            PerfData::Heat,
        ));
        let db = ctx.db.clone();
        fx.push(QueryRequest::new(
            "slow_requests",
            async move {
                Ok(perf::slow_requests(&db.read, SLOW_REQUEST_MS, from, to, 200, None).await?)
            },
            PerfData::SlowRequests,
        ));
        let db = ctx.db.clone();
        fx.push(QueryRequest::new(
            "slow_queries",
            async move { Ok(perf::slow_queries(&db.read, SLOW_QUERY_MS, from, to, 100).await?) },
            PerfData::SlowQueries,
        ));
        for p in [&mut self.stats.loading, &mut self.heat.loading] {
            *p = true;
        }
        let mut effects: Vec<Effect> = fx.into_iter().map(Effect::Query).collect();
        effects.extend(self.series_request(ctx));
        effects.extend(self.level_request(ctx));
        effects
    }

    /// The latency chart of the selected endpoint.
    fn series_request(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        let Some(key) = self.selected().cloned() else {
            return Vec::new();
        };
        let (from, to, step) = self.window;
        let db = ctx.db.clone();
        self.series.loading = true;
        vec![Effect::Query(QueryRequest::new(
            "series",
            async move {
                let points = perf::latency_series(&db.read, &key, from, to, step).await?;
                Ok((key, points))
            },
            PerfData::Series,
        ))]
    }

    /// The data of the drill-down level on screen.
    fn level_request(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        let (from, to, _) = self.window;
        let db = ctx.db.clone();
        match self.level().clone() {
            Level::Top => Vec::new(),
            Level::Endpoint(key) => {
                self.drill.loading = true;
                vec![Effect::Query(QueryRequest::new(
                    "drill",
                    async move {
                        let rows =
                            perf::slow_requests(&db.read, 0.0, from, to, 100, Some(&key)).await?;
                        Ok((key, rows))
                    },
                    PerfData::Drill,
                ))]
            }
        }
    }

    fn toggle_exact(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        let Some(key) = self.selected().cloned() else {
            return Vec::new();
        };
        if self.exact.remove(&key).is_some() {
            return Vec::new();
        }
        let (from, to, _) = self.window;
        let db = ctx.db.clone();
        self.exact_error = None;
        vec![Effect::Query(QueryRequest::new(
            "exact",
            async move {
                let stat = perf::endpoint_exact(&db.read, &key, from, to).await?;
                Ok((key, stat))
            },
            PerfData::Exact,
        ))]
    }

    fn drill_rows(&self) -> &[SlowRequest] {
        match (self.level(), &self.drill.data) {
            (Level::Endpoint(k), Some((dk, rows))) if k == dk => rows,
            _ => &[],
        }
    }

    fn select(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        let request = match (self.level(), self.view) {
            (Level::Top, View::Overview) => {
                let Some(key) = self.selected().cloned() else {
                    return Vec::new();
                };
                self.drill_cursor = Cursor::default();
                self.level.push(Level::Endpoint(key));
                return self.level_request(ctx);
            }
            (Level::Top, View::Slow) => self
                .slow_requests
                .data
                .as_ref()
                .and_then(|v| v.get(self.slow_cursor.selected)),
            (Level::Endpoint(_), _) => self.drill_rows().get(self.drill_cursor.selected),
        };
        match request {
            Some(r) => match trace_jump(r) {
                Some(j) => vec![Effect::Jump(j)],
                None => vec![Effect::Say {
                    text: "this request has no trace id".into(),
                    error: false,
                }],
            },
            None => Vec::new(),
        }
    }

    fn regression_of(&self, key: &EndpointKey) -> Option<&Regression> {
        self.regressions
            .data
            .as_ref()
            .and_then(|v| v.iter().find(|r| &r.key == key))
    }

    fn spark_of(&self, key: &EndpointKey) -> Vec<u64> {
        let (from, to, step) = self.window;
        let s = step.num_seconds().max(1);
        let first = from.timestamp().div_euclid(s);
        let n = ((to.timestamp().div_euclid(s) - first) + 1).clamp(1, 2000) as usize;
        let mut out = vec![0u64; n];
        for (k, b, count) in self.sparks.data.iter().flatten() {
            if k == key {
                let i = b.timestamp().div_euclid(s) - first;
                if (0..n as i64).contains(&i) {
                    out[i as usize] = (*count).max(0) as u64;
                }
            }
        }
        out
    }

    fn draw_top(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let [table_area, bottom] =
            Layout::vertical([Constraint::Percentage(50), Constraint::Min(6)]).areas(area);
        self.draw_table(f, table_area, ctx);
        let [chart_area, heat_area] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(bottom);
        self.draw_chart(f, chart_area, ctx);
        self.draw_heatmap(f, heat_area, ctx);
    }

    fn draw_table(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let mut title = format!(
            "Endpoints {} · sort {} {} · s sort · x exact",
            ctx.range.label(),
            self.sort.label(),
            if self.descending { "↓" } else { "↑" }
        );
        if let Some(e) = &self.exact_error {
            title = format!("{title} · exact: {e}");
        }
        let inner = framed(f, area, &title, true, theme);
        let rows = self.rows();
        const COLUMNS: Columns = Columns {
            header: &[
                "Endpoint", "rps", "p50", "p95", "p99", "err%", "requests", "vs 23h",
            ],
            widths: &[14, 6, 6, 6, 6, 6, 8, 7],
            flexible: 0,
            header_role: Role::Header,
            wants: &[],
        };
        let note = self
            .stats
            .note(rows.is_empty(), ("no requests in this range", Role::Dim));
        draw_table_panel(f, inner, theme, &COLUMNS, note, |visible| {
            visible_page(&rows, self.cursor.selected, visible)
                .map(|(i, s)| self.endpoint_row(i, s, theme))
                .collect()
        });
    }

    /// One row of the endpoint table (`i`: its index, to mark the selected one).
    fn endpoint_row(&self, i: usize, s: &EndpointStat, theme: &Theme) -> Row<'static> {
        let spark_w = 8usize;
        let exact = self.exact.get(&s.key);
        let shown = exact.unwrap_or(s);
        let sel = i == self.cursor.selected;
        let style = row_style(sel, theme);
        let spark = spark_text(&self.spark_of(&s.key), spark_w);
        let (status, role) = match self.regression_of(&s.key).map(|r| r.status) {
            Some(RegressionStatus::Alert) => ("ALERT", Role::Error),
            Some(RegressionStatus::Warning) => ("WARN", Role::Warn),
            Some(RegressionStatus::Ok) => ("OK", Role::Ok),
            None => ("-", Role::Dim),
        };
        let name = format!(
            "{}{}",
            if exact.is_some() { "=" } else { "" },
            label(&s.key)
        );
        Row::new(vec![
            Span::raw(name),
            Span::raw(fmt_count(shown.rps)),
            Span::raw(shown.p50_ms.map(fmt_ms).unwrap_or_default()),
            Span::raw(shown.p95_ms.map(fmt_ms).unwrap_or_default()),
            Span::raw(shown.p99_ms.map(fmt_ms).unwrap_or_default()),
            Span::styled(
                shown
                    .error_pct
                    .map(|p| fmt_pct(p / 100.0))
                    .unwrap_or_default(),
                if shown.error_pct.unwrap_or(0.0) >= 5.0 && !sel {
                    theme.style(Role::Error)
                } else {
                    style
                },
            ),
            Span::styled(spark, if sel { style } else { theme.style(Role::Spark) }),
            Span::styled(status, if sel { style } else { theme.style(role) }),
        ])
        .style(style)
    }

    fn draw_chart(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let selected = self.selected();
        let title = match selected {
            Some(k) => format!("Latency {}", label(k)),
            None => "Latency".into(),
        };
        let inner = framed(
            f,
            area,
            &truncate(&title, area.width.saturating_sub(4) as usize),
            false,
            theme,
        );
        let points = match (&self.series.data, selected) {
            (Some((k, p)), Some(sel)) if k == sel => p,
            _ => {
                let (msg, role) = self
                    .series
                    .placeholder()
                    .unwrap_or(("loading…".into(), Role::Dim));
                draw_note(f, inner, &msg, role, theme);
                return;
            }
        };
        if points.is_empty() {
            draw_note(f, inner, "no requests in this range", Role::Dim, theme);
            return;
        }
        let (from, _, step) = self.window;
        let x = |t: DateTime<Utc>| (t - from).num_seconds() as f64 / step.num_seconds() as f64;
        let line = |get: fn(&LatencyPoint) -> Option<f64>| -> Vec<(f64, f64)> {
            points
                .iter()
                .filter_map(|p| get(p).map(|v| (x(p.bucket), v)))
                .collect()
        };
        let (p50, p95, p99) = (line(|p| p.p50_ms), line(|p| p.p95_ms), line(|p| p.p99_ms));
        let max_y = p99.iter().chain(&p95).map(|p| p.1).fold(1.0f64, f64::max);
        let max_x = x(self.window.1).max(1.0);
        let chart = Chart::new(vec![
            Dataset::default()
                .name("p50")
                .marker(Marker::Dot)
                .graph_type(GraphType::Line)
                .style(theme.style(Role::ChartSecondary))
                .data(&p50),
            Dataset::default()
                .name("p95")
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(theme.style(Role::ChartPrimary))
                .data(&p95),
            Dataset::default()
                .name("p99")
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(theme.style(Role::Warn))
                .data(&p99),
        ])
        .x_axis(
            Axis::default()
                .bounds([0.0, max_x])
                .style(theme.style(Role::Dim))
                .labels([
                    Span::raw(ctx.fmt_time(from, "%H:%M")),
                    Span::raw(ctx.fmt_time(self.window.1, "%H:%M")),
                ]),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, max_y])
                .style(theme.style(Role::Dim))
                .labels([Span::raw("0"), Span::raw(fmt_ms(max_y))]),
        );
        crate::tui::widgets::render(f, chart, inner);
    }

    fn draw_heatmap(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let inner = framed(f, area, "Errors ·<1% ░ ▒≥1% ▓≥5% █≥20%", false, theme);
        if let Some((msg, role)) = self.heat.placeholder() {
            draw_note(f, inner, &msg, role, theme);
            return;
        }
        let cells = self.heat.data.as_deref().unwrap_or(&[]);
        let (from, to, step) = self.window;
        let s = step.num_seconds().max(1);
        let first = from.timestamp().div_euclid(s);
        let total = (to.timestamp().div_euclid(s) - first + 1).max(1);
        let label_w = (inner.width / 3).clamp(6, 16) as usize;
        let cols = (inner.width as usize).saturating_sub(label_w + 1).max(1) as i64;
        // The newest `cols` buckets when the range has more than fit.
        let shown_first = first + (total - cols).max(0);
        let mut by_key: HashMap<&EndpointKey, HashMap<i64, (i64, i64)>> = HashMap::new();
        for c in cells {
            by_key
                .entry(&c.key)
                .or_default()
                .insert(c.bucket.timestamp().div_euclid(s), (c.requests, c.errors));
        }
        let mut lines = Vec::new();
        for st in self.rows().iter().take(inner.height as usize) {
            let row = by_key.get(&st.key);
            let mut text = String::new();
            for i in 0..cols.min(total) {
                let b = shown_first + i;
                text.push(match row.and_then(|r| r.get(&b)) {
                    Some(&(n, e)) if n > 0 => shade(e as f64 / n as f64),
                    _ => ' ',
                });
            }
            lines.push(Line::from(vec![
                Span::styled(
                    format!("{:<w$} ", truncate(&label(&st.key), label_w), w = label_w),
                    theme.style(Role::Dim),
                ),
                Span::styled(text, theme.style(Role::Error)),
            ]));
        }
        if lines.is_empty() {
            draw_note(f, inner, "no requests in this range", Role::Dim, theme);
            return;
        }
        crate::tui::widgets::render(f, Paragraph::new(lines), inner);
    }

    fn draw_slow(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let [top, bottom] =
            Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(area);
        let inner = framed(
            f,
            top,
            &format!("Slow requests ≥ {} · Enter trace", fmt_ms(SLOW_REQUEST_MS)),
            true,
            theme,
        );
        let rows = self.slow_requests.data.as_deref().unwrap_or(&[]);
        let selected = self.slow_cursor.selected;
        self.draw_requests(f, inner, &self.slow_requests, rows, selected, ctx);
        let inner = framed(
            f,
            bottom,
            &format!("Slow queries ≥ {}", fmt_ms(SLOW_QUERY_MS)),
            false,
            theme,
        );
        let qs = self.slow_queries.data.as_deref().unwrap_or(&[]);
        const COLUMNS: Columns = Columns {
            header: &["service", "query", "calls", "avg", "max", "rows/s"],
            widths: &[10, 16, 6, 7, 7, 7],
            flexible: 1,
            header_role: Role::Header,
            wants: &[24],
        };
        let note = self
            .slow_queries
            .note(qs.is_empty(), ("no slow queries in this range", Role::Ok));
        draw_table_panel(f, inner, theme, &COLUMNS, note, |page| {
            qs.iter()
                .take(page)
                .map(|q| {
                    let text = q.sample.as_deref().unwrap_or(&q.fingerprint);
                    Row::new(vec![
                        sanitize(&q.service).into_owned(),
                        sanitize(text).into_owned(),
                        fmt_count(q.calls as f64),
                        q.avg_ms.map(fmt_ms).unwrap_or_default(),
                        q.max_ms.map(fmt_ms).unwrap_or_default(),
                        q.rows_per_s.map(fmt_count).unwrap_or_default(),
                    ])
                })
                .collect()
        });
    }

    /// A list of requests (slowest first) with the selected one marked; `source` is the panel
    /// they come from (its loading/error note shows until it has data).
    fn draw_requests<T: 'static>(
        &self,
        f: &mut Frame,
        area: Rect,
        source: &Panel<T>,
        rows: &[SlowRequest],
        selected: usize,
        ctx: &DrawCtx,
    ) {
        let theme = ctx.theme;
        const COLUMNS: Columns = Columns {
            header: &["time", "endpoint", "st", "duration", "trace"],
            widths: &[8, 14, 3, 8, 16],
            flexible: 1,
            header_role: Role::Header,
            wants: &[0, 40, 0, 0, 32],
        };
        let note = source.note(rows.is_empty(), ("no requests", Role::Ok));
        draw_table_panel(f, area, theme, &COLUMNS, note, |visible| {
            visible_page(rows, selected, visible)
                .map(|(i, r)| {
                    Row::new(vec![
                        ctx.fmt_time(r.ts, "%H:%M:%S"),
                        format!("{} {}", sanitize(&r.service), sanitize(&r.route)),
                        r.status.to_string(),
                        fmt_ms(r.duration_ms),
                        sanitize(r.trace_id.as_deref().unwrap_or("-")).into_owned(),
                    ])
                    .style(row_style(i == selected, theme))
                })
                .collect()
        });
    }

    fn draw_drill(&self, f: &mut Frame, area: Rect, key: &EndpointKey, ctx: &DrawCtx) {
        let inner = framed(
            f,
            area,
            &format!("{} · slowest requests · Enter trace · Esc back", label(key)),
            true,
            ctx.theme,
        );
        let rows = self.drill_rows();
        self.draw_requests(f, inner, &self.drill, rows, self.drill_cursor.selected, ctx);
    }
}

/// "service METHOD /route" (with "→" for outbound calls), sanitized for the terminal.
fn label(key: &EndpointKey) -> String {
    let arrow = if key.direction == "outbound" {
        "→"
    } else {
        ""
    };
    format!("{}{arrow} {}", sanitize(&key.service), sanitize(&key.route))
}

/// Error-rate shade: readable without colour.
pub fn shade(ratio: f64) -> char {
    if ratio >= 0.20 {
        '█'
    } else if ratio >= 0.05 {
        '▓'
    } else if ratio >= 0.01 {
        '▒'
    } else if ratio > 0.0 {
        '░'
    } else {
        '·'
    }
}

impl TabView for PerfTab {
    fn id(&self) -> Tab {
        Tab::Perf
    }

    fn refresh(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        self.requests(ctx)
    }

    fn refresher(&mut self) -> Option<&mut Refresher> {
        Some(&mut self.refresher)
    }

    fn on_action(&mut self, action: Action, ctx: &TabCtx) -> Vec<Effect> {
        match action {
            Action::Select => return self.select(ctx),
            Action::Back => {
                if self.level.len() > 1 {
                    self.level.pop();
                }
                return Vec::new();
            }
            _ => {}
        }
        match (self.level().clone(), self.view) {
            (Level::Top, View::Overview) => {
                let before = self.selected().cloned();
                let len = self.rows().len();
                self.cursor.apply(action, len, 5);
                if self.selected().cloned() != before {
                    return self.series_request(ctx);
                }
            }
            (Level::Top, View::Slow) => {
                let len = self.slow_requests.data.as_ref().map_or(0, |v| v.len());
                self.slow_cursor.apply(action, len, 5);
            }
            (Level::Endpoint(_), _) => {
                let len = self.drill_rows().len();
                self.drill_cursor.apply(action, len, 5);
            }
        }
        Vec::new()
    }

    fn on_key(&mut self, key: &KeyEvent, ctx: &TabCtx) -> Option<Vec<Effect>> {
        match key.code {
            KeyCode::Char('s') => {
                let before = self.selected().cloned();
                self.sort = self.sort.next();
                self.keep_selected(before.as_ref());
                Some(Vec::new())
            }
            KeyCode::Char('S') => {
                let before = self.selected().cloned();
                self.descending = !self.descending;
                self.keep_selected(before.as_ref());
                Some(Vec::new())
            }
            KeyCode::Char('x') if *self.level() == Level::Top && self.view == View::Overview => {
                Some(self.toggle_exact(ctx))
            }
            KeyCode::Char('v') => {
                self.view = match self.view {
                    View::Overview => View::Slow,
                    View::Slow => View::Overview,
                };
                self.level.truncate(1);
                Some(Vec::new())
            }
            _ => None,
        }
    }

    fn on_data(&mut self, data: Data, ctx: &TabCtx) -> Vec<Effect> {
        let Data::Perf(data) = data else {
            return Vec::new();
        };
        match data {
            PerfData::Stats(r) => {
                let before = self.selected().cloned();
                self.stats.set(r);
                // Exact rows were computed for the previous window; drop them with it.
                self.exact.clear();
                self.keep_selected(before.as_ref());
                let have = self.series.data.as_ref().map(|(k, _)| k.clone());
                if self.selected().cloned() != before || have.as_ref() != self.selected() {
                    return self.series_request(ctx);
                }
            }
            PerfData::Regressions(r) => self.regressions.set(r),
            PerfData::Sparks(r) => self.sparks.set(r),
            PerfData::Heat(r) => self.heat.set(r),
            PerfData::Series(r) => self.series.set(r),
            PerfData::SlowRequests(r) => {
                let before = self
                    .slow_requests
                    .data
                    .as_ref()
                    .and_then(|v| v.get(self.slow_cursor.selected))
                    .cloned();
                self.slow_requests.set(r);
                let rows = self.slow_requests.data.iter().flatten();
                self.slow_cursor.follow(before.as_ref(), rows.cloned());
            }
            PerfData::SlowQueries(r) => self.slow_queries.set(r),
            PerfData::Drill(r) => {
                let before = self.drill_rows().get(self.drill_cursor.selected).cloned();
                self.drill.set(r);
                let rows: Vec<SlowRequest> = self.drill_rows().to_vec();
                self.drill_cursor.follow(before.as_ref(), rows);
            }
            PerfData::Exact(r) => match r {
                Ok((key, Some(stat))) => {
                    self.exact.insert(key, stat);
                }
                Ok((_, None)) => self.exact_error = Some("no raw rows in range".into()),
                Err(e) => self.exact_error = Some(e),
            },
        }
        Vec::new()
    }

    fn on_filter(&mut self, text: &str, ctx: &TabCtx) -> Vec<Effect> {
        let before = self.selected().cloned();
        self.filter = text.to_string();
        self.keep_selected(before.as_ref());
        if self.selected().cloned() != before {
            return self.series_request(ctx);
        }
        Vec::new()
    }

    fn filter(&self) -> &str {
        &self.filter
    }

    fn bindings(&self) -> Vec<Binding> {
        vec![
            Binding {
                keys: "enter",
                help: "drill down (endpoint → requests → its trace in the Logs tab)",
            },
            Binding {
                keys: "esc",
                help: "back up one level",
            },
            Binding {
                keys: "s/S",
                help: "sort column / reverse",
            },
            Binding {
                keys: "x",
                help: "recompute the selected row exactly from raw rows",
            },
            Binding {
                keys: "v",
                help: "endpoints / slow requests and queries",
            },
            Binding {
                keys: "/",
                help: "filter endpoints",
            },
        ]
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        match (self.level(), self.view) {
            (Level::Endpoint(k), _) => self.draw_drill(f, area, k, ctx),
            (Level::Top, View::Overview) => self.draw_top(f, area, ctx),
            (Level::Top, View::Slow) => self.draw_slow(f, area, ctx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shades_rise_with_error_rate() {
        assert_eq!(shade(0.0), '·');
        assert_eq!(shade(0.001), '░');
        assert_eq!(shade(0.01), '▒');
        assert_eq!(shade(0.05), '▓');
        assert_eq!(shade(0.5), '█');
    }
}
