//! The retention section of the Health tab: per table the period, oldest data, next drop,
//! archived bytes and the last error of a retention step; the failing tables come first. The
//! Health tab embeds it as its "Retention" section (`draw_table` inside the section's frame).

use chrono::{DateTime, Utc};
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Row, Table};
use ratatui::Frame;

use crate::query::retention::{self as q, RetentionStatus};
use crate::sanitize::sanitize;
use crate::tui::msg::{Effect, HealthData, QueryRequest, Res};
use crate::tui::theme::Role;
use crate::tui::view::{Cursor, DrawCtx, Panel, TabCtx};
use crate::tui::widgets::{block, draw_note, fmt_bytes, truncate};

#[derive(Debug, Default)]
pub struct RetentionSection {
    pub rows: Panel<Vec<RetentionStatus>>,
    /// The Health tab's cursor over the tables (moved with j/k; the table lists them all).
    cursor: Cursor,
}

/// The Health tab's view of the section: the filter names services and jobs, so every table
/// stays listed.
impl super::SectionView for RetentionSection {
    fn request(&mut self, ctx: &TabCtx) -> Effect {
        RetentionSection::request(self, ctx)
    }

    fn keys(&self, _filter: &str) -> Vec<String> {
        RetentionSection::keys(self)
    }

    fn cursor(&self) -> Cursor {
        self.cursor
    }

    fn cursor_mut(&mut self) -> &mut Cursor {
        &mut self.cursor
    }

    fn draw_in(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx, _filter: &str) {
        self.draw_table(f, area, ctx);
    }
}

impl RetentionSection {
    /// The query effect; its result comes back to the Health tab as `HealthData::Retention`.
    pub fn request(&mut self, ctx: &TabCtx) -> Effect {
        self.rows.loading = true;
        let db = ctx.db.clone();
        let cfg = ctx.cfg.retention.clone();
        Effect::Query(QueryRequest::new(
            "retention",
            async move { q::retention_status(&db, &cfg).await },
            HealthData::Retention,
        ))
    }

    /// Takes the result of the `request` query.
    pub fn on_data(&mut self, res: Res<Vec<RetentionStatus>>) {
        self.rows.set(res);
    }

    pub fn len(&self) -> usize {
        self.rows.data.as_ref().map_or(0, |v| v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The table names in the order listed (the keys a cursor follows across refreshes).
    pub fn keys(&self) -> Vec<String> {
        self.ordered()
            .into_iter()
            .map(|s| s.table.clone())
            .collect()
    }

    /// Tables with an error first, then the partitioned ones (the ones with drops), as listed.
    fn ordered(&self) -> Vec<&RetentionStatus> {
        let mut v: Vec<&RetentionStatus> = self.rows.data.iter().flatten().collect();
        v.sort_by_key(|s| (s.last_error.is_none(), s.next_drop.is_none()));
        v
    }

    pub fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let errors = self
            .rows
            .data
            .iter()
            .flatten()
            .filter(|s| s.last_error.is_some())
            .count();
        let title = if errors > 0 {
            format!("Retention ({errors} failing)")
        } else {
            "Retention".to_string()
        };
        let b = block(&title, false, theme);
        let inner = b.inner(area);
        crate::tui::widgets::render(f, b, area);
        self.draw_table(f, inner, ctx);
    }

    /// The table alone, for a caller that draws its own frame (the Health tab's sections).
    pub fn draw_table(&self, f: &mut Frame, inner: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        if let Some((msg, role)) = self.rows.placeholder() {
            draw_note(f, inner, &msg, role, theme);
            return;
        }
        let day = |t: Option<DateTime<Utc>>| {
            t.map(|t| ctx.fmt_time(t, "%Y-%m-%d"))
                .unwrap_or_else(|| "-".into())
        };
        let err_w = inner.width.saturating_sub(16 + 6 + 11 + 11 + 9 + 5) as usize;
        let rows: Vec<Row> = self
            .ordered()
            .into_iter()
            .take(inner.height.saturating_sub(1) as usize)
            .map(|s| {
                let (note, role) = match &s.last_error {
                    Some(e) => (truncate(&sanitize(e), err_w.max(1)), Role::Error),
                    None => ("ok".to_string(), Role::Text),
                };
                Row::new(vec![
                    truncate(&sanitize(&s.table), 16),
                    format!("{}d", s.keep_days),
                    day(s.oldest),
                    day(s.next_drop),
                    if s.archive_bytes > 0 {
                        fmt_bytes(s.archive_bytes as f64)
                    } else {
                        "-".into()
                    },
                    note,
                ])
                .style(theme.style(role))
            })
            .collect();
        let table = Table::new(
            rows,
            [
                Constraint::Length(16),
                Constraint::Length(6),
                Constraint::Length(11),
                Constraint::Length(11),
                Constraint::Length(9),
                Constraint::Min(4),
            ],
        )
        .header(
            Row::new(vec![
                "table",
                "keep",
                "oldest",
                "next drop",
                "archived",
                "status",
            ])
            .style(theme.style(Role::Dim)),
        );
        crate::tui::widgets::render(f, table, inner);
    }
}
