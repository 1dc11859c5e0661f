//! KPI tab: counters with a trend sparkline and the change against the previous period, a
//! requests/errors chart over the range, the top failing endpoints; and a second view with the
//! operators' own widgets from `[[kpi.widget]]`.
//!
//! One file for the tab's two views (fixed counters, operators' widgets): they share the range,
//! the refresh and the grid they are laid out on.

use chrono::{DateTime, Utc};
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Bar, BarChart, BarGroup, Chart, Dataset, Gauge, GraphType, Paragraph, Row, Table,
};
use ratatui::Frame;

use crate::config::{Config, KpiWidget};
use crate::query::kpi::{
    self, Daily, FailingEndpoint, Ingest, Latency, StatusCounts, Traffic, Users,
};
use crate::sanitize::sanitize;
use crate::tui::keymap::Action;
use crate::tui::msg::{Data, Effect, KpiData, QueryRequest, Tab, WidgetData, WidgetResult};
use crate::tui::theme::{Role, Theme};
use crate::tui::view::{Binding, Cursor, DrawCtx, Panel, Refresher, TabCtx, TabView};
use crate::tui::widgets::{
    change_span, draw_card, draw_note, draw_spark, draw_table_panel, fmt_count, fmt_ms, fmt_pct,
    framed, row_style, status_role, truncate, visible_page, Card, Columns, Trend,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Overview,
    Custom,
}

pub struct KpiTab {
    pub view: View,
    pub traffic: Panel<Traffic>,
    pub latency: Panel<Latency>,
    pub daily: Panel<Daily>,
    pub users: Panel<Users>,
    pub status: Panel<StatusCounts>,
    pub ingest: Panel<Ingest>,
    pub top: Panel<Vec<FailingEndpoint>>,
    pub widgets: Panel<Vec<WidgetResult>>,
    widget_cfg: Vec<KpiWidget>,
    pub cursor: Cursor,
    widget_cursor: usize,
    filter: String,
    refresher: Refresher,
}

impl KpiTab {
    pub fn new(cfg: &Config) -> KpiTab {
        KpiTab {
            view: View::Overview,
            traffic: Panel::default(),
            latency: Panel::default(),
            daily: Panel::default(),
            users: Panel::default(),
            status: Panel::default(),
            ingest: Panel::default(),
            top: Panel::default(),
            widgets: Panel::default(),
            widget_cfg: cfg.kpi.widget.clone(),
            cursor: Cursor::default(),
            widget_cursor: 0,
            filter: String::new(),
            refresher: Refresher::every(10),
        }
    }

    fn visible_top(&self) -> Vec<&FailingEndpoint> {
        let f = self.filter.to_lowercase();
        self.top
            .data
            .iter()
            .flatten()
            .filter(|e| {
                f.is_empty()
                    || format!("{} {} {}", e.service, e.method, e.route)
                        .to_lowercase()
                        .contains(&f)
            })
            .collect()
    }

    fn requests(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        self.refresher.done(ctx.now);
        let (range, now) = (ctx.range, ctx.now);
        let mut fx = Vec::new();
        let db = ctx.db.clone();
        fx.push(QueryRequest::new(
            "traffic",
            async move { kpi::traffic(&db, range, now).await },
            KpiData::Traffic,
        ));
        let db = ctx.db.clone();
        fx.push(QueryRequest::new(
            "latency",
            async move { kpi::latency(&db, now).await },
            KpiData::Latency,
        ));
        let db = ctx.db.clone();
        fx.push(QueryRequest::new(
            "daily",
            async move { kpi::daily(&db, now).await },
            KpiData::Daily,
        ));
        let db = ctx.db.clone();
        fx.push(QueryRequest::new(
            "users",
            async move { kpi::users(&db, now).await },
            KpiData::Users,
        ));
        let db = ctx.db.clone();
        fx.push(QueryRequest::new(
            "status",
            async move { kpi::status(&db).await },
            KpiData::Status,
        ));
        let db = ctx.db.clone();
        fx.push(QueryRequest::new(
            "ingest",
            async move { kpi::ingest(&db, range, now).await },
            KpiData::Ingest,
        ));
        let db = ctx.db.clone();
        fx.push(QueryRequest::new(
            "top",
            async move { kpi::top_failing(&db, range, now, 20).await },
            KpiData::Top,
        ));
        if !self.widget_cfg.is_empty() {
            let db = ctx.db.clone();
            let widgets = self.widget_cfg.clone();
            let timeout = db.query_timeout;
            fx.push(QueryRequest::new(
                "widgets",
                async move {
                    let mut out: Vec<WidgetResult> = Vec::new();
                    for w in &widgets {
                        let r = if w.kind == "alerts" {
                            kpi::active_alerts(&db, 50).await.map(WidgetData::Alerts)
                        } else {
                            kpi::custom(&db, &w.query, timeout, 500)
                                .await
                                .map(WidgetData::Rows)
                        };
                        out.push(r.map_err(|e| crate::tui::msg::one_line(&format!("{e:#}"))));
                    }
                    anyhow::Ok(out)
                },
                KpiData::Widgets,
            ));
        }
        for p in [
            &mut self.traffic.loading,
            &mut self.latency.loading,
            &mut self.daily.loading,
            &mut self.users.loading,
            &mut self.status.loading,
            &mut self.ingest.loading,
            &mut self.top.loading,
        ] {
            *p = true;
        }
        fx.into_iter().map(Effect::Query).collect()
    }

