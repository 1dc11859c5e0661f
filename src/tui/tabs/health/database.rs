//! The Health tab's database section, as pg_activity shows it: version, uptime, connections
//! by state, cache hit, size, largest tables, longest queries and locks.
//!
//! A component: the database's figures, a cursor over the longest queries, query and draw.

// The tab's imports and helpers.
use super::*;

#[derive(Default)]
pub(super) struct DatabaseSection {
    pub(super) db: Panel<DbHealth>,
    cursor: Cursor,
}

impl SectionView for DatabaseSection {
    fn request(&mut self, ctx: &TabCtx) -> Effect {
        let db = ctx.db.clone();
        Effect::Query(QueryRequest::new(
            "database",
            async move { health::database(&db).await },
            HealthData::Database,
        ))
    }

    /// The longest queries by pid (the filter names services and jobs, not queries).
    fn keys(&self, _filter: &str) -> Vec<String> {
        self.db
            .data
            .iter()
            .flat_map(|d| d.longest.iter().map(|a| a.pid.to_string()))
            .collect()
    }

    fn cursor(&self) -> Cursor {
        self.cursor
    }

    fn cursor_mut(&mut self) -> &mut Cursor {
        &mut self.cursor
    }

    fn draw_in(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx, filter: &str) {
        let theme = ctx.theme;
        let Some(d) = &self.db.data else {
            if let Some((msg, role)) = self.db.placeholder() {
                draw_note(f, area, &msg, role, theme);
            }
            return;
        };
        // A blank column between the two halves: a clipped left text (the version string, a
        // table size) must never run into the right half's first character.
        let left_w = if area.width >= 90 { 38 } else { 30 };
        let [left, _gap, right] = Layout::horizontal([
            Constraint::Length(left_w),
            Constraint::Length(1),
            Constraint::Min(0),
        ])
        .areas(area);
        let dim = theme.style(Role::Dim);
        let text = theme.style(Role::Text);
        let total = d.connections_total();
        let conn_ratio = total as f64 / d.max_connections.max(1) as f64;
        let conn_role = if conn_ratio >= 0.9 {
            Role::Error
        } else if conn_ratio >= 0.7 {
            Role::Warn
        } else {
            Role::Ok
        };
        let mut lines = vec![
            Line::from(Span::styled(
                truncate(&sanitize(&d.version), left.width as usize),
                text,
            )),
            Line::from(vec![
                Span::styled("uptime ", dim),
                Span::styled(human_secs(d.uptime_s), text),
                Span::styled("  size ", dim),
                Span::styled(fmt_bytes(d.db_size as f64), text),
            ]),
            Line::from(vec![
                Span::styled("connections ", dim),
                Span::styled(
                    format!("{total}/{}", d.max_connections),
                    theme.style(conn_role),
                ),
            ]),
            Line::from(Span::styled(
                format!(
                    "  {}",
                    d.connections
                        .iter()
                        .map(|(s, n)| format!("{} {n}", sanitize(s)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                dim,
            )),
            Line::from(vec![
                Span::styled("cache hit ", dim),
                Span::styled(
                    d.cache_hit.map(fmt_pct).unwrap_or_else(|| "-".into()),
                    theme.style(match d.cache_hit {
                        Some(h) if h < 0.9 => Role::Warn,
                        _ => Role::Text,
                    }),
                ),
            ]),
        ];
        // Without pg_monitor the server shows other roles' sessions without their state or
        // query: say so rather than let "no blocked sessions" read as the whole truth.
        // The column is narrow: the note goes on one line per clause.
        if let Some(limit) = &d.limited {
            for part in limit.split(": ") {
                lines.push(Line::from(Span::styled(
                    truncate(&sanitize(part), left.width as usize),
                    theme.style(Role::Warn),
                )));
            }
        }
        if d.in_recovery {
            lines.push(Line::from(vec![
                Span::styled("replica, replay lag ", dim),
                Span::styled(
                    d.replay_lag_s.map(human_secs).unwrap_or_else(|| "-".into()),
                    text,
                ),
            ]));
        } else if d.replicas.is_empty() {
            lines.push(Line::from(Span::styled("no replicas", dim)));
        } else {
            for (name, state, lag) in &d.replicas {
                lines.push(Line::from(vec![
                    Span::styled(
                        format!("replica {} {} ", sanitize(name), sanitize(state)),
                        dim,
                    ),
                    Span::styled(lag.map(human_secs).unwrap_or_else(|| "-".into()), text),
                ]));
            }
        }
        // Two short lines: the panel's left half is 30 columns at 80x24.
        if let Some(note) = &d.pooler_note {
            let (what, detail) = note.split_once(": ").unwrap_or((note.as_str(), ""));
            lines.push(Line::from(Span::styled(
                what.to_string(),
                theme.style(Role::Warn),
            )));
            if !detail.is_empty() {
                lines.push(Line::from(Span::styled(format!("  {detail}"), dim)));
            }
        }
        lines.push(Line::from(Span::styled(
            "largest opsdash tables",
            theme.style(Role::Title),
        )));
        // Name and size separated by at least one space whatever the width.
        let name_w = (left.width as usize).saturating_sub(2 + 1 + 8).max(8);
        for (t, bytes) in &d.largest_tables {
            lines.push(Line::from(vec![
                Span::styled(format!("  {}", pad(&sanitize(t), name_w)), text),
                Span::styled(format!(" {:>8}", fmt_bytes(*bytes as f64)), dim),
            ]));
        }
        crate::tui::widgets::render(f, Paragraph::new(lines), left);

        // Right: blocked sessions first (they are the emergency), then the longest queries.
        let blocked_h = if d.blocked.is_empty() {
            1
        } else {
            (d.blocked.len() as u16 + 2).min(right.height / 2)
        };
        let [blocked_area, longest_area] =
            Layout::vertical([Constraint::Length(blocked_h), Constraint::Min(0)]).areas(right);
        if d.blocked.is_empty() {
            crate::tui::widgets::render(
                f,
                Paragraph::new(Span::styled("no blocked sessions", theme.style(Role::Ok))),
                blocked_area,
            );
        } else {
            let rows: Vec<Row> = d
                .blocked
                .iter()
                .map(|a| {
                    Row::new(vec![
                        a.pid.to_string(),
                        a.blocked_by
                            .iter()
                            .map(|p| p.to_string())
                            .collect::<Vec<_>>()
                            .join(","),
                        human_secs(a.seconds),
                        sanitize(&a.query.replace('\n', " ")).into_owned(),
                    ])
                    .style(theme.style(Role::Warn))
                })
                .collect();
            crate::tui::widgets::render(
                f,
                Table::new(
                    rows,
                    [
                        Constraint::Length(7),
                        Constraint::Length(10),
                        Constraint::Length(6),
                        Constraint::Min(10),
                    ],
                )
                .header(
                    Row::new(vec!["blocked", "by", "for", "query"]).style(theme.style(Role::Error)),
                ),
                blocked_area,
            );
        }
        let page = longest_area.height.saturating_sub(1) as usize;
        let sel = self.selected(filter);
        let rows: Vec<Row> = visible_page(&d.longest, sel, page)
            .map(|(i, a)| {
                Row::new(vec![
                    a.pid.to_string(),
                    human_secs(a.seconds),
                    truncate(&sanitize(&a.state), 8),
                    truncate(&sanitize(&a.wait), 12),
                    sanitize(&a.query.replace('\n', " ")).into_owned(),
                ])
                .style(row_style(i == sel, theme))
            })
            .collect();
        crate::tui::widgets::render(
            f,
            Table::new(
                rows,
                [
                    Constraint::Length(7),
                    Constraint::Length(6),
                    Constraint::Length(8),
                    Constraint::Length(12),
                    Constraint::Min(10),
                ],
            )
            .header(
                Row::new(vec![
                    "pid",
                    "for",
                    "state",
                    "wait",
                    "longest-running queries",
                ])
                .style(dim),
            ),
            longest_area,
        );
    }
}
