//! The audit trail view (who changed what, who deleted, mass deletes) and its draw.

use super::*;

impl LogsTab {
    pub(super) fn draw_audit(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let title = match &self.audit_mode {
            AuditMode::Trail => "audit trail (/deleted:ID, /mass:N)".to_string(),
            AuditMode::WhoDeleted(x) => format!("who deleted {}", safe(x)),
            AuditMode::MassDeletes(n) => format!("actors with more than {n} deletes in 5 minutes"),
        };
        let b = block(&title, true, theme);
        let inner = b.inner(area);
        crate::tui::widgets::render(f, b, area);
        if let AuditMode::MassDeletes(_) = self.audit_mode {
            let Some(rows) = &self.mass.data else {
                let (t, r) = self
                    .mass
                    .placeholder()
                    .unwrap_or((String::new(), Role::Dim));
                draw_note(f, inner, &t, r, theme);
                return;
            };
            if rows.is_empty() {
                draw_note(f, inner, "no mass deletes in the range", Role::Ok, theme);
                return;
            }
            let lines: Vec<Line> = rows
                .iter()
                .map(|m| {
                    Line::from(vec![
                        Span::styled(
                            format!("{:<20}", truncate(&safe(&m.actor), 19)),
                            theme.style(Role::Error),
                        ),
                        Span::styled(
                            format!(
                                "{} deletes in 5 min (until {}), {} in range",
                                m.peak,
                                ctx.fmt_time(m.peak_at, "%H:%M:%S"),
                                m.total
                            ),
                            theme.style(Role::Text),
                        ),
                    ])
                })
                .collect();
            crate::tui::widgets::render(f, Paragraph::new(lines), inner);
            return;
        }
        let Some(events) = &self.audit.data else {
            let (t, r) = self
                .audit
                .placeholder()
                .unwrap_or((String::new(), Role::Dim));
            draw_note(f, inner, &t, r, theme);
            return;
        };
        if events.is_empty() {
            draw_note(f, inner, "no audit events", Role::Dim, theme);
            return;
        }
        let (list, detail) = if self.detail {
            let [a, b] = Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)])
                .areas(inner);
            (a, Some(b))
        } else {
            (inner, None)
        };
        let height = list.height as usize;
        let sel = self.audit_cursor.selected;
        let top = sel.saturating_sub(height.saturating_sub(1));
        let w = list.width as usize;
        let lines: Vec<Line> = events
            .iter()
            .enumerate()
            .skip(top)
            .take(height)
            .map(|(i, a)| {
                let s = i == sel;
                let deleting = a.action.to_lowercase().contains("delet");
                Line::from(vec![
                    Span::styled(
                        format!("{:<20}", ctx.fmt_time(a.ts, "%m-%d %H:%M:%S")),
                        row_style(s, theme),
                    ),
                    Span::styled(
                        format!("{:<14}", truncate(&safe(&a.actor), 13)),
                        row_style(s, theme),
                    ),
                    Span::styled(
                        format!("{:<18}", truncate(&safe(&a.action), 17)),
                        if deleting {
                            theme.style(Role::Warn)
                        } else {
                            row_style(s, theme)
                        },
                    ),
                    Span::styled(
                        truncate(
                            &format!(
                                "{} {}",
                                safe(a.resource_type.as_deref().unwrap_or("")),
                                safe(a.resource_id.as_deref().unwrap_or(""))
                            ),
                            w.saturating_sub(52),
                        ),
                        row_style(s, theme),
                    ),
                ])
            })
            .collect();
        crate::tui::widgets::render(f, Paragraph::new(lines), list);
        if let (Some(area), Some(a)) = (detail, events.get(sel)) {
            let mut l = vec![
                kv(
                    "actor",
                    &format!("{} ({})", a.actor, a.actor_role.as_deref().unwrap_or("-")),
                    theme,
                ),
                kv("outcome", &a.outcome, theme),
                kv("source", &a.source, theme),
                kv("ip", a.ip.as_deref().unwrap_or("-"), theme),
            ];
            for d in crate::query::audit::diff(a.before.as_ref(), a.after.as_ref()) {
                l.push(match d {
                    DiffLine::Added { key, after } => Line::from(Span::styled(
                        format!("+ {}: {}", safe(&key), safe(&after)),
                        theme.style(Role::Ok),
                    )),
                    DiffLine::Removed { key, before } => Line::from(Span::styled(
                        format!("- {}: {}", safe(&key), safe(&before)),
                        theme.style(Role::Error),
                    )),
                    DiffLine::Changed { key, before, after } => Line::from(Span::styled(
                        format!("~ {}: {} → {}", safe(&key), safe(&before), safe(&after)),
                        theme.style(Role::Warn),
                    )),
                });
            }
            crate::tui::widgets::render(
                f,
                Paragraph::new(l)
                    .block(block("before → after", false, theme))
                    .wrap(Wrap { trim: false }),
                area,
            );
        }
    }
}
