//! The audit trail view (who changed what, who deleted, mass deletes) and its draw.

use super::*;

impl LogsTab {
    pub(super) fn draw_audit(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let title = match &self.audit_mode {
            AuditMode::Trail => format!(
                "audit trail: {} rows{} (/actor:NAME action:*delete* since:1d, /deleted:ID, /mass:N)",
                self.audit.data.as_ref().map_or(0, Vec::len),
                if self.audit_more { "+" } else { "" }
            ),
            AuditMode::WhoDeletedIn(t, id) => format!("who deleted {} {}", safe(t), safe(id)),
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

impl LogsTab {
    /// The next page of the trail when the cursor nears the last row loaded and the last page
    /// came back full (keyset on (ts, id): the same cost at any depth).
    pub(super) fn audit_want_page(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        let rows = self.audit.data.as_deref().unwrap_or(&[]);
        if self.audit_mode != AuditMode::Trail
            || !self.audit_more
            || self.audit.loading
            || self.audit_cursor.selected + 20 < rows.len()
        {
            return Vec::new();
        }
        let Some(last) = rows.last() else {
            return Vec::new();
        };
        let key = crate::query::audit::AuditKey {
            ts: last.ts,
            id: last.id,
        };
        self.audit.loading = true;
        let pool = ctx.db.read.clone();
        let f = self.audit_filter.clone();
        vec![Effect::Query(QueryRequest::new(
            "audit-more",
            async move { Ok(crate::query::audit::search(&pool, &f, Some(key), AUDIT_PAGE).await?) },
            LogsData::AuditMore,
        ))]
    }

    /// A page of older rows: appended when it continues the rows held (a new filter since
    /// then read the trail again from its newest row).
    pub(super) fn audit_page_in(&mut self, r: crate::tui::msg::Res<Vec<AuditEvent>>) {
        self.audit.loading = false;
        match r {
            Ok(page) => {
                let Some(rows) = self.audit.data.as_mut() else {
                    return;
                };
                let last = rows.last().map(|a| (a.ts, a.id));
                let continues = page
                    .first()
                    .is_some_and(|p| last.is_some_and(|l| (p.ts, p.id) < l));
                if !continues {
                    self.audit_more = false;
                    return;
                }
                self.audit_more = page.len() as i64 >= AUDIT_PAGE;
                rows.extend(page);
            }
            Err(e) => {
                self.audit_more = false;
                self.message = Some((format!("reading the audit trail: {e}"), Role::Error));
            }
        }
    }
}
