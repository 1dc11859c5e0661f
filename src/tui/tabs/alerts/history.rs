//! The Alerts tab's history view: per rule the mean time to acknowledge (MTTA) and to resolve
//! (MTTR) of the alerts that fired in the window, the alerts resolved, acknowledged or
//! silenced in it (newest change first), and the selected alert's timeline (its state
//! transitions from `alert_history`, with the time spent in each). `w` cycles the window.
//! The tab's `/` filter narrows the past alerts as it narrows the open ones (rule, state,
//! severity, labels), and the response times to the rules of the alerts it keeps.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row};
use ratatui::Frame;

use super::labels_text;
use super::list::matches_filter;
use crate::query::alert_history::{self as qh, AlertHistory};
use crate::query::alerts::{self as q, AlertRow, HistoryRow};
use crate::sanitize::sanitize;
use crate::tui::msg::{AlertsData, Effect, QueryRequest};
use crate::tui::theme::Role;
use crate::tui::view::{Cursor, DrawCtx, Panel, TabCtx};
use crate::tui::widgets::{
    alert_state_role, draw_note, draw_table_panel, framed, human_secs, row_style, severity_role,
    truncate, visible_page, Columns,
};

/// The windows `w` cycles through.
const WINDOWS: [(Duration, &str); 3] = [
    (Duration::from_secs(86_400), "24h"),
    (Duration::from_secs(7 * 86_400), "7d"),
    (Duration::from_secs(30 * 86_400), "30d"),
];

pub struct HistoryView {
    pub history: Panel<AlertHistory>,
    pub cursor: Cursor,
    /// Index into `WINDOWS`.
    pub window: usize,
    /// The selected alert's transitions (alert id, rows).
    pub timeline: Panel<(i64, Vec<HistoryRow>)>,
    /// The Alerts tab's `/` filter, lower-cased once here.
    filter: String,
}

impl Default for HistoryView {
    fn default() -> Self {
        HistoryView {
            history: Panel::default(),
            cursor: Cursor::default(),
            window: 1,
            timeline: Panel::default(),
            filter: String::new(),
        }
    }
}

