//! The `?` overlay: every binding of the current tab (its own keys first), the shell's keys as
//! configured, and the `:` commands.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use crate::tui::app::App;
use crate::tui::keymap::ACTIONS;
use crate::tui::theme::Role;
use crate::tui::widgets::block;

/// Keys of the `/` filter line (a tui-textarea; see `filter_line`).
pub const FILTER_LINE_KEYS: &[(&str, &str)] = &[
    ("enter", "apply (and remember in the history)"),
    ("esc  ctrl-c", "clear the filter and close the line"),
    ("up  down", "walk the last 100 filters"),
    ("ctrl-a  ctrl-e", "start / end of the line"),
    ("ctrl-w  ctrl-k", "delete a word back / to the end"),
    ("alt-b  alt-f", "a word back / forward"),
    ("ctrl-u  ctrl-r", "undo / redo"),
];

/// The help text, one entry per line: (keys, what they do); an empty key starts a section.
pub fn lines(app: &App) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(tab) = app.active_tab() {
        let own = tab.bindings();
        if !own.is_empty() {
            out.push((String::new(), format!("{} tab", tab.id().title())));
            for b in own {
                out.push((b.keys.to_string(), b.help.to_string()));
            }
        }
    }
    out.push((String::new(), "Everywhere".into()));
    for (_, action, _, help) in ACTIONS {
        let keys = app.keymap.keys_for(*action);
        if !keys.is_empty() {
            out.push((keys, help.to_string()));
        }
    }
    out.push((
        "mouse".into(),
        "wheel scrolls, click a tab to open it".into(),
    ));
    out.push((String::new(), "Filter line (/)".into()));
    for (k, h) in FILTER_LINE_KEYS {
        out.push((k.to_string(), h.to_string()));
    }
    out.push((String::new(), "Commands".into()));
    for (c, h) in crate::tui::command::HELP {
        out.push((c.to_string(), h.to_string()));
    }
    out
}

pub fn draw(app: &App, f: &mut Frame, body: Rect, scroll: u16) {
    let theme = &app.theme;
    let w = body.width.saturating_sub(4).clamp(20, 76);
    let h = body.height.saturating_sub(1).max(3);
    let area = Rect {
        x: body.x + (body.width.saturating_sub(w)) / 2,
        y: body.y,
        width: w.min(body.width),
        height: h.min(body.height),
    };
    let entries = lines(app);
    let key_w = entries
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        .min(28);
    let text: Vec<Line> = entries
        .into_iter()
        .map(|(k, h)| {
            if k.is_empty() {
                Line::from(Span::styled(h, theme.style(Role::Title)))
            } else {
                Line::from(vec![
                    Span::styled(format!("  {k:<key_w$}  "), theme.style(Role::Accent)),
                    Span::styled(h, theme.style(Role::Text)),
                ])
            }
        })
        .collect();
    let max_scroll = (text.len() as u16).saturating_sub(area.height.saturating_sub(2));
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(text)
            .block(block("Help - j/k scroll, esc or ? closes", true, theme))
            .style(theme.style(Role::Text))
            .scroll((scroll.min(max_scroll), 0)),
        area,
    );
}
