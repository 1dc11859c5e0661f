//! Alerts tab: open alerts sorted by severity, state and age (with a filter), a detail pane
//! (value against threshold, a sparkline of the measured value, labels, runbook, notification
//! attempts, history), and the operator's actions: `a` acknowledge and `R` resolve with a note,
//! `s` silence (matchers prefilled from the alert, a duration prompt). Sub-views (h/l) for the
//! rules (`e` enable/disable, `T` evaluate now without notifying) and the silences (`u` expire).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Wrap};
use ratatui::Frame;

use crate::alerts::engine;
use crate::alerts::operator::{self, Operator};
use crate::alerts::Matcher;
use crate::config::Config;
use crate::model::{AlertState, TimeRange};
use crate::query::alert_metrics::Sample;
use crate::query::alerts::{self as q, AlertRow};
use crate::query::rules::Rule;
use crate::query::silences::SilenceRow;
use crate::query::{outbox, rules, silences};
use crate::sanitize::sanitize;
use crate::tui::keymap::Action;
use crate::tui::line_input::LineInput;
use crate::tui::msg::{AlertDetail as Detail, AlertsData, Data, Effect, Jump, QueryRequest, Tab};
use crate::tui::theme::{Role, Theme};
use crate::tui::view::{Binding, Cursor, DrawCtx, Panel, Refresher, TabCtx, TabView};
use crate::tui::widgets::{
    alert_state_role, draw_note, draw_spark, draw_table_panel, framed, row_style, severity_role,
    status_role, truncate, visible_page, Columns,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Alerts,
    Rules,
    Silences,
}

/// A text prompt open over the tab.
pub enum Prompt {
    Ack {
        id: i64,
        input: LineInput,
    },
    Resolve {
        id: i64,
        input: LineInput,
    },
    Silence {
        matchers: Vec<Matcher>,
        input: LineInput,
    },
}

impl Prompt {
    fn input(&mut self) -> &mut LineInput {
        match self {
            Prompt::Ack { input, .. }
            | Prompt::Resolve { input, .. }
            | Prompt::Silence { input, .. } => input,
        }
    }
    fn title(&self) -> String {
        match self {
            Prompt::Ack { id, .. } => {
                format!("Acknowledge alert {id}: note (Enter to save, Esc to cancel)")
            }
            Prompt::Resolve { id, .. } => {
                format!("Resolve alert {id}: note (Enter to save, Esc to cancel)")
            }
            Prompt::Silence { .. } => "Silence for how long? e.g. 30m, 2h (Enter / Esc)".into(),
        }
    }
}

/// Each label set's value and whether the condition holds, or the error.
pub type PreviewResult = Result<Vec<(Sample, bool)>, String>;

pub struct AlertsTab {
    pub view: View,
    pub alerts: Panel<Vec<AlertRow>>,
    pub rules: Panel<Vec<Rule>>,
    pub silences: Panel<Vec<SilenceRow>>,
    pub detail: Panel<Detail>,
    pub preview: Option<(String, PreviewResult)>,
    pub cursor: Cursor,
    pub prompt: Option<Prompt>,
    pub message: Option<(String, Role)>,
    filter: String,
    refresher: Refresher,
    cfg: Arc<Config>,
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

/// How far before an alert started its log lines are worth reading.
const LEAD_IN: chrono::Duration = chrono::Duration::minutes(5);

/// Alert labels that name a column of the Logs filter language.
fn log_field(label: &str) -> Option<&'static str> {
    Some(match label {
        "service" => "service",
        "route" => "route",
        "host" => "host",
        "user" | "user_id" => "user",
        "trace" | "trace_id" => "trace",
        _ => return None,
    })
}