/// Seconds between two instants, when both are known.
fn secs(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Option<f64> {
    Some((to? - from?).num_milliseconds() as f64 / 1000.0)
}

fn fmt_secs(s: Option<f64>) -> String {
    s.map(human_secs).unwrap_or_else(|| "-".into())
}

impl HistoryView {
    pub fn request(&self, ctx: &TabCtx) -> Effect {
        let db = ctx.db.clone();
        let window = WINDOWS[self.window % WINDOWS.len()].0;
        Effect::Query(QueryRequest::new(
            "history",
            async move { qh::alert_history(&db.read, window).await },
            AlertsData::History,
        ))
    }

    /// The past alerts the filter keeps, newest change first.
    pub fn alerts(&self) -> Vec<&AlertRow> {
        self.history
            .data
            .iter()
            .flat_map(|h| &h.alerts)
            .filter(|a| matches_filter(a, &self.filter))
            .collect()
    }

    /// The rules' response times; with a filter, only the rules whose name matches it or
    /// that have a past alert the filter keeps (their times still count all their alerts).
    fn rules(&self) -> Vec<&qh::RuleTimes> {
        let kept: std::collections::HashSet<&str> = if self.filter.is_empty() {
            Default::default()
        } else {
            self.history
                .data
                .iter()
                .flat_map(|h| &h.alerts)
                .filter(|a| matches_filter(a, &self.filter))
                .map(|a| a.rule_name.as_str())
                .collect()
        };
        self.history
            .data
            .iter()
            .flat_map(|h| &h.rules)
            .filter(|r| {
                self.filter.is_empty()
                    || kept.contains(r.rule_name.as_str())
                    || r.rule_name.to_lowercase().contains(&self.filter)
            })
            .collect()
    }

    pub fn selected(&self) -> Option<&AlertRow> {
        self.alerts().get(self.cursor.selected).copied()
    }

    /// Takes the tab's new filter; the cursor goes back to the first alert it keeps.
    pub fn set_filter(&mut self, text: &str) {
        self.filter = text.to_lowercase();
        self.cursor = Cursor::default();
    }

    /// The selected alert's timeline, unless it is the one already shown.
    pub fn timeline_request(&self, ctx: &TabCtx) -> Vec<Effect> {
        let Some(id) = self.selected().map(|a| a.id) else {
            return Vec::new();
        };
        if self.timeline.data.as_ref().is_some_and(|(t, _)| *t == id) {
            return Vec::new();
        }
        let db = ctx.db.clone();
        vec![Effect::Query(QueryRequest::new(
            "timeline",
            async move { Ok((id, q::history(&db.read, id).await?)) },
            AlertsData::Timeline,
        ))]
    }

    pub fn on_data(&mut self, r: Result<AlertHistory, String>, ctx: &TabCtx) -> Vec<Effect> {
        let had = self.selected().map(|a| a.id);
        self.history.set(r);
        let ids: Vec<i64> = self.alerts().into_iter().map(|a| a.id).collect();
        self.cursor.follow(had.as_ref(), ids);
        self.timeline_request(ctx)
    }

    pub fn on_key(&mut self, c: char, ctx: &TabCtx) -> Option<Vec<Effect>> {
        match c {
            'w' => {
                self.window = (self.window + 1) % WINDOWS.len();
                self.cursor = Cursor::default();
                Some(vec![self.request(ctx)])
            }
            _ => None,
        }
    }

    pub fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let t = ctx.theme;
        let rules = self.rules();
        let stats_h = (rules.len() as u16 + 3).clamp(4, (area.height / 3).max(4));
        let [stats, list, timeline] = Layout::vertical([
            Constraint::Length(stats_h),
            Constraint::Min(4),
            Constraint::Length(7.min(area.height / 3).max(3)),
        ])
        .areas(area);
        let label = WINDOWS[self.window % WINDOWS.len()].1;

        let inner = framed(
            f,
            stats,
            &format!("Response times, alerts fired in {label} · w window"),
            false,
            t,
        );
        const RULE_COLUMNS: Columns = Columns {
            header: &["FIRED", "ACKED", "MTTA", "RESOLVED", "MTTR", "RULE"],
            widths: &[6, 6, 7, 8, 7, 18],
            flexible: 5,
            header_role: Role::Header,
            wants: &[],
        };
        let note = self.history.note(
            rules.is_empty(),
            ("no alert fired in the window", Role::Dim),
        );
        draw_table_panel(f, inner, t, &RULE_COLUMNS, note, |page| {
            rules
                .iter()
                .take(page)
                .map(|r| {
                    Row::new(vec![
                        r.fired.to_string(),
                        r.acknowledged.to_string(),
                        fmt_secs(r.mtta_s),
                        r.resolved.to_string(),
                        fmt_secs(r.mttr_s),
                        sanitize(&r.rule_name).into_owned(),
                    ])
                })
                .collect()
        });

        let alerts = self.alerts();
        let matching = if self.filter.is_empty() {
            String::new()
        } else {
            " match the filter".to_string()
        };
        let inner = framed(
            f,
            list,
            &format!(
                "History {label}: {} resolved, acknowledged or silenced{matching} · h/l views",
                alerts.len()
            ),
            true,
            t,
        );
        const COLUMNS: Columns = Columns {
            header: &["WHEN", "SEVERITY", "STATE", "RULE", "TTA", "TTR", "LABELS"],
            widths: &[11, 8, 12, 16, 5, 5, 8],
            flexible: 6,
            header_role: Role::Header,
            wants: &[],
        };
        let note = self
            .history
            .note(alerts.is_empty(), ("nothing in the window", Role::Dim));
        draw_table_panel(f, inner, t, &COLUMNS, note, |page| {
            visible_page(&alerts, self.cursor.selected, page.max(1))
                .map(|(i, a)| {
                    let sel = i == self.cursor.selected;
                    let style = row_style(sel, t);
                    let cell = |s: String, role: Role| {
                        if sel {
                            Span::styled(s, style)
                        } else {
                            Span::styled(s, t.style(role))
                        }
                    };
                    let when = a
                        .resolved_at
                        .or(a.acknowledged_at)
                        .or(a.fired_at)
                        .unwrap_or(a.pending_since);
                    Row::new(vec![
                        cell(ctx.fmt_time(when, "%m-%d %H:%M"), Role::Dim),
                        cell(a.severity.to_string(), severity_role(a.severity)),
                        cell(a.state.to_string(), alert_state_role(a.state)),
                        cell(sanitize(&a.rule_name).into_owned(), Role::Text),
                        cell(fmt_secs(secs(a.fired_at, a.acknowledged_at)), Role::Text),
                        cell(fmt_secs(secs(a.fired_at, a.resolved_at)), Role::Text),
                        cell(sanitize(&labels_text(a)).into_owned(), Role::Dim),
                    ])
                    .style(style)
                })
                .collect()
        });

        self.draw_timeline(f, timeline, ctx);
    }

    /// The selected alert's transitions, each with how long the alert stayed in the state it
    /// entered (to the next transition; the last one, if not resolved, to now).
    fn draw_timeline(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let t = ctx.theme;
        let Some(sel) = self.selected() else {
            framed(f, area, "Timeline", false, t);
            return;
        };
        let inner = framed(f, area, &format!("Timeline of alert {}", sel.id), false, t);
        let Some((_, rows)) = self.timeline.data.as_ref().filter(|(id, _)| *id == sel.id) else {
            let (text, role) = self
                .timeline
                .placeholder()
                .unwrap_or(("loading…".into(), Role::Dim));
            draw_note(f, inner, &text, role, t);
            return;
        };
        if rows.is_empty() {
            draw_note(f, inner, "no recorded transitions", Role::Dim, t);
            return;
        }
        let dim = t.style(Role::Dim);
        let width = inner.width as usize;
        // The newest transitions when they do not all fit.
        let skip = rows.len().saturating_sub(inner.height as usize);
        let lines: Vec<Line> = rows
            .iter()
            .enumerate()
            .skip(skip)
            .map(|(i, h)| {
                let until = rows
                    .get(i + 1)
                    .map(|n| n.ts)
                    .or_else(|| h.to_state.is_open().then_some(ctx.now));
                let stayed = until
                    .map(|u| format!(" for {}", human_secs((u - h.ts).num_seconds() as f64)))
                    .unwrap_or_default();
                let from = h
                    .from_state
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "·".into());
                let note = h
                    .note
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .map(|n| format!(" \"{n}\""))
                    .unwrap_or_default();
                let rest = sanitize(&format!(" by {}{note}{stayed}", h.actor)).into_owned();
                Line::from(vec![
                    Span::styled(ctx.fmt_time(h.ts, "%m-%d %H:%M:%S "), dim),
                    Span::styled(format!("{from} -> "), dim),
                    Span::styled(
                        h.to_state.to_string(),
                        t.style(alert_state_role(h.to_state)),
                    ),
                    Span::styled(truncate(&rest, width.saturating_sub(40)), dim),
                ])
            })
            .collect();
        crate::tui::widgets::render(f, Paragraph::new(lines), inner);
    }
}
