//! Health tab: checked services (status, last check, response time, uptime 24h/7d/30d, recent
//! checks), integrations (outbound calls), the database (as pg_activity shows it) and the
//! worker jobs, and retention (`retention_section`). On a small terminal one section at a
//! time (h/l to switch); on a large one all of them.

pub mod retention_section;

use chrono::{DateTime, Utc};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table};
use ratatui::Frame;

use crate::query::health::{self, DbHealth, IntegrationRow, JobRow, ServiceRow};
use crate::sanitize::sanitize;
use crate::tui::keymap::Action;
use crate::tui::msg::{Data, Effect, HealthData, QueryRequest, Tab};
use crate::tui::theme::{Role, Theme};
use crate::tui::view::{Binding, Cursor, DrawCtx, Panel, Refresher, TabCtx, TabView};
use crate::tui::widgets::{
    draw_note, draw_table_panel, fmt_bytes, fmt_count, fmt_ms, fmt_pct, framed, human_secs, pad,
    row_style, status_role, truncate, visible_page, Columns, SPARK_BARS,
};
use retention_section::RetentionSection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Services,
    Integrations,
    Database,
    Worker,
    Retention,
}

impl Section {
    pub const ALL: [Section; 5] = [
        Section::Services,
        Section::Integrations,
        Section::Database,
        Section::Worker,
        Section::Retention,
    ];

    fn title(self) -> &'static str {
        match self {
            Section::Services => "Services",
            Section::Integrations => "Integrations",
            Section::Database => "Database",
            Section::Worker => "Worker",
            Section::Retention => "Retention",
        }
    }

    fn index(self) -> usize {
        Section::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }
}

pub struct HealthTab {
    pub section: Section,
    pub services: Panel<Vec<ServiceRow>>,
    pub integrations: Panel<Vec<IntegrationRow>>,
    pub database: Panel<DbHealth>,
    pub workers: Panel<Vec<JobRow>>,
    pub retention: RetentionSection,
    cursors: [Cursor; 5],
    filter: String,
    refresher: Refresher,
}

impl Default for HealthTab {
    fn default() -> Self {
        HealthTab::new()
    }
}

/// Text sparkline of recent checks: bar height by response time, ✕ for a failed check.
fn check_history(ms: &[f64], status: &[String], width: usize, theme: &Theme) -> Line<'static> {
    let n = ms.len().min(status.len());
    let start = n.saturating_sub(width);
    let max = ms[start..n].iter().cloned().fold(0.0f64, f64::max).max(1.0);
    let spans: Vec<Span> = (start..n)
        .map(|i| match status[i].as_str() {
            "down" => Span::styled("✕", theme.style(Role::Error)),
            "unknown" => Span::styled("?", theme.style(Role::Dim)),
            s => {
                let level = ((ms[i] / max) * 7.0).round().clamp(0.0, 7.0) as usize;
                let role = if s == "degraded" {
                    Role::Warn
                } else {
                    Role::Spark
                };
                Span::styled(SPARK_BARS[level].to_string(), theme.style(role))
            }
        })
        .collect();
    Line::from(spans)
}

fn pct_opt(v: Option<f64>) -> String {
    v.map(fmt_pct).unwrap_or_else(|| "-".into())
}

fn uptime_role(v: Option<f64>) -> Role {
    match v {
        Some(u) if u >= 0.999 => Role::Ok,
        Some(u) if u >= 0.99 => Role::Warn,
        Some(_) => Role::Error,
        None => Role::Dim,
    }
}

impl HealthTab {
    pub fn new() -> HealthTab {
        HealthTab {
            section: Section::Services,
            services: Panel::default(),
            integrations: Panel::default(),
            database: Panel::default(),
            workers: Panel::default(),
            retention: RetentionSection::default(),
            cursors: [Cursor::default(); 5],
            filter: String::new(),
            refresher: Refresher::every(5),
        }
    }

    fn matches(&self, s: &str) -> bool {
        self.filter.is_empty() || s.to_lowercase().contains(&self.filter.to_lowercase())
    }

