//! The Health tab's services section (status, last check, response time, uptime, recent
//! checks) and integrations section (outbound calls per partner): two components, each with
//! its rows, cursor, query and draw.

// The tab's imports and helpers (the sparkline of checks, the uptime colours).
use super::*;

#[derive(Default)]
pub(super) struct ServicesSection {
    pub(super) rows: Panel<Vec<ServiceRow>>,
    cursor: Cursor,
}

impl ServicesSection {
    fn visible(&self, filter: &str) -> Vec<&ServiceRow> {
        self.rows
            .data
            .iter()
            .flatten()
            .filter(|s| matches(filter, &format!("{} {} {}", s.name, s.kind, s.status)))
            .collect()
    }
}

impl SectionView for ServicesSection {
    fn request(&mut self, ctx: &TabCtx) -> Effect {
        let db = ctx.db.clone();
        Effect::Query(QueryRequest::new(
            "services",
            async move { health::services(&db).await },
            HealthData::Services,
        ))
    }

    fn keys(&self, filter: &str) -> Vec<String> {
        self.visible(filter)
            .iter()
            .map(|r| r.name.clone())
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
        let rows_data = self.visible(filter);
        const COLUMNS: Columns = Columns {
            header: &[
                "status",
                "service",
                "checked",
                "resp",
                "24h",
                "7d",
                "30d",
                "recent checks",
            ],
            widths: &[8, 14, 8, 7, 6, 6, 6, 4],
            flexible: 7,
            header_role: Role::Dim,
            wants: &[0, 32],
        };
        let note = self.rows.note(
            rows_data.is_empty(),
            (
                "no services: add [[service]] checks to the config",
                Role::Dim,
            ),
        );
        if let Some((msg, role)) = note {
            draw_note(f, area, &msg, role, theme);
            return;
        }
        // Last line: the selected service's detail.
        let [table_area, detail_area] =
            Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(area);
        let page = table_area.height.saturating_sub(1) as usize;
        let sel = self.selected(filter);
        let fixed = 9 + 14 + 8 + 7 + 6 + 6 + 6 + 7;
        let spark_w = (area.width as usize).saturating_sub(fixed).clamp(4, 60);
        let rows: Vec<Row> = visible_page(&rows_data, sel, page)
            .map(|(i, s)| {
                let selected = i == sel;
                let status_style = if selected {
                    theme.style(Role::Selection)
                } else {
                    theme.style(status_role(&s.status))
                };
                Row::new(vec![
                    Line::from(Span::styled(sanitize(&s.status).into_owned(), status_style)),
                    Line::from(sanitize(&s.name).into_owned()),
                    Line::from(
                        s.last_check
                            .map(|t| ctx.ago(t))
                            .unwrap_or_else(|| "never".into()),
                    ),
                    Line::from(s.last_response_ms.map(fmt_ms).unwrap_or_else(|| "-".into())),
                    Line::from(Span::styled(
                        pct_opt(s.uptime_24h),
                        theme.style(uptime_role(s.uptime_24h)),
                    )),
                    Line::from(pct_opt(s.uptime_7d)),
                    Line::from(pct_opt(s.uptime_30d)),
                    check_history(&s.recent_ms, &s.recent_status, spark_w, theme),
                ])
                .style(row_style(selected, theme))
            })
            .collect();
        crate::tui::widgets::render(f, COLUMNS.table(rows, theme, table_area.width), table_area);
        if let Some(s) = rows_data.get(sel) {
            let text = format!(
                "{} {}: {}",
                sanitize(&s.kind),
                sanitize(&s.target),
                sanitize(s.last_detail.as_deref().unwrap_or("no check yet"))
            );
            crate::tui::widgets::render(
                f,
                Paragraph::new(Span::styled(
                    truncate(&text, detail_area.width as usize),
                    theme.style(Role::Dim),
                )),
                detail_area,
            );
        }
    }
}

#[derive(Default)]
pub(super) struct IntegrationsSection {
    pub(super) rows: Panel<Vec<IntegrationRow>>,
    cursor: Cursor,
}

impl IntegrationsSection {
    fn visible(&self, filter: &str) -> Vec<&IntegrationRow> {
        self.rows
            .data
            .iter()
            .flatten()
            .filter(|s| matches(filter, &s.name))
            .collect()
    }
}

impl SectionView for IntegrationsSection {
    fn request(&mut self, ctx: &TabCtx) -> Effect {
        let db = ctx.db.clone();
        Effect::Query(QueryRequest::new(
            "integrations",
            async move { health::integrations(&db).await },
            HealthData::Integrations,
        ))
    }

    fn keys(&self, filter: &str) -> Vec<String> {
        self.visible(filter)
            .iter()
            .map(|r| r.name.clone())
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
        let rows_data = self.visible(filter);
        const COLUMNS: Columns = Columns {
            header: &[
                "integration",
                "calls 24h",
                "success",
                "avg",
                "errors 1h",
                "last",
            ],
            widths: &[14, 9, 8, 8, 9, 8],
            flexible: 0,
            header_role: Role::Dim,
            wants: &[32],
        };
        let note = self.rows.note(
            rows_data.is_empty(),
            ("no outbound calls in the last 24 h", Role::Dim),
        );
        draw_table_panel(f, area, theme, &COLUMNS, note, |page| {
            let sel = self.selected(filter);
            visible_page(&rows_data, sel, page)
                .map(|(i, r)| {
                    let selected = i == sel;
                    let succ_role = if r.success_24h >= 0.99 {
                        Role::Ok
                    } else if r.success_24h >= 0.95 {
                        Role::Warn
                    } else {
                        Role::Error
                    };
                    let err_role = if r.errors_1h > 0 {
                        Role::Error
                    } else {
                        Role::Dim
                    };
                    Row::new(vec![
                        Line::from(sanitize(&r.name).into_owned()),
                        Line::from(fmt_count(r.calls_24h as f64)),
                        Line::from(Span::styled(fmt_pct(r.success_24h), theme.style(succ_role))),
                        Line::from(fmt_ms(r.avg_ms_24h)),
                        Line::from(Span::styled(
                            fmt_count(r.errors_1h as f64),
                            theme.style(err_role),
                        )),
                        Line::from(r.last_call.map(|t| ctx.ago(t)).unwrap_or_default()),
                    ])
                    .style(row_style(selected, theme))
                })
                .collect()
        });
    }
}
