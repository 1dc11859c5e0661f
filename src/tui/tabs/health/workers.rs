//! The Health tab's worker section: each background job, its lease holder and last run.

// The tab's imports, helpers and private fields: a section is part of the tab.
use super::*;

impl HealthTab {
    pub(super) fn draw_worker(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let jobs = self.visible_jobs();
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
            .workers
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
            let sel = self.selected(Section::Worker, jobs.len());
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
