//! The Alerts tab's prompt: a one-line note (acknowledge, resolve) or a duration (silence)
//! over the bottom of the view; Enter runs the operator action, Esc closes it.

use ratatui::layout::Rect;
use ratatui::text::Span;
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::Shared;
use crate::alerts::operator::{self, Operator};
use crate::alerts::Matcher;
use crate::sanitize::sanitize;
use crate::tui::line_input::LineInput;
use crate::tui::msg::Effect;
use crate::tui::theme::{Role, Theme};
use crate::tui::view::TabCtx;
use crate::tui::widgets::{framed, truncate};

/// A text prompt open over the tab.
pub enum Prompt {
    Ack {
        id: i64,
        input: LineInput,
    },
    Resolve {
        id: i64,
        input: LineInput,
    },
    Silence {
        matchers: Vec<Matcher>,
        input: LineInput,
    },
}

impl Prompt {
    pub fn input(&mut self) -> &mut LineInput {
        match self {
            Prompt::Ack { input, .. }
            | Prompt::Resolve { input, .. }
            | Prompt::Silence { input, .. } => input,
        }
    }
    fn title(&self) -> String {
        match self {
            Prompt::Ack { id, .. } => {
                format!("Acknowledge alert {id}: note (Enter to save, Esc to cancel)")
            }
            Prompt::Resolve { id, .. } => {
                format!("Resolve alert {id}: note (Enter to save, Esc to cancel)")
            }
            Prompt::Silence { .. } => "Silence for how long? e.g. 30m, 2h (Enter / Esc)".into(),
        }
    }

    pub fn submit(sh: &mut Shared, ctx: &TabCtx) -> Vec<Effect> {
        let Some(mut prompt) = sh.prompt.take() else {
            return Vec::new();
        };
        let text = prompt.input().text().trim().to_string();
        let db = ctx.db.clone();
        let cfg = sh.cfg.clone();
        let op = Operator::current();
        match prompt {
            Prompt::Ack { id, .. } => sh.action(async move {
                let a = operator::acknowledge(&db, &op, id, Some(&text)).await?;
                Ok(format!("alert {} acknowledged", a.id))
            }),
            Prompt::Resolve { id, .. } => sh.action(async move {
                let a = operator::resolve(&db, &cfg, &op, id, Some(&text)).await?;
                Ok(format!("alert {} resolved", a.id))
            }),
            Prompt::Silence { matchers, .. } => {
                let d = match crate::alerts::config::duration(if text.is_empty() {
                    "1h"
                } else {
                    &text
                }) {
                    Ok(d) if !d.is_zero() => d,
                    Ok(_) | Err(_) => {
                        sh.message = Some((
                            format!("not a duration: {text:?} (e.g. 30m, 2h)"),
                            Role::Error,
                        ));
                        return Vec::new();
                    }
                };
                sh.action(async move {
                    let id =
                        operator::silence(&db, &op, &matchers, d, "from the Alerts tab").await?;
                    Ok(format!(
                        "silence {id} active for {}",
                        humantime::format_duration(d)
                    ))
                })
            }
        }
    }

    pub fn draw(&self, f: &mut Frame, area: Rect, theme: &Theme) {
        let p = self;
        let h = if matches!(p, Prompt::Silence { .. }) {
            5
        } else {
            3
        };
        let r = Rect {
            x: area.x,
            y: area.bottom().saturating_sub(h),
            width: area.width,
            height: h.min(area.height),
        };
        crate::tui::widgets::render(f, ratatui::widgets::Clear, r);
        let inner = framed(f, r, &p.title(), true, theme);
        let input_area = if let Prompt::Silence { matchers, .. } = p {
            let ms: Vec<String> = matchers.iter().map(|m| m.to_string()).collect();
            crate::tui::widgets::render(
                f,
                Paragraph::new(Span::styled(
                    truncate(
                        &sanitize(&format!("matchers: {}", ms.join(", "))),
                        inner.width as usize,
                    ),
                    theme.style(Role::Dim),
                )),
                Rect { height: 1, ..inner },
            );
            Rect {
                y: inner.y + 2,
                height: 1,
                ..inner
            }
        } else {
            inner
        };
        let input = match p {
            Prompt::Ack { input, .. }
            | Prompt::Resolve { input, .. }
            | Prompt::Silence { input, .. } => input,
        };
        let cursor =
            ratatui::style::Style::default().add_modifier(ratatui::style::Modifier::REVERSED);
        crate::tui::widgets::render(
            f,
            &input.widget(ratatui::style::Style::default(), cursor),
            input_area,
        );
    }
}
