//! The Alerts tab's main view: open alerts sorted by severity, state and age (with the tab's
//! filter), the detail pane of the selected one below, and its keys: `a` acknowledge, `R`
//! resolve, `s` silence alerts like it (each through a prompt).

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Span;
use ratatui::widgets::Row;
use ratatui::Frame;

use super::detail::DetailPane;
use super::prompt::Prompt;
use super::{labels_text, num, Shared};
use crate::alerts::Matcher;
use crate::model::AlertState;
use crate::query::alerts::{self as q, AlertRow};
use crate::query::rules::Rule;
use crate::sanitize::sanitize;
use crate::tui::line_input::LineInput;
use crate::tui::msg::{AlertsData, Effect, Jump, QueryRequest};
use crate::tui::theme::Role;
use crate::tui::view::{Cursor, DrawCtx, Panel, TabCtx};
use crate::tui::widgets::{
    alert_state_role, draw_table_panel, framed, row_style, severity_role, visible_page, Columns,
};

#[derive(Default)]
pub struct AlertList {
    pub alerts: Panel<Vec<AlertRow>>,
    pub detail: DetailPane,
    pub cursor: Cursor,
    pub filter: String,
}

impl AlertList {
    pub fn request(ctx: &TabCtx) -> Effect {
        let db = ctx.db.clone();
        Effect::Query(QueryRequest::new(
            "alerts",
            async move { q::list_alerts(&db.read, false, 500).await },
            AlertsData::Alerts,
        ))
    }

    /// The alerts shown: matching the filter, most severe first, then firing before the rest,
    /// then oldest first.
    pub fn visible(&self) -> Vec<&AlertRow> {
        let f = self.filter.to_lowercase();
        let mut v: Vec<&AlertRow> = self
            .alerts
            .data
            .iter()
            .flatten()
            .filter(|a| {
                f.is_empty()
                    || format!(
                        "{} {} {} {}",
                        rule_cell(a),
                        a.state,
                        a.severity,
                        labels_text(a)
                    )
                    .to_lowercase()
                    .contains(&f)
            })
            .collect();
        // Gravest first, then firing before pending, acknowledged and suppressed (the order
        // `AlertState` declares).
        v.sort_by_key(|a| {
            (
                std::cmp::Reverse(a.severity),
                a.state,
                a.fired_at.unwrap_or(a.pending_since),
                a.id,
            )
        });
        v
    }

    pub fn selected(&self) -> Option<&AlertRow> {
        self.visible().get(self.cursor.selected).copied()
    }

    pub fn detail_request(&self, ctx: &TabCtx) -> Vec<Effect> {
        DetailPane::request(self.selected(), ctx)
    }

    /// New alerts: the same alert stays selected when the order changes (it was
    /// acknowledged...); a different selection asks for its detail.
    pub fn on_data(
        &mut self,
        r: Result<Vec<AlertRow>, String>,
        shown: bool,
        ctx: &TabCtx,
    ) -> Vec<Effect> {
        let had = self.selected().map(|a| a.id);
        self.alerts.set(r);
        if shown {
            let ids: Vec<i64> = self.visible().iter().map(|a| a.id).collect();
            self.cursor.follow(had.as_ref(), ids);
        }
        if self.selected().map(|a| a.id) != had {
            return self.detail_request(ctx);
        }
        Vec::new()
    }

    /// `Enter`: the selected alert's log lines; its rule from the rules view or the detail.
    pub fn jump(&self, rules: &[Rule], ctx: &TabCtx) -> Option<Jump> {
        let a = self.selected()?;
        let rule = rules
            .iter()
            .find(|r| r.id == a.rule_id)
            .or_else(|| {
                self.detail
                    .detail
                    .data
                    .as_ref()
                    .filter(|d| d.alert.id == a.id)
                    .and_then(|d| d.rule.as_ref())
            })
            .map(|r| &r.spec);
        Some(super::jump::logs_jump(a, rule, ctx.now))
    }

