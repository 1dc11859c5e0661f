//! Alerts tab: open alerts sorted by severity, state and age (with a filter), grouped by rule
//! and its `group_by` labels (Enter expands a group), a detail pane (value against threshold,
//! a sparkline of the measured value, labels, runbook, notification attempts, history), and
//! the operator's actions on the marked alerts (space), the selected group or alert: `a`
//! acknowledge and `R` resolve with a note, `s` silence (an editor of matchers prefilled from
//! the selection, duration and comment, with a live count of what it matches). Sub-views (h/l)
//! for the rules (`e` enable/disable, `T` evaluate now without notifying), the silences (`u`
//! expire) and the history (MTTA/MTTR per rule, past alerts, one alert's timeline).

//!
//! The tab composes one component per view (as gitui composes its components): `list` (the
//! alerts, with the `detail` pane of the selected one), `rules`, `silences`, and the `prompt`
//! over them; each owns its state, its keys, its data and its draw. The tab holds what they
//! share (the status line, the open prompt, the config: `Shared`), asks the operator's
//! permission before any key that writes, and dispatches to the view on screen.

mod detail;
mod history;
mod jump;
mod list;
mod prompt;
mod rules;
mod silences;

use std::sync::Arc;

use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Span;
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::config::Config;
use crate::query::alerts::AlertRow;
use crate::sanitize::sanitize;
use crate::tui::keymap::Action;
use crate::tui::msg::{AlertsData, Data, Effect, QueryRequest, Tab};
use crate::tui::theme::Role;
use crate::tui::view::{Binding, Cursor, DrawCtx, Refresher, TabCtx, TabView};
use crate::tui::widgets::truncate;

use history::HistoryView;
pub use jump::logs_jump;
use list::AlertList;
use prompt::Prompt;
use rules::RulesView;
use silences::SilencesView;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Alerts,
    Rules,
    Silences,
    History,
}

/// The views in h/l order.
const VIEWS: [View; 4] = [View::Alerts, View::Rules, View::Silences, View::History];

/// What the views share: the status line under them, the prompt open over them, the config
/// the operator actions need.
pub struct Shared {
    pub message: Option<(String, Role)>,
    pub prompt: Option<Prompt>,
    pub cfg: Arc<Config>,
}

impl Shared {
    /// Runs an operator action as a query; its one-line outcome comes back as "action".
    pub fn action<F>(&mut self, fut: F) -> Vec<Effect>
    where
        F: std::future::Future<Output = anyhow::Result<String>> + Send + 'static,
    {
        self.message = Some(("working…".into(), Role::Dim));
        vec![Effect::Query(QueryRequest::new(
            "action",
            fut,
            AlertsData::Action,
        ))]
    }
}

pub struct AlertsTab {
    view: View,
    list: AlertList,
    rules: RulesView,
    silences: SilencesView,
    history: HistoryView,
    shared: Shared,
    filter: String,
    refresher: Refresher,
}

fn labels_text(a: &AlertRow) -> String {
    a.labels
        .0
        .iter()
        .filter(|(k, _)| *k != "alertname" && *k != "severity")
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
        None => "-".into(),
    }
}

impl AlertsTab {
    pub fn new(cfg: &Config) -> AlertsTab {
        AlertsTab {
            view: View::Alerts,
            list: AlertList::default(),
            rules: RulesView::default(),
            silences: SilencesView::default(),
            history: HistoryView::default(),
            shared: Shared {
                message: None,
                prompt: None,
                cfg: Arc::new(cfg.clone()),
            },
            filter: String::new(),
            refresher: Refresher::every(5),
        }
    }

    /// The alerts shown: matching the filter, most severe first, then firing before the rest,
    /// then oldest first.
    pub fn visible_alerts(&self) -> Vec<&AlertRow> {
        self.list.visible()
    }

    /// The cursor of the view on screen.
    fn cursor(&mut self) -> &mut Cursor {
        match self.view {
            View::Alerts => &mut self.list.cursor,
            View::Rules => &mut self.rules.cursor,
            View::Silences => &mut self.silences.cursor,
            View::History => &mut self.history.cursor,
        }
    }