    /// The twelve counters of the overview, from whatever data has arrived.
    pub fn cards(&self, theme: &Theme) -> Vec<Card> {
        let traffic = self.traffic.data.as_ref();
        let status = self.status.data.as_ref();
        let ingest = self.ingest.data.as_ref();
        let mut cards = vec![
            count_card(
                "Requests/min",
                traffic.map(|t| t.per_minute()),
                traffic.map(|t| t.prev_per_minute()),
                Trend::Neutral,
                traffic.map_or_else(Vec::new, |t| {
                    t.series.iter().map(|s| s.1.max(0) as u64).collect()
                }),
                theme,
            ),
            card("Error rate (5xx)", traffic, |c, t| {
                c.value = fmt_pct(t.error_rate());
                c.change = Some(change_span(
                    t.error_rate(),
                    Some(t.prev_error_rate()),
                    Trend::UpIsBad,
                    theme,
                ));
                if t.error_rate() >= 0.05 {
                    c.value_role = Some(Role::Error);
                } else if t.error_rate() >= 0.01 {
                    c.value_role = Some(Role::Warn);
                }
                c.spark = t
                    .series
                    .iter()
                    .map(|s| {
                        if s.1 == 0 {
                            0
                        } else {
                            (s.2 as f64 * 1000.0 / s.1 as f64) as u64
                        }
                    })
                    .collect();
            }),
            card("p95 latency 1h", self.latency.data.as_ref(), |c, l| {
                c.value = l.p95_ms.map(fmt_ms).unwrap_or_else(|| "-".into());
                c.change = l
                    .p95_ms
                    .map(|v| change_span(v, l.prev_p95_ms, Trend::UpIsBad, theme));
                c.spark = l.series.iter().map(|v| *v as u64).collect();
            }),
            card("Open alerts", status, |c, s| {
                let a = &s.alerts;
                c.value = a.total().to_string();
                // Testing-mode alerts are left out here; the header and the Alerts tab show them.
                c.detail = a.by_severity();
                c.value_role = Some(if a.critical > 0 {
                    Role::Critical
                } else if a.error > 0 {
                    Role::Error
                } else if a.warning > 0 {
                    Role::Warn
                } else {
                    Role::Ok
                });
            }),
        ];
        // Daily counters
        let d = self.daily.data.as_ref();
        for (title, cur, prev, spark) in [
            (
                "Errors 24h",
                d.map(|d| d.errors_24h),
                d.map(|d| d.prev_errors_24h),
                d.map(|d| d.errors_hourly.clone()),
            ),
            (
                "Slow requests 24h",
                d.map(|d| d.slow_requests_24h),
                d.map(|d| d.prev_slow_requests_24h),
                None,
            ),
            (
                "Slow queries 24h",
                d.map(|d| d.slow_queries_24h),
                d.map(|d| d.prev_slow_queries_24h),
                None,
            ),
        ] {
            let spark = spark.unwrap_or_default();
            cards.push(count_card(
                title,
                cur.map(|v| v as f64),
                prev.map(|v| v as f64),
                Trend::UpIsBad,
                spark.iter().map(|v| (*v).max(0) as u64).collect(),
                theme,
            ));
        }
        cards.push(card("Services up/deg/dn", status, |c, s| {
            c.value = format!("{}/{}/{}", s.healthy, s.degraded, s.down);
            if s.unknown > 0 {
                c.detail = format!("?{}", s.unknown);
            }
            c.value_role = Some(if s.down > 0 {
                Role::Error
            } else if s.degraded > 0 {
                Role::Warn
            } else {
                Role::Ok
            });
        }));
        // Users
        let d = self.users.data.as_ref();
        for (title, cur, prev) in [
            (
                "Active users 1h",
                d.map(|d| d.users_1h),
                d.map(|d| d.prev_users_1h),
            ),
            (
                "Active users 24h",
                d.map(|d| d.users_24h),
                d.map(|d| d.prev_users_24h),
            ),
        ] {
            let (cur, prev) = (cur.map(|v| v as f64), prev.map(|v| v as f64));
            cards.push(count_card(
                title,
                cur,
                prev,
                Trend::UpIsGood,
                Vec::new(),
                theme,
            ));
        }
        cards.push(count_card(
            "Ingest lines/min",
            ingest.map(|i| i.per_minute()),
            ingest.map(|i| i.prev_per_minute()),
            Trend::Neutral,
            ingest.map_or_else(Vec::new, |i| {
                i.series.iter().map(|v| (*v).max(0) as u64).collect()
            }),
            theme,
        ));
        cards.push(card("Rejected lines", ingest, |c, i| {
            c.value = fmt_count(i.rejected as f64);
            if i.rejected > 0 {
                c.value_role = Some(Role::Warn);
            }
        }));
        cards
    }

