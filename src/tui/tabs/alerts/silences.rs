//! The Alerts tab's silences view: pending and active silences with their matchers and end;
//! `u` expires the selected one.

use ratatui::layout::Rect;
use ratatui::widgets::Row;
use ratatui::Frame;

use super::Shared;
use crate::alerts::operator::{self, Operator};
use crate::query::silences::{self, SilenceRow};
use crate::sanitize::sanitize;
use crate::tui::msg::{AlertsData, Effect, QueryRequest};
use crate::tui::theme::Role;
use crate::tui::view::{Cursor, DrawCtx, Panel, TabCtx};
use crate::tui::widgets::{draw_table_panel, framed, row_style, Columns};

#[derive(Default)]
pub struct SilencesView {
    pub silences: Panel<Vec<SilenceRow>>,
    pub cursor: Cursor,
}

impl SilencesView {
    pub fn request(ctx: &TabCtx) -> Effect {
        let db = ctx.db.clone();
        Effect::Query(QueryRequest::new(
            "silences",
            async move { silences::silences(&db.read, false).await },
            AlertsData::Silences,
        ))
    }

    pub fn visible(&self) -> Vec<&SilenceRow> {
        self.silences.data.iter().flatten().collect()
    }

    pub fn on_data(&mut self, r: Result<Vec<SilenceRow>, String>, shown: bool) {
        let had = self.visible().get(self.cursor.selected).map(|s| s.id);
        self.silences.set(r);
        if shown {
            let ids: Vec<_> = self.visible().iter().map(|s| s.id).collect();
            self.cursor.follow(had.as_ref(), ids);
        }
    }

    pub fn on_key(&mut self, c: char, sh: &mut Shared, ctx: &TabCtx) -> Option<Vec<Effect>> {
        match c {
            'u' => {
                let id = self.visible().get(self.cursor.selected)?.id;
                let (db, op) = (ctx.db.clone(), Operator::current());
                Some(sh.action(async move {
                    operator::expire_silence(&db, &op, id).await?;
                    Ok(format!("silence {id} expired"))
                }))
            }
            _ => None,
        }
    }

    pub fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let t = ctx.theme;
        let inner = framed(f, area, "Silences · u expire", true, t);
        let list = self.visible();
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
}