    fn len(&self) -> usize {
        match self.view {
            View::Alerts => self.list.rows().len(),
            View::Rules => self.rules.visible().len(),
            View::Silences => self.silences.visible().len(),
            View::History => self.history.alerts().len(),
        }
    }

    fn on_view_key(&mut self, c: char, ctx: &TabCtx) -> Option<Vec<Effect>> {
        // Asked before any prompt opens: a read-only session is told why in the status line
        // and nothing is sent to the database.
        let doing = match (self.view, c) {
            (View::Alerts, 'a') => Some("acknowledging"),
            (View::Alerts, 'R') => Some("resolving"),
            (View::Alerts, 's') => Some("silencing"),
            (View::Silences, 'u') => Some("expiring a silence"),
            (View::Rules, 'e') => Some("changing a rule"),
            _ => None,
        };
        if let Some(why) = doing.and_then(|d| ctx.db.access.refusal(d)) {
            return Some(vec![Effect::Say {
                text: why,
                error: true,
            }]);
        }
        let sh = &mut self.shared;
        match self.view {
            View::Alerts => self.list.on_key(c, sh, ctx),
            View::Rules => self.rules.on_key(c, sh, ctx),
            View::Silences => self.silences.on_key(c, sh, ctx),
            View::History => self.history.on_key(c, ctx),
        }
    }
}

impl TabView for AlertsTab {
    fn id(&self) -> Tab {
        Tab::Alerts
    }

    fn refresh(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        self.refresher.done(ctx.now);
        let mut fx = vec![
            AlertList::request(ctx),
            RulesView::request(ctx),
            SilencesView::request(ctx),
        ];
        fx.extend(self.list.detail_request(ctx));
        if self.view == View::History {
            fx.push(self.history.request(ctx));
        }
        fx
    }

    fn tick(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        if self.refresher.due(ctx.now) && self.shared.prompt.is_none() {
            self.refresh(ctx)
        } else {
            Vec::new()
        }
    }

    fn on_action(&mut self, a: Action, ctx: &TabCtx) -> Vec<Effect> {
        match a {
            Action::Left | Action::Right => {
                let n = VIEWS.len();
                let i = VIEWS.iter().position(|v| *v == self.view).unwrap_or(0);
                let next = if a == Action::Right {
                    (i + 1) % n
                } else {
                    (i + n - 1) % n
                };
                self.view = VIEWS[next];
                *self.cursor() = Cursor::default();
                if self.view == View::History {
                    return vec![self.history.request(ctx)];
                }
                Vec::new()
            }
            // Esc first drops the marks, then the message.
            Action::Back if self.view == View::Alerts && !self.list.marked.is_empty() => {
                self.list.marked.clear();
                Vec::new()
            }
            Action::Back => {
                self.shared.message = None;
                self.rules.preview = None;
                Vec::new()
            }
            Action::Select if self.view == View::Alerts => {
                if self.list.toggle_group() {
                    return Vec::new();
                }
                let rules = self.rules.rules.data.as_deref().unwrap_or_default();
                match self.list.jump(rules, ctx) {
                    Some(j) => vec![Effect::Jump(j)],
                    None => Vec::new(),
                }
            }
            _ => {
                let len = self.len();
                let cursor = self.cursor();
                let before = cursor.selected;
                cursor.apply(a, len, 8);
                match self.view {
                    View::Alerts if before != self.list.cursor.selected => {
                        self.list.detail_request(ctx)
                    }
                    View::History => self.history.timeline_request(ctx),
                    _ => Vec::new(),
                }
            }
        }
    }

    fn captures_input(&self) -> bool {
        self.shared.prompt.is_some()
    }

    fn on_key(&mut self, key: &KeyEvent, ctx: &TabCtx) -> Option<Vec<Effect>> {
        if self.shared.prompt.is_some() {
            let fx = Prompt::on_key(&mut self.shared, key, ctx);
            // The marks were for the action just sent.
            if self.shared.prompt.is_none() && !fx.is_empty() {
                self.list.marked.clear();
            }
            return Some(fx);
        }
        match key.code {
            KeyCode::Char(c) => self.on_view_key(c, ctx),
            _ => None,
        }
    }