    fn draw_overview(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let cards = self.cards(theme);
        let cols = (area.width / 20).clamp(1, 6) as usize;
        let card_rows = cards.len().div_ceil(cols);
        let grid_h = (card_rows as u16 * 3).min(area.height);
        let [grid, rest] =
            Layout::vertical([Constraint::Length(grid_h), Constraint::Min(0)]).areas(area);
        let row_areas = Layout::vertical(vec![Constraint::Length(3); card_rows]).split(grid);
        for (i, chunk) in cards.chunks(cols).enumerate() {
            let Some(row_area) = row_areas.get(i) else {
                break;
            };
            let cells =
                Layout::horizontal(vec![Constraint::Ratio(1, cols as u32); cols]).split(*row_area);
            for (card, cell) in chunk.iter().zip(cells.iter()) {
                draw_card(f, *cell, card, theme);
            }
        }
        if rest.height < 3 {
            return;
        }
        let [chart_area, top_area] = if rest.width >= 100 {
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(rest)
        } else {
            Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(rest)
        };
        self.draw_chart(f, chart_area, ctx);
        self.draw_top(f, top_area, ctx);
    }

    fn draw_chart(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let title = format!("Requests / 5xx per bucket ({})", ctx.range.label());
        let inner = framed(f, area, &title, false, theme);
        let Some(t) = &self.traffic.data else {
            if let Some((msg, role)) = self.traffic.placeholder() {
                draw_note(f, inner, &msg, role, theme);
            }
            return;
        };
        let req: Vec<(f64, f64)> = t
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| (i as f64, s.1 as f64))
            .collect();
        let err: Vec<(f64, f64)> = t
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| (i as f64, s.2 as f64))
            .collect();
        let max_y = t.series.iter().map(|s| s.1).max().unwrap_or(0).max(1) as f64;
        let n = t.series.len().max(2) as f64 - 1.0;
        let first = t.series.first().map(|s| s.0);
        let last = t.series.last().map(|s| s.0);
        let fmt = |d: Option<DateTime<Utc>>| {
            d.map(|d| {
                ctx.fmt_time(
                    d,
                    if ctx.range.duration().num_hours() > 24 {
                        "%m-%d"
                    } else {
                        "%H:%M"
                    },
                )
            })
            .unwrap_or_default()
        };
        let datasets = vec![
            Dataset::default()
                .name("requests")
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(theme.style(Role::ChartPrimary))
                .data(&req),
            Dataset::default()
                .name("5xx")
                .marker(Marker::Dot)
                .graph_type(GraphType::Line)
                .style(theme.style(Role::ChartSecondary))
                .data(&err),
        ];
        let chart = Chart::new(datasets)
            .style(theme.style(Role::Text))
            .x_axis(
                Axis::default()
                    .bounds([0.0, n])
                    .style(theme.style(Role::Dim))
                    .labels([Span::raw(fmt(first)), Span::raw(fmt(last))]),
            )
            .y_axis(
                Axis::default()
                    .bounds([0.0, max_y])
                    .style(theme.style(Role::Dim))
                    .labels([Span::raw("0"), Span::raw(fmt_count(max_y))]),
            )
            .legend_position(Some(ratatui::widgets::LegendPosition::TopRight))
            .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)));
        crate::tui::widgets::render(f, chart, inner);
    }

    fn draw_top(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let inner = framed(f, area, "Top failing endpoints", true, theme);
        let rows_data = self.visible_top();
        let empty = if self.filter.is_empty() {
            "no server errors in range"
        } else {
            "no endpoint matches the filter"
        };
        const COLUMNS: Columns = Columns {
            header: &["endpoint", "5xx", "rate", "avg"],
            widths: &[10, 6, 6, 7],
            flexible: 0,
            header_role: Role::Dim,
            wants: &[],
        };
        let note = self.top.note(rows_data.is_empty(), (empty, Role::Ok));
        draw_table_panel(f, inner, theme, &COLUMNS, note, |page| {
            let sel = self.cursor.selected.min(rows_data.len() - 1);
            let ep_w = inner.width.saturating_sub(22) as usize;
            visible_page(&rows_data, sel, page)
                .map(|(i, e)| {
                    let name = format!(
                        "{} {} {}",
                        sanitize(&e.service),
                        sanitize(&e.method),
                        sanitize(&e.route)
                    );
                    let rate = if e.requests > 0 {
                        e.errors as f64 / e.requests as f64
                    } else {
                        0.0
                    };
                    Row::new(vec![
                        truncate(&name, ep_w),
                        fmt_count(e.errors as f64),
                        fmt_pct(rate),
                        fmt_ms(e.avg_ms),
                    ])
                    .style(row_style(i == sel, theme))
                })
                .collect()
        });
    }

    fn draw_custom(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        if self.widget_cfg.is_empty() {
            draw_note(
                f,
                area,
                "no custom widgets: add [[kpi.widget]] to the config (see config.example.toml)",
                Role::Dim,
                theme,
            );
            return;
        }
        let heights: Vec<u16> = self
            .widget_cfg
            .iter()
            .map(|w| match w.kind.as_str() {
                "counter" => 4,
                "gauge" => 3,
                "sparkline" => 4,
                _ => 10,
            })
            .collect();
        let cols = if area.width >= 100 { 2 } else { 1 };
        // Rows of widgets from the one holding the selected widget, as many as fit.
        let first_row = self.widget_cursor / cols;
        let mut y = area.y;
        for (r, chunk) in self.widget_cfg.chunks(cols).enumerate().skip(first_row) {
            let h = (0..chunk.len())
                .map(|i| heights[r * cols + i])
                .max()
                .unwrap_or(3);
            if y + h > area.y + area.height {
                break;
            }
            let row = Rect {
                x: area.x,
                y,
                width: area.width,
                height: h,
            };
            let cells =
                Layout::horizontal(vec![Constraint::Ratio(1, cols as u32); cols]).split(row);
            for (i, w) in chunk.iter().enumerate() {
                let idx = r * cols + i;
                let data = self.widgets.data.as_ref().and_then(|v| v.get(idx));
                self.draw_widget(f, cells[i], w, data, idx == self.widget_cursor, ctx);
            }
            y += h;
        }
    }

    fn draw_widget(
        &self,
        f: &mut Frame,
        area: Rect,
        w: &KpiWidget,
        data: Option<&WidgetResult>,
        focused: bool,
        ctx: &DrawCtx,
    ) {
        let theme = ctx.theme;
        let inner = framed(f, area, &sanitize(&w.title), focused, theme);
        let data = match data {
            None => {
                let (msg, role) = self
                    .widgets
                    .placeholder()
                    .unwrap_or(("loading…".into(), Role::Dim));
                draw_note(f, inner, &msg, role, theme);
                return;
            }
            Some(Err(e)) => {
                draw_note(f, inner, &format!("error: {e}"), Role::Error, theme);
                return;
            }
            Some(Ok(d)) => d,
        };
        let unit = sanitize(&w.unit);
        match (w.kind.as_str(), data) {
            (_, WidgetData::Alerts(alerts)) => {
                if alerts.is_empty() {
                    draw_note(f, inner, "no active alerts", Role::Ok, theme);
                    return;
                }
                let rows: Vec<Row> = alerts
                    .iter()
                    .take(inner.height as usize)
                    .map(|a| {
                        Row::new(vec![
                            Span::styled(
                                sanitize(&a.severity).into_owned(),
                                theme.style(status_role(&a.severity)),
                            ),
                            Span::raw(sanitize(&a.rule_name).into_owned()),
                            Span::styled(
                                a.since.map(|t| ctx.ago(t)).unwrap_or_default(),
                                theme.style(Role::Dim),
                            ),
                        ])
                    })
                    .collect();
                crate::tui::widgets::render(
                    f,
                    Table::new(
                        rows,
                        [
                            Constraint::Length(9),
                            Constraint::Min(10),
                            Constraint::Length(8),
                        ],
                    ),
                    inner,
                );
            }
            ("counter", WidgetData::Rows(r)) => {
                let v = r
                    .number()
                    .map(fmt_count)
                    .unwrap_or_else(|| "no number".into());
                crate::tui::widgets::render(
                    f,
                    Paragraph::new(Line::from(vec![
                        Span::styled(v, theme.style(Role::Title)),
                        Span::styled(format!(" {unit}"), theme.style(Role::Dim)),
                    ])),
                    inner,
                );
            }
            ("gauge", WidgetData::Rows(r)) => {
                let v = r.number().unwrap_or(0.0);
                let max = w.max.unwrap_or(100.0).max(f64::MIN_POSITIVE);
                let ratio = (v / max).clamp(0.0, 1.0);
                crate::tui::widgets::render(
                    f,
                    Gauge::default()
                        .ratio(ratio)
                        .label(format!("{} / {} {unit}", fmt_count(v), fmt_count(max)))
                        .gauge_style(theme.style(Role::ChartPrimary)),
                    inner,
                );
            }
            ("sparkline", WidgetData::Rows(r)) => {
                let s = r.series();
                let last = s.last().copied().unwrap_or(0.0);
                crate::tui::widgets::render(
                    f,
                    Paragraph::new(Span::styled(
                        format!("{} {unit}", fmt_count(last)),
                        theme.style(Role::Title),
                    )),
                    inner,
                );
                let spark_area = Rect {
                    y: inner.y + 1,
                    height: inner.height.saturating_sub(1),
                    ..inner
                };
                let data: Vec<u64> = s.iter().map(|v| v.max(0.0) as u64).collect();
                draw_spark(f, spark_area, &data, theme);
            }
            ("chart", WidgetData::Rows(r)) => {
                let s = r.series();
                let pts: Vec<(f64, f64)> =
                    s.iter().enumerate().map(|(i, v)| (i as f64, *v)).collect();
                let max_y = s.iter().cloned().fold(0.0f64, f64::max).max(1.0);
                let labels = r.labels();
                let chart = Chart::new(vec![Dataset::default()
                    .marker(Marker::Braille)
                    .graph_type(GraphType::Line)
                    .style(theme.style(Role::ChartPrimary))
                    .data(&pts)])
                .x_axis(
                    Axis::default()
                        .bounds([0.0, (pts.len().max(2) - 1) as f64])
                        .style(theme.style(Role::Dim))
                        .labels([
                            Span::raw(
                                sanitize(labels.first().map(|s| s.as_str()).unwrap_or(""))
                                    .into_owned(),
                            ),
                            Span::raw(
                                sanitize(labels.last().map(|s| s.as_str()).unwrap_or(""))
                                    .into_owned(),
                            ),
                        ]),
                )
                .y_axis(
                    Axis::default()
                        .bounds([0.0, max_y])
                        .style(theme.style(Role::Dim))
                        .labels([Span::raw("0"), Span::raw(fmt_count(max_y))]),
                );
                crate::tui::widgets::render(f, chart, inner);
            }
            ("bar", WidgetData::Rows(r)) => {
                let labels = r.labels();
                let values = r.series();
                let bars: Vec<Bar> = labels
                    .iter()
                    .zip(values.iter())
                    .map(|(l, v)| {
                        Bar::default()
                            .label(Line::from(sanitize(l).into_owned()))
                            .value(v.max(0.0) as u64)
                            .text_value(fmt_count(*v))
                    })
                    .collect();
                let bar_w = ((inner.width as usize / bars.len().max(1)).saturating_sub(1))
                    .clamp(1, 12) as u16;
                crate::tui::widgets::render(
                    f,
                    BarChart::default()
                        .data(BarGroup::default().bars(&bars))
                        .bar_width(bar_w)
                        .bar_style(theme.style(Role::ChartPrimary))
                        .value_style(theme.style(Role::Selection)),
                    inner,
                );
            }
            (_, WidgetData::Rows(r)) => {
                let ncols = r.columns.len().max(1);
                let header = Row::new(
                    r.columns
                        .iter()
                        .map(|c| sanitize(c).into_owned())
                        .collect::<Vec<_>>(),
                )
                .style(theme.style(Role::Dim));
                let rows: Vec<Row> = r
                    .rows
                    .iter()
                    .take(inner.height.saturating_sub(1) as usize)
                    .map(|row| {
                        Row::new(
                            row.iter()
                                .map(|v| sanitize(v.as_deref().unwrap_or("∅")).into_owned())
                                .collect::<Vec<_>>(),
                        )
                    })
                    .collect();
                crate::tui::widgets::render(
                    f,
                    Table::new(rows, vec![Constraint::Ratio(1, ncols as u32); ncols])
                        .header(header)
                        .style(Style::default()),
                    inner,
                );
            }
        }
    }
}

