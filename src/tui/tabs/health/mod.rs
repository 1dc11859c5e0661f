//! Health tab: checked services (status, last check, response time, uptime 24h/7d/30d, recent
//! checks), integrations (outbound calls), the database (as pg_activity shows it) and the
//! worker jobs, and retention (`retention_section`). On a small terminal one section at a
//! time (h/l to switch); on a large one all of them.
//!
//! Each section is a component in its own file (`services` with `integrations`, `database`,
//! `workers`, `retention_section`) owning its rows, its cursor, its query, its data and its
//! draw (`SectionView`); this file holds what they share (the filter by name, the refresh,
//! the layout) and dispatches keys and data to them.

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

/// What the tab asks of each section.
trait SectionView {
    /// The query of the section's data; the result comes back as `HealthData`.
    fn request(&mut self, ctx: &TabCtx) -> Effect;
    /// What identifies each listed row (those matching `filter`), in order, so the cursor can
    /// follow its item when a refresh re-orders the rows.
    fn keys(&self, filter: &str) -> Vec<String>;
    fn cursor(&self) -> Cursor;
    fn cursor_mut(&mut self) -> &mut Cursor;
    /// Draws inside the section's frame.
    fn draw_in(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx, filter: &str);

    /// The selected row of the listed rows.
    fn selected(&self, filter: &str) -> usize {
        self.cursor()
            .selected
            .min(self.keys(filter).len().saturating_sub(1))
    }
}

/// Whether a row's text matches the tab's filter (a case-insensitive substring).
fn matches(filter: &str, s: &str) -> bool {
    filter.is_empty() || s.to_lowercase().contains(&filter.to_lowercase())
}

pub struct HealthTab {
    pub section: Section,
    services: services::ServicesSection,
    integrations: services::IntegrationsSection,
    database: database::DatabaseSection,
    workers: workers::WorkersSection,
    pub retention: RetentionSection,
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
            services: Default::default(),
            integrations: Default::default(),
            database: Default::default(),
            workers: Default::default(),
            retention: RetentionSection::default(),
            filter: String::new(),
            refresher: Refresher::every(5),
        }
    }

    fn view(&self, s: Section) -> &dyn SectionView {
        match s {
            Section::Services => &self.services,
            Section::Integrations => &self.integrations,
            Section::Database => &self.database,
            Section::Worker => &self.workers,
            Section::Retention => &self.retention,
        }
    }

    fn view_mut(&mut self, s: Section) -> &mut dyn SectionView {
        match s {
            Section::Services => &mut self.services,
            Section::Integrations => &mut self.integrations,
            Section::Database => &mut self.database,
            Section::Worker => &mut self.workers,
            Section::Retention => &mut self.retention,
        }
    }

    fn requests(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        self.refresher.done(ctx.now);
        Section::ALL
            .iter()
            .map(|&s| self.view_mut(s).request(ctx))
            .collect()
    }

    fn draw_section(&self, s: Section, f: &mut Frame, area: Rect, focused: bool, ctx: &DrawCtx) {
        let inner = framed(f, area, s.title(), focused, ctx.theme);
        self.view(s).draw_in(f, inner, ctx, &self.filter);
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
                let len = self.view(self.section).keys(&self.filter).len();
                self.view_mut(self.section)
                    .cursor_mut()
                    .apply(action, len, 10);
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
                let v = self.view(s);
                v.keys(&self.filter).get(v.selected(&self.filter)).cloned()
            })
            .collect();
        match data {
            HealthData::Services(r) => self.services.rows.set(r),
            HealthData::Integrations(r) => self.integrations.rows.set(r),
            HealthData::Database(r) => self.database.db.set(r),
            HealthData::Workers(r) => self.workers.jobs.set(r),
            HealthData::Retention(r) => self.retention.on_data(r),
        }
        for s in Section::ALL {
            let keys = self.view(s).keys(&self.filter);
            self.view_mut(s)
                .cursor_mut()
                .follow(before[s.index()].as_ref(), keys);
        }
        Vec::new()
    }

    fn on_filter(&mut self, text: &str, _ctx: &TabCtx) -> Vec<Effect> {
        self.filter = text.to_string();
        for s in Section::ALL {
            *self.view_mut(s).cursor_mut() = Cursor::default();
        }
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