    fn visible_services(&self) -> Vec<&ServiceRow> {
        self.services
            .data
            .iter()
            .flatten()
            .filter(|s| self.matches(&format!("{} {} {}", s.name, s.kind, s.status)))
            .collect()
    }

    fn visible_integrations(&self) -> Vec<&IntegrationRow> {
        self.integrations
            .data
            .iter()
            .flatten()
            .filter(|s| self.matches(&s.name))
            .collect()
    }

    fn visible_jobs(&self) -> Vec<&JobRow> {
        self.workers
            .data
            .iter()
            .flatten()
            .filter(|j| self.matches(&j.job))
            .collect()
    }

    /// What identifies each listed row of a section, in order, so the cursor can follow its
    /// item when a refresh re-orders the rows.
    fn section_keys(&self, s: Section) -> Vec<String> {
        match s {
            Section::Services => self
                .visible_services()
                .iter()
                .map(|r| r.name.clone())
                .collect(),
            Section::Integrations => self
                .visible_integrations()
                .iter()
                .map(|r| r.name.clone())
                .collect(),
            Section::Database => self
                .database
                .data
                .iter()
                .flat_map(|d| d.longest.iter().map(|a| a.pid.to_string()))
                .collect(),
            Section::Worker => self.visible_jobs().iter().map(|j| j.job.clone()).collect(),
            Section::Retention => self.retention.keys(),
        }
    }

    fn section_len(&self, s: Section) -> usize {
        match s {
            Section::Services => self.visible_services().len(),
            Section::Integrations => self.visible_integrations().len(),
            Section::Database => self
                .database
                .data
                .as_ref()
                .map(|d| d.longest.len())
                .unwrap_or(0),
            Section::Worker => self.visible_jobs().len(),
            Section::Retention => self.retention.len(),
        }
    }

    fn requests(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        self.refresher.done(ctx.now);
        let db = ctx.db.clone();
        let a = QueryRequest::new(
            "services",
            async move { health::services(&db).await },
            HealthData::Services,
        );
        let db = ctx.db.clone();
        let b = QueryRequest::new(
            "integrations",
            async move { health::integrations(&db).await },
            HealthData::Integrations,
        );
        let db = ctx.db.clone();
        let c = QueryRequest::new(
            "database",
            async move { health::database(&db).await },
            HealthData::Database,
        );
        let db = ctx.db.clone();
        let d = QueryRequest::new(
            "workers",
            async move { health::workers(&db).await },
            HealthData::Workers,
        );
        let e = self.retention.request(ctx);
        vec![
            Effect::Query(a),
            Effect::Query(b),
            Effect::Query(c),
            Effect::Query(d),
            e,
        ]
    }

    fn draw_section(&self, s: Section, f: &mut Frame, area: Rect, focused: bool, ctx: &DrawCtx) {
        let inner = framed(f, area, s.title(), focused, ctx.theme);
        match s {
            Section::Services => self.draw_services(f, inner, ctx),
            Section::Integrations => self.draw_integrations(f, inner, ctx),
            Section::Database => self.draw_database(f, inner, ctx),
            Section::Worker => self.draw_worker(f, inner, ctx),
            Section::Retention => self.retention.draw_table(f, inner, ctx),
        }
    }

    /// The selected row of a section listing `len` rows.
    fn selected(&self, s: Section, len: usize) -> usize {
        self.cursors[s.index()].selected.min(len.saturating_sub(1))
    }

