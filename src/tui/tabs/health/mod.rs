//! Health tab: checked services (status, last check, response time, uptime 24h/7d/30d, recent
//! checks), integrations (outbound calls), the database (as pg_activity shows it) and the
//! worker jobs, and retention (`retention_section`). On a small terminal one section at a
//! time (h/l to switch); on a large one all of them. This file holds the tab (state, keys,
//! data, layout); each section draws from its own file (`services`, `database`, `workers`,
//! `retention_section`).

mod database;
pub mod retention_section;
mod services;
mod workers;

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