/// A card titled `title`, filled from `data` by `fill`; "…" until the data came.
fn card<T>(title: &str, data: Option<&T>, fill: impl FnOnce(&mut Card, &T)) -> Card {
    let mut c = Card {
        title: title.into(),
        ..Card::default()
    };
    match data {
        Some(d) => fill(&mut c, d),
        None => c.value = "…".into(),
    }
    c
}

/// A counter's card: the count, its change against the previous period and its sparkline.
fn count_card(
    title: &str,
    cur: Option<f64>,
    prev: Option<f64>,
    trend: Trend,
    spark: Vec<u64>,
    theme: &Theme,
) -> Card {
    card(title, cur.as_ref(), |c, &v| {
        c.value = fmt_count(v);
        c.change = Some(change_span(v, prev, trend, theme));
        c.spark = spark;
    })
}

impl TabView for KpiTab {
    fn id(&self) -> Tab {
        Tab::Kpi
    }

    fn refresh(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        self.requests(ctx)
    }

    fn refresher(&mut self) -> Option<&mut Refresher> {
        Some(&mut self.refresher)
    }

    fn on_action(&mut self, action: Action, _ctx: &TabCtx) -> Vec<Effect> {
        match self.view {
            View::Overview => {
                let len = self.visible_top().len();
                self.cursor.apply(action, len, 5);
            }
            View::Custom => {
                let len = self.widget_cfg.len();
                let mut c = Cursor {
                    selected: self.widget_cursor,
                };
                c.apply(action, len, 2);
                self.widget_cursor = c.selected;
            }
        }
        Vec::new()
    }