    fn draw_services(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let rows_data = self.visible_services();
        const COLUMNS: Columns = Columns {
            header: &[
                "status",
                "service",
                "checked",
                "resp",
                "24h",
                "7d",
                "30d",
                "recent checks",
            ],
            widths: &[8, 14, 8, 7, 6, 6, 6, 4],
            flexible: 7,
            header_role: Role::Dim,
            wants: &[0, 32],
        };
        let note = self.services.note(
            rows_data.is_empty(),
            (
                "no services: add [[service]] checks to the config",
                Role::Dim,
            ),
        );
        if let Some((msg, role)) = note {
            draw_note(f, area, &msg, role, theme);
            return;
        }
        // Last line: the selected service's detail.
        let [table_area, detail_area] =
            Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(area);
        let page = table_area.height.saturating_sub(1) as usize;
        let sel = self.selected(Section::Services, rows_data.len());
        let fixed = 9 + 14 + 8 + 7 + 6 + 6 + 6 + 7;
        let spark_w = (area.width as usize).saturating_sub(fixed).clamp(4, 60);
        let rows: Vec<Row> = visible_page(&rows_data, sel, page)
            .map(|(i, s)| {
                let selected = i == sel;
                let status_style = if selected {
                    theme.style(Role::Selection)
                } else {
                    theme.style(status_role(&s.status))
                };
                Row::new(vec![
                    Line::from(Span::styled(sanitize(&s.status).into_owned(), status_style)),
                    Line::from(sanitize(&s.name).into_owned()),
                    Line::from(
                        s.last_check
                            .map(|t| ctx.ago(t))
                            .unwrap_or_else(|| "never".into()),
                    ),
                    Line::from(s.last_response_ms.map(fmt_ms).unwrap_or_else(|| "-".into())),
                    Line::from(Span::styled(
                        pct_opt(s.uptime_24h),
                        theme.style(uptime_role(s.uptime_24h)),
                    )),
                    Line::from(pct_opt(s.uptime_7d)),
                    Line::from(pct_opt(s.uptime_30d)),
                    check_history(&s.recent_ms, &s.recent_status, spark_w, theme),
                ])
                .style(row_style(selected, theme))
            })
            .collect();
        crate::tui::widgets::render(f, COLUMNS.table(rows, theme, table_area.width), table_area);
        if let Some(s) = rows_data.get(sel) {
            let text = format!(
                "{} {}: {}",
                sanitize(&s.kind),
                sanitize(&s.target),
                sanitize(s.last_detail.as_deref().unwrap_or("no check yet"))
            );
            crate::tui::widgets::render(
                f,
                Paragraph::new(Span::styled(
                    truncate(&text, detail_area.width as usize),
                    theme.style(Role::Dim),
                )),
                detail_area,
            );
        }
    }

    fn draw_integrations(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let rows_data = self.visible_integrations();
        const COLUMNS: Columns = Columns {
            header: &[
                "integration",
                "calls 24h",
                "success",
                "avg",
                "errors 1h",
                "last",
            ],
            widths: &[14, 9, 8, 8, 9, 8],
            flexible: 0,
            header_role: Role::Dim,
            wants: &[32],
        };
        let note = self.integrations.note(
            rows_data.is_empty(),
            ("no outbound calls in the last 24 h", Role::Dim),
        );
        draw_table_panel(f, area, theme, &COLUMNS, note, |page| {
            let sel = self.selected(Section::Integrations, rows_data.len());
            visible_page(&rows_data, sel, page)
                .map(|(i, r)| {
                    let selected = i == sel;
                    let succ_role = if r.success_24h >= 0.99 {
                        Role::Ok
                    } else if r.success_24h >= 0.95 {
                        Role::Warn
                    } else {
                        Role::Error
                    };
                    let err_role = if r.errors_1h > 0 {
                        Role::Error
                    } else {
                        Role::Dim
                    };
                    Row::new(vec![
                        Line::from(sanitize(&r.name).into_owned()),
                        Line::from(fmt_count(r.calls_24h as f64)),
                        Line::from(Span::styled(fmt_pct(r.success_24h), theme.style(succ_role))),
                        Line::from(fmt_ms(r.avg_ms_24h)),
                        Line::from(Span::styled(
                            fmt_count(r.errors_1h as f64),
                            theme.style(err_role),
                        )),
                        Line::from(r.last_call.map(|t| ctx.ago(t)).unwrap_or_default()),
                    ])
                    .style(row_style(selected, theme))
                })
                .collect()
        });
    }