    pub fn on_key(&mut self, c: char, sh: &mut Shared) -> Option<Vec<Effect>> {
        match c {
            'a' => {
                let a = self.selected()?;
                if a.state != AlertState::Firing {
                    sh.message = Some((
                        format!("alert {} is {}, not firing", a.id, a.state),
                        Role::Warn,
                    ));
                    return Some(Vec::new());
                }
                sh.prompt = Some(Prompt::Ack {
                    id: a.id,
                    input: LineInput::prompt("", "note (optional)"),
                });
                Some(Vec::new())
            }
            'R' => {
                let a = self.selected()?;
                sh.prompt = Some(Prompt::Resolve {
                    id: a.id,
                    input: LineInput::prompt("", "note (optional)"),
                });
                Some(Vec::new())
            }
            's' => {
                let a = self.selected()?;
                let matchers = a
                    .labels
                    .0
                    .iter()
                    .filter(|(k, _)| *k != "severity")
                    .map(|(k, v)| Matcher {
                        name: k.clone(),
                        op: "=".into(),
                        value: v.clone(),
                    })
                    .collect();
                sh.prompt = Some(Prompt::Silence {
                    matchers,
                    input: LineInput::prompt("1h", "duration"),
                });
                Some(Vec::new())
            }
            _ => None,
        }
    }

    pub fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let t = ctx.theme;
        let rows = self.visible();
        let list_h = (rows.len() as u16 + 3).clamp(4, area.height / 2 + 1);
        let [top, bottom] =
            Layout::vertical([Constraint::Length(list_h), Constraint::Min(3)]).areas(area);
        // The count is the one every view shows (`OpenCounts`); testing-mode alerts apart.
        let open = q::OpenCounts::of(self.alerts.data.iter().flatten());
        let mut title = format!("Alerts open {}: {}", open.total(), open.by_severity());
        if open.testing > 0 {
            title.push_str(&format!(" +{} testing", open.testing));
        }
        if !self.filter.is_empty() {
            title.push_str(&format!(" · {} match the filter", rows.len()));
        }
        title.push_str(" · h/l: rules, silences");
        let inner = framed(f, top, &title, true, t);
        const COLUMNS: Columns = Columns {
            header: &["SEVERITY", "STATE", "RULE", "VALUE", "AGE", "LABELS"],
            widths: &[8, 19, 18, 8, 8, 10],
            flexible: 5,
            header_role: Role::Header,
            wants: &[],
        };
        let note = self
            .alerts
            .note(rows.is_empty(), ("no open alerts", Role::Ok));
        draw_table_panel(f, inner, t, &COLUMNS, note, |page| {
            visible_page(&rows, self.cursor.selected, page.max(1))
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
                    Row::new(vec![
                        cell(a.severity.to_string(), severity_role(a.severity)),
                        cell(
                            sanitize(&a.state_label()).into_owned(),
                            if a.testing {
                                Role::Dim
                            } else {
                                alert_state_role(a.state)
                            },
                        ),
                        cell(
                            sanitize(&rule_cell(a)).into_owned(),
                            if a.source.is_some() {
                                Role::Accent
                            } else {
                                Role::Text
                            },
                        ),
                        cell(num(a.value), Role::Text),
                        cell(ctx.ago(a.fired_at.unwrap_or(a.pending_since)), Role::Dim),
                        cell(sanitize(&labels_text(a)).into_owned(), Role::Dim),
                    ])
                    .style(style)
                })
                .collect()
        });
        self.detail.draw(self.selected(), f, bottom, ctx);
    }
}

/// The RULE column: an external alert's name with its sender, so it stands apart from
/// opsdash's own (`HighLatency (prometheus)`).
fn rule_cell(a: &AlertRow) -> String {
    match &a.source {
        Some(src) => format!("{} ({src})", a.rule_name),
        None => a.rule_name.clone(),
    }
}