    fn on_key(&mut self, key: &KeyEvent, _ctx: &TabCtx) -> Option<Vec<Effect>> {
        match key.code {
            KeyCode::Char('v') => {
                self.view = match self.view {
                    View::Overview => View::Custom,
                    View::Custom => View::Overview,
                };
                Some(Vec::new())
            }
            _ => None,
        }
    }

    fn on_data(&mut self, data: Data, _ctx: &TabCtx) -> Vec<Effect> {
        let Data::Kpi(data) = data else {
            return Vec::new();
        };
        match data {
            KpiData::Traffic(r) => self.traffic.set(r),
            KpiData::Latency(r) => self.latency.set(r),
            KpiData::Daily(r) => self.daily.set(r),
            KpiData::Users(r) => self.users.set(r),
            KpiData::Status(r) => self.status.set(r),
            KpiData::Ingest(r) => self.ingest.set(r),
            KpiData::Top(r) => {
                let key =
                    |e: &FailingEndpoint| (e.service.clone(), e.method.clone(), e.route.clone());
                let before = self.visible_top().get(self.cursor.selected).map(|e| key(e));
                self.top.set(r);
                let keys: Vec<_> = self.visible_top().into_iter().map(key).collect();
                self.cursor.follow(before.as_ref(), keys);
            }
            KpiData::Widgets(r) => self.widgets.set(r),
        }
        Vec::new()
    }

    fn on_filter(&mut self, text: &str, _ctx: &TabCtx) -> Vec<Effect> {
        self.filter = text.to_string();
        self.cursor = Cursor::default();
        Vec::new()
    }

    fn filter(&self) -> &str {
        &self.filter
    }

    fn bindings(&self) -> Vec<Binding> {
        vec![
            Binding {
                keys: "v",
                help: "overview / custom widgets",
            },
            Binding {
                keys: "j/k",
                help: "move in the table",
            },
            Binding {
                keys: "/",
                help: "filter endpoints",
            },
        ]
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        match self.view {
            View::Overview => self.draw_overview(f, area, ctx),
            View::Custom => self.draw_custom(f, area, ctx),
        }
    }
}