    fn draw_database(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let Some(d) = &self.database.data else {
            if let Some((msg, role)) = self.database.placeholder() {
                draw_note(f, area, &msg, role, theme);
            }
            return;
        };
        // A blank column between the two halves: a clipped left text (the version string, a
        // table size) must never run into the right half's first character.
        let left_w = if area.width >= 90 { 38 } else { 30 };
        let [left, _gap, right] = Layout::horizontal([
            Constraint::Length(left_w),
            Constraint::Length(1),
            Constraint::Min(0),
        ])
        .areas(area);
        let dim = theme.style(Role::Dim);
        let text = theme.style(Role::Text);
        let total = d.connections_total();
        let conn_ratio = total as f64 / d.max_connections.max(1) as f64;
        let conn_role = if conn_ratio >= 0.9 {
            Role::Error
        } else if conn_ratio >= 0.7 {
            Role::Warn
        } else {
            Role::Ok
        };
        let mut lines = vec![
            Line::from(Span::styled(
                truncate(&sanitize(&d.version), left.width as usize),
                text,
            )),
            Line::from(vec![
                Span::styled("uptime ", dim),
                Span::styled(human_secs(d.uptime_s), text),
                Span::styled("  size ", dim),
                Span::styled(fmt_bytes(d.db_size as f64), text),
            ]),
            Line::from(vec![
                Span::styled("connections ", dim),
                Span::styled(
                    format!("{total}/{}", d.max_connections),
                    theme.style(conn_role),
                ),
            ]),
            Line::from(Span::styled(
                format!(
                    "  {}",
                    d.connections
                        .iter()
                        .map(|(s, n)| format!("{} {n}", sanitize(s)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                dim,
            )),
            Line::from(vec![
                Span::styled("cache hit ", dim),
                Span::styled(
                    d.cache_hit.map(fmt_pct).unwrap_or_else(|| "-".into()),
                    theme.style(match d.cache_hit {
                        Some(h) if h < 0.9 => Role::Warn,
                        _ => Role::Text,
                    }),
                ),
            ]),
        ];
        // Without pg_monitor the server shows other roles' sessions without their state or
        // query: say so rather than let "no blocked sessions" read as the whole truth.
        // The column is narrow: the note goes on one line per clause.
        if let Some(limit) = &d.limited {
            for part in limit.split(": ") {
                lines.push(Line::from(Span::styled(
                    truncate(&sanitize(part), left.width as usize),
                    theme.style(Role::Warn),
                )));
            }
        }
        if d.in_recovery {
            lines.push(Line::from(vec![
                Span::styled("replica, replay lag ", dim),
                Span::styled(
                    d.replay_lag_s.map(human_secs).unwrap_or_else(|| "-".into()),
                    text,
                ),
            ]));
        } else if d.replicas.is_empty() {
            lines.push(Line::from(Span::styled("no replicas", dim)));
        } else {
            for (name, state, lag) in &d.replicas {
                lines.push(Line::from(vec![
                    Span::styled(
                        format!("replica {} {} ", sanitize(name), sanitize(state)),
                        dim,
                    ),
                    Span::styled(lag.map(human_secs).unwrap_or_else(|| "-".into()), text),
                ]));
            }
        }
        // Two short lines: the panel's left half is 30 columns at 80x24.
        if let Some(note) = &d.pooler_note {
            let (what, detail) = note.split_once(": ").unwrap_or((note.as_str(), ""));
            lines.push(Line::from(Span::styled(
                what.to_string(),
                theme.style(Role::Warn),
            )));
            if !detail.is_empty() {
                lines.push(Line::from(Span::styled(format!("  {detail}"), dim)));
            }
        }
        lines.push(Line::from(Span::styled(
            "largest opsdash tables",
            theme.style(Role::Title),
        )));
        // Name and size separated by at least one space whatever the width.
        let name_w = (left.width as usize).saturating_sub(2 + 1 + 8).max(8);
        for (t, bytes) in &d.largest_tables {
            lines.push(Line::from(vec![
                Span::styled(format!("  {}", pad(&sanitize(t), name_w)), text),
                Span::styled(format!(" {:>8}", fmt_bytes(*bytes as f64)), dim),
            ]));
        }
        crate::tui::widgets::render(f, Paragraph::new(lines), left);

        // Right: blocked sessions first (they are the emergency), then the longest queries.
        let blocked_h = if d.blocked.is_empty() {
            1
        } else {
            (d.blocked.len() as u16 + 2).min(right.height / 2)
        };
        let [blocked_area, longest_area] =
            Layout::vertical([Constraint::Length(blocked_h), Constraint::Min(0)]).areas(right);
        if d.blocked.is_empty() {
            crate::tui::widgets::render(
                f,
                Paragraph::new(Span::styled("no blocked sessions", theme.style(Role::Ok))),
                blocked_area,
            );
        } else {
            let rows: Vec<Row> = d
                .blocked
                .iter()
                .map(|a| {
                    Row::new(vec![
                        a.pid.to_string(),
                        a.blocked_by
                            .iter()
                            .map(|p| p.to_string())
                            .collect::<Vec<_>>()
                            .join(","),
                        human_secs(a.seconds),
                        sanitize(&a.query.replace('\n', " ")).into_owned(),
                    ])
                    .style(theme.style(Role::Warn))
                })
                .collect();
            crate::tui::widgets::render(
                f,
                Table::new(
                    rows,
                    [
                        Constraint::Length(7),
                        Constraint::Length(10),
                        Constraint::Length(6),
                        Constraint::Min(10),
                    ],
                )
                .header(
                    Row::new(vec!["blocked", "by", "for", "query"]).style(theme.style(Role::Error)),
                ),
                blocked_area,
            );
        }
        let page = longest_area.height.saturating_sub(1) as usize;
        let sel = self.selected(Section::Database, d.longest.len());
        let rows: Vec<Row> = visible_page(&d.longest, sel, page)
            .map(|(i, a)| {
                Row::new(vec![
                    a.pid.to_string(),
                    human_secs(a.seconds),
                    truncate(&sanitize(&a.state), 8),
                    truncate(&sanitize(&a.wait), 12),
                    sanitize(&a.query.replace('\n', " ")).into_owned(),
                ])
                .style(row_style(i == sel, theme))
            })
            .collect();
        crate::tui::widgets::render(
            f,
            Table::new(
                rows,
                [
                    Constraint::Length(7),
                    Constraint::Length(6),
                    Constraint::Length(8),
                    Constraint::Length(12),
                    Constraint::Min(10),
                ],
            )
            .header(
                Row::new(vec![
                    "pid",
                    "for",
                    "state",
                    "wait",
                    "longest-running queries",
                ])
                .style(dim),
            ),
            longest_area,
        );
    }

    fn draw_worker(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let jobs = self.visible_jobs();
        const COLUMNS: Columns = Columns {
            header: &[
                "job",
                "holder",
                "lease",
                "last run",
                "next",
                "last ok",
                "last error",
            ],
            widths: &[14, 16, 7, 8, 8, 8, 10],
            flexible: 6,
            header_role: Role::Dim,
            wants: &[0, 40],
        };
        let note = self
            .workers
            .note(jobs.is_empty(), ("no worker job has run yet", Role::Dim));
        let when = |t: Option<DateTime<Utc>>| -> String {
            match t {
                None => "-".into(),
                Some(t) if t > ctx.now => format!(
                    "in {}",
                    human_secs((t - ctx.now).num_milliseconds() as f64 / 1000.0)
                ),
                Some(t) => ctx.ago(t),
            }
        };
        draw_table_panel(f, area, theme, &COLUMNS, note, |page| {
            let sel = self.selected(Section::Worker, jobs.len());
            visible_page(&jobs, sel, page)
                .map(|(i, j)| {
                    let holder = match &j.holder {
                        Some(h) if h == ctx.instance => "this instance".to_string(),
                        Some(h) => sanitize(h).into_owned(),
                        None => "-".into(),
                    };
                    let holder_role = if !j.live {
                        Role::Dim
                    } else if j.holder.as_deref() == Some(ctx.instance) {
                        Role::Accent
                    } else {
                        Role::Text
                    };
                    let err = j
                        .last_error
                        .as_deref()
                        .map(|e| sanitize(e).into_owned())
                        .unwrap_or_default();
                    let selected = i == sel;
                    Row::new(vec![
                        Line::from(sanitize(&j.job).into_owned()),
                        Line::from(Span::styled(
                            holder,
                            if selected {
                                theme.style(Role::Selection)
                            } else {
                                theme.style(holder_role)
                            },
                        )),
                        Line::from(Span::styled(
                            if j.live { "live" } else { "expired" },
                            theme.style(if selected {
                                Role::Selection
                            } else if j.live {
                                Role::Ok
                            } else {
                                Role::Warn
                            }),
                        )),
                        Line::from(when(j.last_run)),
                        Line::from(when(j.next_run)),
                        Line::from(when(j.last_ok)),
                        Line::from(Span::styled(
                            err,
                            if selected {
                                theme.style(Role::Selection)
                            } else {
                                theme.style(Role::Error)
                            },
                        )),
                    ])
                    .style(row_style(selected, theme))
                })
                .collect()
        });
    }
}

impl TabView for HealthTab {
    fn id(&self) -> Tab {
        Tab::Health
    }

    fn refresh(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        self.requests(ctx)
    }

    fn refresher(&mut self) -> Option<&mut Refresher> {
        Some(&mut self.refresher)
    }

    fn on_action(&mut self, action: Action, _ctx: &TabCtx) -> Vec<Effect> {
        let i = self.section.index();
        match action {
            Action::Left => {
                self.section = Section::ALL[(i + Section::ALL.len() - 1) % Section::ALL.len()]
            }
            Action::Right | Action::Select => {
                self.section = Section::ALL[(i + 1) % Section::ALL.len()]
            }
            _ => {
                let len = self.section_len(self.section);
                self.cursors[i].apply(action, len, 10);
            }
        }
        Vec::new()
    }

    fn on_data(&mut self, data: Data, _ctx: &TabCtx) -> Vec<Effect> {
        let Data::Health(data) = data else {
            return Vec::new();
        };
        let before: Vec<Option<String>> = Section::ALL
            .iter()
            .map(|&s| {
                let len = self.section_len(s);
                self.section_keys(s).get(self.selected(s, len)).cloned()
            })
            .collect();
        match data {
            HealthData::Services(r) => self.services.set(r),
            HealthData::Integrations(r) => self.integrations.set(r),
            HealthData::Database(r) => self.database.set(r),
            HealthData::Workers(r) => self.workers.set(r),
            HealthData::Retention(r) => self.retention.on_data(r),
        }
        for s in Section::ALL {
            let keys = self.section_keys(s);
            self.cursors[s.index()].follow(before[s.index()].as_ref(), keys);
        }
        Vec::new()
    }

    fn on_filter(&mut self, text: &str, _ctx: &TabCtx) -> Vec<Effect> {
        self.filter = text.to_string();
        self.cursors = [Cursor::default(); 5];
        Vec::new()
    }

    fn filter(&self) -> &str {
        &self.filter
    }

    fn bindings(&self) -> Vec<Binding> {
        vec![
            Binding {
                keys: "h/l",
                help: "section",
            },
            Binding {
                keys: "j/k",
                help: "move in the section",
            },
            Binding {
                keys: "/",
                help: "filter by name",
            },
        ]
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        if area.height >= 40 && area.width >= 120 {
            let [top, bottom] =
                Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
                    .areas(area);
            let [a, b] =
                Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                    .areas(top);
            let [c, d] =
                Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                    .areas(bottom);
            // Worker and retention share the last quarter.
            let [d, e] =
                Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(d);
            for (s, r) in Section::ALL.iter().zip([a, b, c, d, e]) {
                self.draw_section(*s, f, r, *s == self.section, ctx);
            }
            return;
        }
        let [bar, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
        let mut spans = Vec::new();
        for s in Section::ALL {
            let role = if s == self.section {
                Role::TabActive
            } else {
                Role::TabInactive
            };
            spans.push(Span::styled(
                format!(" {} ", s.title()),
                ctx.theme.style(role),
            ));
            spans.push(Span::raw(" "));
        }
        spans.push(Span::styled("h/l", ctx.theme.style(Role::Dim)));
        crate::tui::widgets::render(f, Paragraph::new(Line::from(spans)), bar);
        self.draw_section(self.section, f, body, true, ctx);
    }
}
