//! The Health tab's worker section: each background job, its lease holder and last run. A
//! component: its rows, cursor, query and draw.

// The tab's imports and helpers.
use super::*;

#[derive(Default)]
pub(super) struct WorkersSection {
    pub(super) jobs: Panel<Vec<JobRow>>,
    cursor: Cursor,
}

impl WorkersSection {
    fn visible(&self, filter: &str) -> Vec<&JobRow> {
        self.jobs
            .data
            .iter()
            .flatten()
            .filter(|j| matches(filter, &j.job))
            .collect()
    }
}

impl SectionView for WorkersSection {
    fn request(&mut self, ctx: &TabCtx) -> Effect {
        let db = ctx.db.clone();
        Effect::Query(QueryRequest::new(
            "workers",
            async move { health::workers(&db).await },
            HealthData::Workers,
        ))
    }

    fn keys(&self, filter: &str) -> Vec<String> {
        self.visible(filter).iter().map(|j| j.job.clone()).collect()
    }

    fn cursor(&self) -> Cursor {
        self.cursor
    }

    fn cursor_mut(&mut self) -> &mut Cursor {
        &mut self.cursor
    }

    fn draw_in(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx, filter: &str) {
        let theme = ctx.theme;
        let jobs = self.visible(filter);
        const COLUMNS: Columns = Columns {
            header: &[
                "job",
                "holder",
                "lease",
                "last run",
                "next",
                "last ok",
                "last error",
            ],
            widths: &[14, 16, 7, 8, 8, 8, 10],
            flexible: 6,
            header_role: Role::Dim,
            wants: &[0, 40],
        };
        let note = self
            .jobs
            .note(jobs.is_empty(), ("no worker job has run yet", Role::Dim));
        let when = |t: Option<DateTime<Utc>>| -> String {
            match t {
                None => "-".into(),
                Some(t) if t > ctx.now => format!(
                    "in {}",
                    human_secs((t - ctx.now).num_milliseconds() as f64 / 1000.0)
                ),
                Some(t) => ctx.ago(t),
            }
        };
        draw_table_panel(f, area, theme, &COLUMNS, note, |page| {
            let sel = self.selected(filter);
            visible_page(&jobs, sel, page)
                .map(|(i, j)| {
                    let holder = match &j.holder {
                        Some(h) if h == ctx.instance => "this instance".to_string(),
                        Some(h) => sanitize(h).into_owned(),
                        None => "-".into(),
                    };
                    let holder_role = if !j.live {
                        Role::Dim
                    } else if j.holder.as_deref() == Some(ctx.instance) {
                        Role::Accent
                    } else {
                        Role::Text
                    };
                    let err = j
                        .last_error
                        .as_deref()
                        .map(|e| sanitize(e).into_owned())
                        .unwrap_or_default();
                    let selected = i == sel;
                    Row::new(vec![
                        Line::from(sanitize(&j.job).into_owned()),
                        Line::from(Span::styled(
                            holder,
                            if selected {
                                theme.style(Role::Selection)
                            } else {
                                theme.style(holder_role)
                            },
                        )),
                        Line::from(Span::styled(
                            if j.live { "live" } else { "expired" },
                            theme.style(if selected {
                                Role::Selection
                            } else if j.live {
                                Role::Ok
                            } else {
                                Role::Warn
                            }),
                        )),
                        Line::from(when(j.last_run)),
                        Line::from(when(j.next_run)),
                        Line::from(when(j.last_ok)),
                        Line::from(Span::styled(
                            err,
                            if selected {
                                theme.style(Role::Selection)
                            } else {
                                theme.style(Role::Error)
                            },
                        )),
                    ])
                    .style(row_style(selected, theme))
                })
                .collect()
        });
    }
}
