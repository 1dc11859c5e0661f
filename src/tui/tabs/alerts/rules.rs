//! The Alerts tab's rules view: every rule with its status, measure, condition, last value
//! and error; `e` enables or disables the selected rule, `T` evaluates it now and shows what
//! would fire without sending anything.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row};
use ratatui::Frame;

use super::{num, Shared};
use crate::alerts::engine;
use crate::alerts::operator::{self, Operator};
use crate::query::alert_metrics::Sample;
use crate::query::rules::{self, Rule};
use crate::sanitize::sanitize;
use crate::tui::msg::{AlertsData, Effect, QueryRequest};
use crate::tui::theme::Role;
use crate::tui::view::{Cursor, DrawCtx, Panel, TabCtx};
use crate::tui::widgets::{draw_table_panel, framed, row_style, visible_page, Columns};

/// Each label set's value and whether the condition holds, or the error.
pub type PreviewResult = Result<Vec<(Sample, bool)>, String>;

#[derive(Default)]
pub struct RulesView {
    pub rules: Panel<Vec<Rule>>,
    /// The last `T`: the rule's name and what its evaluation found.
    pub preview: Option<(String, PreviewResult)>,
    pub cursor: Cursor,
    pub filter: String,
}

impl RulesView {
    pub fn request(ctx: &TabCtx) -> Effect {
        let db = ctx.db.clone();
        Effect::Query(QueryRequest::new(
            "rules",
            async move { rules::rules(&db.read).await },
            AlertsData::Rules,
        ))
    }

    pub fn visible(&self) -> Vec<&Rule> {
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

    pub fn on_data(&mut self, r: Result<Vec<Rule>, String>, shown: bool) {
        let name = |r: &Rule| r.spec.name.clone();
        let had = self.visible().get(self.cursor.selected).map(|r| name(r));
        self.rules.set(r);
        if shown {
            let names: Vec<String> = self.visible().into_iter().map(name).collect();
            self.cursor.follow(had.as_ref(), names);
        }
    }

    pub fn on_preview(&mut self, res: PreviewResult, sh: &mut Shared) {
        sh.message = None;
        if let Some((_, r)) = self.preview.as_mut() {
            *r = res;
        }
    }

    pub fn on_key(&mut self, c: char, sh: &mut Shared, ctx: &TabCtx) -> Option<Vec<Effect>> {
        let db = ctx.db.clone();
        let op = Operator::current();
        match c {
            'e' => {
                let r = self.visible().get(self.cursor.selected).copied()?;
                let name = r.spec.name.clone();
                let to = if r.spec.status == "disabled" {
                    "enabled"
                } else {
                    "disabled"
                };
                Some(sh.action(async move {
                    operator::set_rule_status(&db, &op, &name, to).await?;
                    Ok(format!("rule {name} {to}"))
                }))
            }
            'T' => {
                let r = self.visible().get(self.cursor.selected).copied()?;
                let (name, spec, cfg) = (r.spec.name.clone(), r.spec.clone(), sh.cfg.clone());
                self.preview = Some((name.clone(), Ok(Vec::new())));
                sh.message = Some((format!("evaluating {name}…"), Role::Dim));
                Some(vec![Effect::Query(QueryRequest::new(
                    "preview",
                    async move { engine::preview(&db, &cfg, &spec).await },
                    AlertsData::Preview,
                ))])
            }
            _ => None,
        }
    }

    pub fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let t = ctx.theme;
        let rules = self.visible();
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
}
