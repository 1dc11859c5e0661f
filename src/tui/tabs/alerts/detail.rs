//! The Alerts tab's detail pane for the selected alert: value against threshold, a sparkline of
//! the measured value, labels, runbook, when it resolves, notification attempts, history.

use chrono::{DateTime, Utc};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::num;
use crate::model::AlertState;
use crate::query::alerts::{self as q, AlertRow};
use crate::query::rules::Rule;
use crate::query::{outbox, rules};
use crate::sanitize::sanitize;
use crate::tui::msg::{AlertDetail as Detail, AlertsData, Effect, QueryRequest};
use crate::tui::theme::Role;
use crate::tui::view::{DrawCtx, Panel, TabCtx};
use crate::tui::widgets::{alert_state_role, draw_note, draw_spark, framed, status_role};

#[derive(Default)]
pub struct DetailPane {
    pub detail: Panel<Detail>,
}

impl DetailPane {
    pub fn request(sel: Option<&AlertRow>, ctx: &TabCtx) -> Vec<Effect> {
        let Some(a) = sel.cloned() else {
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

    pub fn draw(&self, sel: Option<&AlertRow>, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let t = ctx.theme;
        let inner = framed(f, area, "Detail · a ack · R resolve · s silence", false, t);
        let Some(sel) = sel else {
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
