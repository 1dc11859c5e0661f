//! The error groups view: triage keys (acknowledge, resolve, ignore...) and its draw.

use super::*;

/// The error-group triage keys (one binding; they write, so a reader sees them unavailable).
pub(super) const GROUP_KEYS: &str = "a p R i o";

/// Who the operator is, for the audit trail.
pub(super) fn operator() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "opsdash".into())
}

impl LogsTab {
    pub(super) fn transition(
        &mut self,
        to: GroupStatus,
        note: Option<String>,
        ctx: &TabCtx,
    ) -> Vec<Effect> {
        let doing = match to {
            GroupStatus::Acknowledged => "acknowledging an error group",
            GroupStatus::InProgress => "starting work on an error group",
            GroupStatus::Resolved => "resolving an error group",
            GroupStatus::Ignored => "ignoring an error group",
            GroupStatus::New => "reopening an error group",
        };
        if let Some(why) = ctx.db.access.refusal(doing) {
            return vec![Effect::Say {
                text: why,
                error: true,
            }];
        }
        let Some(g) = self
            .groups
            .data
            .as_ref()
            .and_then(|g| g.get(self.group_cursor.selected))
        else {
            return Vec::new();
        };
        let fp = g.fingerprint.clone();
        let db = ctx.db.clone();
        let actor = operator();
        vec![Effect::Query(QueryRequest::new(
            "transition",
            async move {
                error_groups::transition(&db.write, &fp, to, &actor, note.as_deref())
                    .await
                    .map_err(anyhow::Error::from)
            },
            LogsData::Transition,
        ))]
    }

    pub(super) fn draw_groups(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let b = block("error groups (24 h sparkline)", true, theme);
        let inner = b.inner(area);
        crate::tui::widgets::render(f, b, area);
        let Some(groups) = &self.groups.data else {
            let (t, r) = self
                .groups
                .placeholder()
                .unwrap_or((String::new(), Role::Dim));
            draw_note(f, inner, &t, r, theme);
            return;
        };
        if groups.is_empty() {
            draw_note(f, inner, "no error groups", Role::Dim, theme);
            return;
        }
        let (list, detail) = if self.detail {
            let [a, b] = Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(inner);
            (a, Some(b))
        } else {
            (inner, None)
        };
        let height = list.height as usize;
        let sel = self.group_cursor.selected;
        let top = sel.saturating_sub(height.saturating_sub(1));
        let w = list.width as usize;
        let lines: Vec<Line> = groups
            .iter()
            .enumerate()
            .skip(top)
            .take(height)
            .map(|(i, g)| {
                let s = i == sel;
                let status = if g.regressed {
                    "regressed".to_string()
                } else {
                    g.status.to_string()
                };
                Line::from(vec![
                    Span::styled(
                        format!("{:<12}", status),
                        theme.style(if g.regressed {
                            Role::Error
                        } else {
                            status_role(g.status.as_str())
                        }),
                    ),
                    Span::styled(
                        format!("{:>7} ", fmt_count(g.count as f64)),
                        row_style(s, theme),
                    ),
                    Span::styled(
                        format!("{:>5}u ", fmt_count(g.affected_users as f64)),
                        row_style(s, theme),
                    ),
                    Span::styled(
                        format!("{} ", spark_text(&g.sparkline, g.sparkline.len())),
                        theme.style(Role::Spark),
                    ),
                    Span::styled(
                        format!("{:>8} ", ctx.ago(g.last_seen)),
                        theme.style(Role::Dim),
                    ),
                    Span::styled(
                        truncate(
                            &format!("{} {}", safe(&g.service), safe(&g.sample_message)),
                            w.saturating_sub(12 + 8 + 7 + 25 + 9),
                        ),
                        row_style(s, theme),
                    ),
                ])
            })
            .collect();
        crate::tui::widgets::render(f, Paragraph::new(lines), list);
        if let (Some(area), Some(g)) = (detail, groups.get(sel)) {
            let mut l = vec![
                kv("fingerprint", &g.fingerprint, theme),
                kv("service", &g.service, theme),
                kv("type", g.error_type.as_deref().unwrap_or("-"), theme),
                kv(
                    "first seen",
                    &ctx.fmt_time(g.first_seen, "%Y-%m-%d %H:%M:%S"),
                    theme,
                ),
                kv(
                    "last seen",
                    &ctx.fmt_time(g.last_seen, "%Y-%m-%d %H:%M:%S"),
                    theme,
                ),
                kv("assignee", g.assignee.as_deref().unwrap_or("-"), theme),
                kv("note", g.note.as_deref().unwrap_or("-"), theme),
            ];
            l.push(kv("sample", &g.sample_message, theme));
            crate::tui::widgets::render(
                f,
                Paragraph::new(l)
                    .block(block("group", false, theme))
                    .wrap(Wrap { trim: false }),
                area,
            );
        }
    }
}