/// Where `Enter` on an alert leads: the Logs tab filtered to the alert's scope (its labels
/// that are log fields, the rule's service/route scope, a `log_count` rule's own filter) and
/// time window (from `LEAD_IN` before it turned pending to its resolution, or live when it
/// is still open), with the shared range wide enough to hold that window.
pub fn logs_jump(
    alert: &AlertRow,
    rule: Option<&crate::alerts::RuleSpec>,
    now: DateTime<Utc>,
) -> Jump {
    let mut terms: Vec<String> = Vec::new();
    let mut fields: Vec<&str> = Vec::new();
    for (k, v) in alert.labels.0.iter() {
        if let Some(field) = log_field(k) {
            terms.push(crate::filter::field_term(field, v));
            fields.push(field);
        }
    }
    if let Some(rule) = rule {
        for key in ["service", "route"] {
            match rule.scope.get(key) {
                Some(v) if !v.is_empty() && !fields.contains(&key) => {
                    terms.push(crate::filter::field_term(key, v))
                }
                _ => {}
            }
        }
        if rule.metric == "log_count" {
            if let Some(f) = rule.filter.as_deref().filter(|f| !f.trim().is_empty()) {
                terms.push(f.trim().to_string());
            }
        }
    }
    let start = alert.pending_since - LEAD_IN;
    terms.push(format!("since:{}", start.format("%Y-%m-%dT%H:%M:%SZ")));
    if let Some(end) = alert.resolved_at {
        terms.push(format!(
            "until:{}",
            (end + chrono::Duration::minutes(1)).format("%Y-%m-%dT%H:%M:%SZ")
        ));
    }
    let age = now - start;
    let range = TimeRange::ALL
        .into_iter()
        .find(|r| r.duration() >= age)
        .unwrap_or(TimeRange::D30);
    Jump {
        tab: Some(Tab::Logs),
        filter: terms.join(" "),
        trace: None,
        range: Some(range),
        note: format!(
            "log lines of alert {} ({})",
            alert.id,
            sanitize(&alert.rule_name)
        ),
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

/// Since when the condition is false and when the alert resolves if nothing changes (or why
/// it will not by itself), for the detail pane.
fn resolution_line(a: &AlertRow, rule: Option<&Rule>, ctx: &DrawCtx) -> Option<String> {
    use crate::alerts::state::resolves_at;
    let state = a.state;
    if state == AlertState::Resolved {
        return None;
    }
    if let Some(src) = &a.source {
        // An external alert has no condition here: its sender decides, and its silence
        // (endsAt without a re-send) ends it.
        let until = a
            .ends_at
            .map(|t| {
                format!(
                    ", or at {} ({}) unless re-sent",
                    ctx.fmt_time(t, "%H:%M:%S"),
                    crate::tui::widgets::human_age(ctx.now - t)
                        .trim_end_matches(" ago")
                        .to_string()
                        + if t > ctx.now { " from now" } else { " ago" }
                )
            })
            .unwrap_or_default();
        return Some(format!("resolves when {src} says so{until}"));
    }
    let rule = &rule?.spec;
    let period = std::time::Duration::from_secs(rule.resolve_after_s.max(0) as u64);
    let when = |t: DateTime<Utc>| {
        let d = t - ctx.now;
        let rel = if d.num_seconds() > 0 {
            format!(
                "in {}",
                crate::tui::widgets::human_age(-d).trim_end_matches(" ago")
            )
        } else {
            "at the next evaluation".to_string()
        };
        format!("at {} ({rel})", ctx.fmt_time(t, "%H:%M:%S"))
    };
    let false_since = |since: DateTime<Utc>| {
        format!(
            "condition false since {} ({})",
            ctx.fmt_time(since, "%H:%M:%S"),
            ctx.ago(since)
        )
    };
    Some(match a.condition_false_since {
        _ if state == AlertState::Pending => {
            "pending: goes away at the first evaluation that finds the condition false".into()
        }
        Some(since) if !rule.auto_resolve => format!(
            "{}; the rule does not resolve by itself: R to resolve",
            false_since(since)
        ),
        Some(since) => {
            let at = resolves_at(state, Some(since), rule.auto_resolve, period)?;
            format!(
                "{}; resolves {} if it stays false",
                false_since(since),
                when(at)
            )
        }
        None if !rule.auto_resolve => {
            "condition true; the rule does not resolve by itself: R to resolve".into()
        }
        None => format!(
            "condition true at the last evaluation; resolves {} after it turns false",
            humantime::format_duration(period)
        ),
    })
}

impl AlertsTab {
    pub fn new(cfg: &Config) -> AlertsTab {
        AlertsTab {
            view: View::Alerts,
            alerts: Panel::default(),
            rules: Panel::default(),
            silences: Panel::default(),
            detail: Panel::default(),
            preview: None,
            cursor: Cursor::default(),
            prompt: None,
            message: None,
            filter: String::new(),
            refresher: Refresher::every(5),
            cfg: Arc::new(cfg.clone()),
        }
    }

    /// The alerts shown: matching the filter, most severe first, then firing before the rest,
    /// then oldest first.
    pub fn visible_alerts(&self) -> Vec<&AlertRow> {
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

    fn visible_rules(&self) -> Vec<&Rule> {
        let f = self.filter.to_lowercase();
        self.rules
            .data
            .iter()
            .flatten()
            .filter(|r| {
                f.is_empty()
                    || format!("{} {} {}", r.spec.name, r.spec.metric, r.spec.status)
                        .to_lowercase()
                        .contains(&f)
            })
            .collect()
    }

    fn visible_silences(&self) -> Vec<&SilenceRow> {
        self.silences.data.iter().flatten().collect()
    }

    fn len(&self) -> usize {
        match self.view {
            View::Alerts => self.visible_alerts().len(),
            View::Rules => self.visible_rules().len(),
            View::Silences => self.visible_silences().len(),
        }
    }

    fn selected_alert(&self) -> Option<&AlertRow> {
        self.visible_alerts().get(self.cursor.selected).copied()
    }

    fn list_request(&self, ctx: &TabCtx) -> Vec<Effect> {
        let db = ctx.db.clone();
        let mut fx = vec![Effect::Query(QueryRequest::new(
            "alerts",
            async move { q::list_alerts(&db.read, false, 500).await },
            AlertsData::Alerts,
        ))];
        let db = ctx.db.clone();
        fx.push(Effect::Query(QueryRequest::new(
            "rules",
            async move { rules::rules(&db.read).await },
            AlertsData::Rules,
        )));
        let db = ctx.db.clone();
        fx.push(Effect::Query(QueryRequest::new(
            "silences",
            async move { silences::silences(&db.read, false).await },
            AlertsData::Silences,
        )));
        fx
    }

    fn detail_request(&self, ctx: &TabCtx) -> Vec<Effect> {
        let Some(a) = self.selected_alert().cloned() else {
            return Vec::new();
        };
        let db = ctx.db.clone();
        vec![Effect::Query(QueryRequest::new(
            "detail",
            async move {
                let mut conn = db.read.acquire().await?;
                let rule = rules::rule_by_id(&mut conn, a.rule_id).await?;
                drop(conn);
                Ok(Detail {
                    history: q::history(&db.read, a.id).await?,
                    attempts: outbox::attempts_for_alert(&db.read, a.id).await?,
                    samples: q::samples(&db.read, a.id, 120).await?,
                    rule,
                    alert: a,
                })
            },
            AlertsData::Detail,
        ))]
    }

    /// Runs an operator action as a query; its one-line outcome comes back as "action".
    fn action<F>(&mut self, fut: F) -> Vec<Effect>
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

    fn submit_prompt(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        let Some(mut prompt) = self.prompt.take() else {
            return Vec::new();
        };
        let text = prompt.input().text().trim().to_string();
        let db = ctx.db.clone();
        let cfg = self.cfg.clone();
        let op = Operator::current();
        match prompt {
            Prompt::Ack { id, .. } => self.action(async move {
                let a = operator::acknowledge(&db, &op, id, Some(&text)).await?;
                Ok(format!("alert {} acknowledged", a.id))
            }),
            Prompt::Resolve { id, .. } => self.action(async move {
                let a = operator::resolve(&db, &cfg, &op, id, Some(&text)).await?;
                Ok(format!("alert {} resolved", a.id))
            }),
            Prompt::Silence { matchers, .. } => {
                let d = match crate::alerts::config::duration(if text.is_empty() {
                    "1h"
                } else {
                    &text
                }) {
                    Ok(d) if !d.is_zero() => d,
                    Ok(_) | Err(_) => {
                        self.message = Some((
                            format!("not a duration: {text:?} (e.g. 30m, 2h)"),
                            Role::Error,
                        ));
                        return Vec::new();
                    }
                };
                self.action(async move {
                    let id =
                        operator::silence(&db, &op, &matchers, d, "from the Alerts tab").await?;
                    Ok(format!(
                        "silence {id} active for {}",
                        humantime::format_duration(d)
                    ))
                })
            }
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
        let db = ctx.db.clone();
        let op = Operator::current();
        match (self.view, c) {
            (View::Alerts, 'a') => {
                let a = self.selected_alert()?;
                if a.state != AlertState::Firing {
                    self.message = Some((
                        format!("alert {} is {}, not firing", a.id, a.state),
                        Role::Warn,
                    ));
                    return Some(Vec::new());
                }
                self.prompt = Some(Prompt::Ack {
                    id: a.id,
                    input: LineInput::prompt("", "note (optional)"),
                });
                Some(Vec::new())
            }
            (View::Alerts, 'R') => {
                let a = self.selected_alert()?;
                self.prompt = Some(Prompt::Resolve {
                    id: a.id,
                    input: LineInput::prompt("", "note (optional)"),
                });
                Some(Vec::new())
            }
            (View::Alerts, 's') => {
                let a = self.selected_alert()?;
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
                self.prompt = Some(Prompt::Silence {
                    matchers,
                    input: LineInput::prompt("1h", "duration"),
                });
                Some(Vec::new())
            }
            (View::Silences, 'u') => {
                let id = self.visible_silences().get(self.cursor.selected)?.id;
                Some(self.action(async move {
                    operator::expire_silence(&db, &op, id).await?;
                    Ok(format!("silence {id} expired"))
                }))
            }
            (View::Rules, 'e') => {
                let r = self.visible_rules().get(self.cursor.selected).copied()?;
                let name = r.spec.name.clone();
                let to = if r.spec.status == "disabled" {
                    "enabled"
                } else {
                    "disabled"
                };
                Some(self.action(async move {
                    operator::set_rule_status(&db, &op, &name, to).await?;
                    Ok(format!("rule {name} {to}"))
                }))
            }
            (View::Rules, 'T') => {
                let r = self.visible_rules().get(self.cursor.selected).copied()?;
                let (name, spec, cfg) = (r.spec.name.clone(), r.spec.clone(), self.cfg.clone());
                self.preview = Some((name.clone(), Ok(Vec::new())));
                self.message = Some((format!("evaluating {name}…"), Role::Dim));
                Some(vec![Effect::Query(QueryRequest::new(
                    "preview",
                    async move { engine::preview(&db, &cfg, &spec).await },
                    AlertsData::Preview,
                ))])
            }
            _ => None,
        }
    }

    fn draw_alerts(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let t = ctx.theme;
        let rows = self.visible_alerts();
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
        self.draw_detail(f, bottom, ctx);
    }

    fn draw_detail(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let t = ctx.theme;
        let inner = framed(f, area, "Detail · a ack · R resolve · s silence", false, t);
        let Some(sel) = self.selected_alert() else {
            return;
        };
        let Some(d) = self.detail.data.as_ref().filter(|d| d.alert.id == sel.id) else {
            let (text, role) = self
                .detail
                .placeholder()
                .unwrap_or(("loading…".into(), Role::Dim));
            draw_note(f, inner, &text, role, t);
            return;
        };
        let a = &d.alert;
        let dim = t.style(Role::Dim);
        let mut lines: Vec<Line> = Vec::new();
        let metric = d
            .rule
            .as_ref()
            .map(|r| r.spec.metric.clone())
            .unwrap_or_default();
        // The comparison as it stands (`0.194 < 5`), never the rule's operator printed
        // whatever the value.
        let standing = match (a.value, a.threshold) {
            (Some(v), Some(t)) => crate::alerts::Op::standing(v, t),
            _ => format!("{} vs {}", num(a.value), num(a.threshold)),
        };
        let mut head = vec![
            Span::styled(format!("#{} ", a.id), dim),
            Span::styled(
                sanitize(&a.state_label()).into_owned(),
                t.style(alert_state_role(a.state)),
            ),
            Span::raw("  "),
        ];
        if let Some(src) = &a.source {
            head.push(Span::styled(
                format!("external alert from {}", sanitize(src)),
                t.style(Role::Accent),
            ));
        } else {
            head.push(Span::styled(
                format!("{} {standing}", sanitize(&metric)),
                t.style(Role::Text),
            ));
        }
        if let Some(r) = d.rule.as_ref().filter(|_| a.source.is_none()) {
            head.push(Span::styled(
                format!(
                    "  fires when {} {}",
                    r.spec.op().symbol(),
                    crate::alerts::fmt_value(r.spec.threshold)
                ),
                dim,
            ));
        }
        lines.push(Line::from(head));
        lines.push(Line::from(Span::styled(
            sanitize(&a.summary).into_owned(),
            t.style(Role::Text),
        )));
        if a.testing {
            lines.push(Line::from(Span::styled(
                "testing mode: evaluated and shown, never notified, not counted as open",
                t.style(Role::Warn),
            )));
        }
        if let Some(line) = resolution_line(a, d.rule.as_ref(), ctx) {
            lines.push(Line::from(Span::styled(line, t.style(Role::Accent))));
        }
        if let Some(r) = &d.rule {
            if let Some(rb) = &r.spec.runbook_url {
                lines.push(Line::from(vec![
                    Span::styled("runbook ", dim),
                    Span::styled(sanitize(rb).into_owned(), t.style(Role::Accent)),
                ]));
            }
        }
        let labels: Vec<String> = a.labels.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        lines.push(Line::from(vec![
            Span::styled("labels ", dim),
            Span::raw(sanitize(&labels.join(" ")).into_owned()),
        ]));
        if let Some(by) = &a.acknowledged_by {
            lines.push(Line::from(Span::styled(
                format!(
                    "acknowledged by {} {}: {}",
                    sanitize(by),
                    a.acknowledged_at.map(|t| ctx.ago(t)).unwrap_or_default(),
                    sanitize(a.ack_note.as_deref().unwrap_or(""))
                ),
                t.style(Role::Warn),
            )));
        }
        let spark_row = lines.len() as u16;
        lines.push(Line::from(""));
        for at in d.attempts.iter().rev().take(4) {
            lines.push(Line::from(vec![
                Span::styled(format!("{} ", ctx.fmt_time(at.ts, "%H:%M:%S")), dim),
                Span::styled(
                    format!("{:<9}", sanitize(&at.status)),
                    t.style(status_role(&at.status)),
                ),
                Span::raw(format!(
                    " {} {} HTTP {} {:.0}ms {}",
                    sanitize(&at.channel),
                    sanitize(&at.kind),
                    at.http_status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into()),
                    at.duration_ms.unwrap_or(0.0),
                    sanitize(at.error.as_deref().unwrap_or(""))
                )),
            ]));
        }
        for h in d.history.iter().rev() {
            lines.push(Line::from(vec![
                Span::styled(format!("{} ", ctx.fmt_time(h.ts, "%H:%M:%S")), dim),
                Span::raw(format!(
                    "{} -> {} by {} {}",
                    h.from_state.map_or("·", AlertState::name),
                    h.to_state,
                    sanitize(&h.actor),
                    sanitize(h.note.as_deref().unwrap_or(""))
                )),
            ]));
        }
        // Three stacked areas: the text above the sparkline (wrapped, as high as its wrapped
        // lines), the sparkline's row, the attempts and history below. Drawn as one wrapped
        // paragraph with the sparkline put on "its" line, a wrapped line above pushed the text
        // under the sparkline, which then overwrote it.
        let below = lines.split_off((spark_row as usize + 1).min(lines.len()));
        lines.truncate(spark_row as usize);
        let head = Paragraph::new(lines).wrap(Wrap { trim: true });
        let head_h = (head.line_count(inner.width) as u16).min(inner.height);
        let [head_area, spark_area, below_area] = Layout::vertical([
            Constraint::Length(head_h),
            Constraint::Length(1),
            Constraint::Min(0),
        ])
        .areas(inner);
        crate::tui::widgets::render(f, head, head_area);
        crate::tui::widgets::render(
            f,
            Paragraph::new(below).wrap(Wrap { trim: true }),
            below_area,
        );
        // The sparkline of the measured value, on its own row.
        if spark_area.height > 0 && !d.samples.is_empty() {
            let max = d
                .samples
                .iter()
                .map(|s| s.1)
                .fold(f64::MIN, f64::max)
                .max(1e-9);
            let min = d
                .samples
                .iter()
                .map(|s| s.1)
                .fold(f64::MAX, f64::min)
                .min(0.0);
            let data: Vec<u64> = d
                .samples
                .iter()
                .map(|s| (((s.1 - min) / (max - min).max(1e-9)) * 100.0) as u64 + 1)
                .collect();
            let label = format!("value {}..{} ", num(Some(min)), num(Some(max)));
            let lw = (label.len() as u16).min(spark_area.width / 2);
            let [label_area, bars_area] =
                Layout::horizontal([Constraint::Length(lw), Constraint::Min(0)]).areas(spark_area);
            crate::tui::widgets::render(f, Span::styled(label, dim), label_area);
            draw_spark(f, bars_area, &data, t);
        }
    }

    fn draw_rules(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let t = ctx.theme;
        let rules = self.visible_rules();
        let preview_h = if self.preview.is_some() { 6 } else { 0 };
        let [top, bottom] =
            Layout::vertical([Constraint::Min(4), Constraint::Length(preview_h)]).areas(area);
        let inner = framed(f, top, "Rules · e enable/disable · T evaluate now", true, t);
        const COLUMNS: Columns = Columns {
            header: &["NAME", "STATUS", "MEASURE", "IF", "LAST", "ERROR"],
            widths: &[26, 9, 18, 9, 8, 5],
            flexible: 5,
            header_role: Role::Header,
            wants: &[],
        };
        let note = self.rules.placeholder();
        draw_table_panel(f, inner, t, &COLUMNS, note, |page| {
            visible_page(&rules, self.cursor.selected, page.max(1))
                .map(|(i, r)| {
                    let s = &r.spec;
                    Row::new(vec![
                        sanitize(&s.name).into_owned(),
                        sanitize(&s.status).into_owned(),
                        sanitize(&s.metric).into_owned(),
                        format!("{} {}", s.op().symbol(), num(Some(s.threshold))),
                        num(r.last_value),
                        sanitize(r.last_error.as_deref().unwrap_or("")).into_owned(),
                    ])
                    .style(row_style(i == self.cursor.selected, t))
                })
                .collect()
        });
        if let Some((name, res)) = &self.preview {
            let inner = framed(
                f,
                bottom,
                &format!("Evaluated now: {} (nothing sent)", sanitize(name)),
                false,
                t,
            );
            let lines: Vec<Line> = match res {
                Err(e) => vec![Line::from(Span::styled(
                    sanitize(e).into_owned(),
                    t.style(Role::Error),
                ))],
                Ok(v) if v.is_empty() => vec![Line::from(Span::styled(
                    "no data in the window: condition false",
                    t.style(Role::Dim),
                ))],
                Ok(v) => v
                    .iter()
                    .map(|(s, holds)| {
                        let l: Vec<String> =
                            s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        Line::from(vec![
                            Span::raw(format!(
                                "{} = {} ",
                                sanitize(&l.join(" ")),
                                num(Some(s.value))
                            )),
                            if *holds {
                                Span::styled("would fire", t.style(Role::Error))
                            } else {
                                Span::styled("ok", t.style(Role::Ok))
                            },
                        ])
                    })
                    .collect(),
            };
            crate::tui::widgets::render(f, Paragraph::new(lines), inner);
        }
    }

    fn draw_silences(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let t = ctx.theme;
        let inner = framed(f, area, "Silences · u expire", true, t);
        let list = self.visible_silences();
        const COLUMNS: Columns = Columns {
            header: &["ID", "STATE", "ENDS", "BY", "MATCHERS / COMMENT"],
            widths: &[5, 8, 18, 10, 10],
            flexible: 4,
            header_role: Role::Header,
            wants: &[],
        };
        let note = self.silences.note(
            list.is_empty(),
            ("no pending or active silences", Role::Dim),
        );
        // Every silence is listed: the table shows as many as fit.
        draw_table_panel(f, inner, t, &COLUMNS, note, |_page| {
            list.iter()
                .enumerate()
                .map(|(i, s)| {
                    let ms: Vec<String> = s.matchers.0.iter().map(|m| m.to_string()).collect();
                    Row::new(vec![
                        s.id.to_string(),
                        sanitize(&s.state).into_owned(),
                        format!("until {}", ctx.fmt_time(s.ends_at, "%m-%d %H:%M")),
                        sanitize(&s.created_by).into_owned(),
                        sanitize(&format!("{}  {}", ms.join(","), s.comment)).into_owned(),
                    ])
                    .style(row_style(i == self.cursor.selected, t))
                })
                .collect()
        });
    }

    fn draw_prompt(&self, f: &mut Frame, area: Rect, theme: &Theme) {
        let Some(p) = &self.prompt else { return };
        let h = if matches!(p, Prompt::Silence { .. }) {
            5
        } else {
            3
        };
        let r = Rect {
            x: area.x,
            y: area.bottom().saturating_sub(h),
            width: area.width,
            height: h.min(area.height),
        };
        crate::tui::widgets::render(f, ratatui::widgets::Clear, r);
        let inner = framed(f, r, &p.title(), true, theme);
        let input_area = if let Prompt::Silence { matchers, .. } = p {
            let ms: Vec<String> = matchers.iter().map(|m| m.to_string()).collect();
            crate::tui::widgets::render(
                f,
                Paragraph::new(Span::styled(
                    truncate(
                        &sanitize(&format!("matchers: {}", ms.join(", "))),
                        inner.width as usize,
                    ),
                    theme.style(Role::Dim),
                )),
                Rect { height: 1, ..inner },
            );
            Rect {
                y: inner.y + 2,
                height: 1,
                ..inner
            }
        } else {
            inner
        };
        let input = match p {
            Prompt::Ack { input, .. }
            | Prompt::Resolve { input, .. }
            | Prompt::Silence { input, .. } => input,
        };
        let cursor =
            ratatui::style::Style::default().add_modifier(ratatui::style::Modifier::REVERSED);
        crate::tui::widgets::render(
            f,
            &input.widget(ratatui::style::Style::default(), cursor),
            input_area,
        );
    }
}

impl TabView for AlertsTab {
    fn id(&self) -> Tab {
        Tab::Alerts
    }

    fn refresh(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        self.refresher.done(ctx.now);
        let mut fx = self.list_request(ctx);
        fx.extend(self.detail_request(ctx));
        fx
    }

    fn tick(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        if self.refresher.due(ctx.now) && self.prompt.is_none() {
            self.refresh(ctx)
        } else {
            Vec::new()
        }
    }

    fn on_action(&mut self, a: Action, ctx: &TabCtx) -> Vec<Effect> {
        match a {
            Action::Left | Action::Right => {
                let order = [View::Alerts, View::Rules, View::Silences];
                let i = order.iter().position(|v| *v == self.view).unwrap_or(0);
                let next = if a == Action::Right {
                    (i + 1) % 3
                } else {
                    (i + 2) % 3
                };
                self.view = order[next];
                self.cursor = Cursor::default();
                Vec::new()
            }
            Action::Back => {
                self.message = None;
                self.preview = None;
                Vec::new()
            }
            Action::Select if self.view == View::Alerts => {
                let Some(a) = self.selected_alert() else {
                    return Vec::new();
                };
                let rule = self
                    .rules
                    .data
                    .iter()
                    .flatten()
                    .find(|r| r.id == a.rule_id)
                    .or_else(|| {
                        self.detail
                            .data
                            .as_ref()
                            .filter(|d| d.alert.id == a.id)
                            .and_then(|d| d.rule.as_ref())
                    })
                    .map(|r| &r.spec);
                vec![Effect::Jump(logs_jump(a, rule, ctx.now))]
            }
            _ => {
                let before = self.cursor.selected;
                self.cursor.apply(a, self.len(), 8);
                if self.view == View::Alerts && before != self.cursor.selected {
                    self.detail_request(ctx)
                } else {
                    Vec::new()
                }
            }
        }
    }

    fn captures_input(&self) -> bool {
        self.prompt.is_some()
    }

    fn on_key(&mut self, key: &KeyEvent, ctx: &TabCtx) -> Option<Vec<Effect>> {
        if let Some(p) = self.prompt.as_mut() {
            match key.code {
                KeyCode::Esc => self.prompt = None,
                KeyCode::Enter => return Some(self.submit_prompt(ctx)),
                _ => {
                    p.input().input(*key);
                }
            }
            return Some(Vec::new());
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
        match data {
            AlertsData::Alerts(r) => {
                let had = self.selected_alert().map(|a| a.id);
                self.alerts.set(r);
                // Keep the same alert selected when the order changes (it was acknowledged...).
                if self.view == View::Alerts {
                    let ids: Vec<i64> = self.visible_alerts().iter().map(|a| a.id).collect();
                    self.cursor.follow(had.as_ref(), ids);
                }
                if self.selected_alert().map(|a| a.id) != had {
                    return self.detail_request(ctx);
                }
            }
            // The three views share one cursor: only the list on screen moves it.
            AlertsData::Rules(r) => {
                let name = |r: &Rule| r.spec.name.clone();
                let had = self
                    .visible_rules()
                    .get(self.cursor.selected)
                    .map(|r| name(r));
                self.rules.set(r);
                if self.view == View::Rules {
                    let names: Vec<String> = self.visible_rules().into_iter().map(name).collect();
                    self.cursor.follow(had.as_ref(), names);
                }
            }
            AlertsData::Silences(r) => {
                let had = self
                    .visible_silences()
                    .get(self.cursor.selected)
                    .map(|s| s.id);
                self.silences.set(r);
                if self.view == View::Silences {
                    let ids: Vec<_> = self.visible_silences().iter().map(|s| s.id).collect();
                    self.cursor.follow(had.as_ref(), ids);
                }
            }
            AlertsData::Detail(r) => self.detail.set(r),
            AlertsData::Preview(r) => {
                let res = r;
                self.message = None;
                if let Some((_, r)) = self.preview.as_mut() {
                    *r = res;
                }
            }
            AlertsData::Action(r) => {
                self.message = Some(match r {
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
        self.cursor = Cursor::default();
        self.detail_request(ctx)
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
                help: "silence alerts like this one",
            },
            Binding {
                keys: "h l",
                help: "alerts / rules / silences",
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
        ]
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let msg_h = u16::from(self.message.is_some());
        let [body, msg] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(msg_h)]).areas(area);
        match self.view {
            View::Alerts => self.draw_alerts(f, body, ctx),
            View::Rules => self.draw_rules(f, body, ctx),
            View::Silences => self.draw_silences(f, body, ctx),
        }
        if let Some((m, role)) = &self.message {
            crate::tui::widgets::render(
                f,
                Paragraph::new(Span::styled(
                    truncate(&sanitize(m), msg.width as usize),
                    ctx.theme.style(*role),
                )),
                msg,
            );
        }
        self.draw_prompt(f, body, ctx.theme);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Severity;
    use chrono::TimeZone;
    use sqlx::types::Json;

    fn alert(labels: &[(&str, &str)], pending: DateTime<Utc>) -> AlertRow {
        AlertRow {
            id: 7,
            rule_id: 1,
            rule_name: "logins".into(),
            severity: Severity::Warning,
            labels: Json(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            label_key: String::new(),
            state: AlertState::Firing,
            value: None,
            threshold: None,
            summary: String::new(),
            pending_since: pending,
            fired_at: None,
            acknowledged_at: None,
            acknowledged_by: None,
            ack_note: None,
            resolved_at: None,
            resolved_by: None,
            resolve_note: None,
            condition_false_since: None,
            last_notified_at: None,
            testing: false,
            source: None,
            ends_at: None,
        }
    }

    #[test]
    fn a_resolved_alert_opens_its_window_and_a_log_rule_its_filter() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
        let mut a = alert(
            &[
                ("service", "pay api"),
                ("alertname", "x"),
                ("ip", "10.0.0.1"),
            ],
            now - chrono::Duration::hours(3),
        );
        a.resolved_at = Some(now - chrono::Duration::hours(2));
        let spec = crate::alerts::RuleSpec {
            name: "logins".into(),
            description: String::new(),
            severity: "warning".into(),
            status: "enabled".into(),
            metric: "log_count".into(),
            scope: [("route".to_string(), "/login".to_string())].into(),
            filter: Some("level:error+ timeout".into()),
            query: None,
            operator: "gt".into(),
            threshold: 1.0,
            window_s: 300,
            for_s: 0,
            eval_interval_s: 60,
            labels: Default::default(),
            group_by: Vec::new(),
            channels: Vec::new(),
            repeat_interval_s: 3600,
            max_per_hour: 10,
            auto_resolve: true,
            resolve_after_s: 300,
            runbook_url: None,
            min_count: 0,
        };
        let j = logs_jump(&a, Some(&spec), now);
        assert_eq!(j.tab, Some(Tab::Logs));
        assert_eq!(
            j.filter,
            "service:\"pay api\" route:/login level:error+ timeout \
             since:2026-11-22T08:55:00Z until:2026-11-22T10:01:00Z"
        );
        // The range must hold the window's start (3 h 5 min ago).
        assert_eq!(j.range, Some(TimeRange::H6));
        assert!(crate::filter::parse(&j.filter).is_ok());
    }
}