    fn on_data(&mut self, data: Data, ctx: &TabCtx) -> Vec<Effect> {
        let Data::Alerts(data) = data else {
            return Vec::new();
        };
        // Each view keeps its own cursor; only the view on screen follows its selection.
        match data {
            AlertsData::Alerts(r) => return self.list.on_data(r, self.view == View::Alerts, ctx),
            AlertsData::Rules(r) => {
                if let Ok(rules) = &r {
                    self.list.group_by = rules
                        .iter()
                        .map(|r| (r.id, r.spec.group_by.clone()))
                        .collect();
                }
                self.rules.on_data(r, self.view == View::Rules)
            }
            AlertsData::SilencePreview(r) => {
                if let Some(Prompt::Silence(form)) = self.shared.prompt.as_mut() {
                    form.on_preview(r);
                }
            }
            AlertsData::History(r) => return self.history.on_data(r, ctx),
            AlertsData::Timeline(r) => self.history.timeline.set(r),
            AlertsData::Silences(r) => self.silences.on_data(r, self.view == View::Silences),
            AlertsData::Detail(r) => self.list.detail.detail.set(r),
            AlertsData::Preview(r) => self.rules.on_preview(r, &mut self.shared),
            AlertsData::Action(r) => {
                self.shared.message = Some(match r {
                    Ok(m) => (m, Role::Ok),
                    Err(e) => (e, Role::Error),
                });
                return self.refresh(ctx);
            }
        }
        Vec::new()
    }

    fn on_filter(&mut self, text: &str, ctx: &TabCtx) -> Vec<Effect> {
        self.filter = text.to_string();
        self.list.filter = text.to_string();
        self.rules.filter = text.to_string();
        self.list.cursor = Cursor::default();
        self.rules.cursor = Cursor::default();
        self.silences.cursor = Cursor::default();
        let mut fx = self.list.detail_request(ctx);
        self.history.set_filter(text);
        if self.view == View::History {
            fx.extend(self.history.timeline_request(ctx));
        }
        fx
    }

    fn filter(&self) -> &str {
        &self.filter
    }

    fn operator_keys(&self) -> &'static [&'static str] {
        &["a", "R", "s", "e", "u"]
    }

    fn bindings(&self) -> Vec<Binding> {
        vec![
            Binding {
                keys: "enter",
                help: "its log lines (Logs tab, alert's scope and time)",
            },
            Binding {
                keys: "a",
                help: "acknowledge (with a note)",
            },
            Binding {
                keys: "R",
                help: "resolve (with a note)",
            },
            Binding {
                keys: "s",
                help: "silence: matchers (= != =~ !~), duration, comment",
            },
            Binding {
                keys: "h l",
                help: "alerts / rules / silences / history",
            },
            Binding {
                keys: "e",
                help: "rules: enable / disable",
            },
            Binding {
                keys: "T",
                help: "rules: evaluate now, send nothing",
            },
            Binding {
                keys: "u",
                help: "silences: expire",
            },
            Binding {
                keys: "space",
                help: "mark / unmark (a group line: all its alerts); esc unmarks",
            },
            Binding {
                keys: "enter",
                help: "on a group line (▸ 15 alerts): expand / collapse",
            },
            Binding {
                keys: "a R s",
                help: "act on the marked alerts, else the group, else the alert",
            },
            Binding {
                keys: "tab",
                help: "silence editor: next field; it counts what it matches",
            },
            Binding {
                keys: "w",
                help: "history: window 24h / 7d / 30d (MTTA, MTTR)",
            },
        ]
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let msg_h = u16::from(self.shared.message.is_some());
        let [body, msg] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(msg_h)]).areas(area);
        match self.view {
            View::Alerts => self.list.draw(f, body, ctx),
            View::Rules => self.rules.draw(f, body, ctx),
            View::Silences => self.silences.draw(f, body, ctx),
            View::History => self.history.draw(f, body, ctx),
        }
        if let Some((m, role)) = &self.shared.message {
            crate::tui::widgets::render(
                f,
                Paragraph::new(Span::styled(
                    truncate(&sanitize(m), msg.width as usize),
                    ctx.theme.style(*role),
                )),
                msg,
            );
        }
        if let Some(p) = &self.shared.prompt {
            p.draw(f, body, ctx.theme);
        }
    }
}
