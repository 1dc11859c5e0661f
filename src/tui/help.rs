//! The `?` overlay: every binding of the current tab (its own keys first), the shell's keys as
//! configured, the filter line's keys, the filter language (`filter::FILTER_HELP`, the text
//! `opsdash export --help` and the README show too), and the `:` commands.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use crate::tui::app::App;
use crate::tui::keymap::ACTIONS;
use crate::tui::theme::Role;
use crate::tui::widgets::block;

/// Keys of the `/` filter line (a tui-textarea; see `line_input`).
pub const FILTER_LINE_KEYS: &[(&str, &str)] = &[
    (
        "/",
        "opens with the applied filter selected: type to replace it",
    ),
    ("left right end", "keep the text and edit it"),
    (
        "enter",
        "apply (the only key that applies; remember in the history)",
    ),
    (
        "esc  ctrl-c",
        "cancel: the applied filter stays, the line closes",
    ),
    ("up  down", "walk the last 100 filters"),
    ("ctrl-a  ctrl-e", "start / end of the line"),
    ("ctrl-w  ctrl-k", "delete a word back / to the end"),
    ("alt-b  alt-f", "a word back / forward"),
    ("ctrl-u  ctrl-r", "undo / redo"),
];

/// How the Logs tab's list is made, for the overlay.
pub const LOGS_LIST: &[(&str, &str)] = &[
    (
        "order",
        "by event time (ts, then id), whatever the commit order",
    ),
    (
        "late lines",
        "placed where their time says; the status line counts them",
    ),
    (
        "",
        "  (\"N late\"): scroll up (k, PgUp) to see them in place",
    ),
    (
        "range",
        "only lines inside the range (:range 1h...) and the filter",
    ),
    ("counts", "\"N in 1h · E W I\": the lines the list can show"),
    (
        "x  :export",
        "writes exactly those lines (filter and range)",
    ),
    (
        "dates",
        "shown when the range spans days or a line is not today",
    ),
    ("LIVE", "following and the newest line under a minute old;"),
    ("", "  else FOLLOWING with the newest line's age"),
];

/// The Logs tab's other views (`v`), for the overlay on that tab.
pub const LOGS_VIEWS: &[(&str, &str)] = &[
    ("error groups", "v from the list; the view's keys:"),
    ("a p R i o", "ack / in progress / resolve / ignore / reopen"),
    ("n", "the same with a note: \"resolve fixed in 1.4.2\""),
    ("s", "sort: last seen / count / users / first seen"),
    ("/", "status:new,regressed service:api type:Timeout words"),
    ("enter  d", "the group's log lines / its detail"),
    ("▲ regressed", "came back after it was resolved"),
    (
        "audit trail",
        "v again; /actor:NAME action:*delete* since:1d",
    ),
    ("m", "mass deletes: > 10 by one actor and action in 5 min"),
    ("", "  (enter: those rows in the trail)"),
    ("D", "who deleted the selected row's resource"),
    (
        "x  :export F",
        "the rows of the filter, JSON lines (.log: text)",
    ),
];

/// `FILTER_HELP` as overlay entries: "example   what it selects" lines split at their column,
/// other lines as notes.
pub fn filter_language() -> Vec<(String, String)> {
    crate::filter::FILTER_HELP
        .lines()
        .map(|l| match l.split_once("   ") {
            Some((k, h)) => (k.trim().to_string(), h.trim().to_string()),
            None => (" ".to_string(), l.to_string()),
        })
        .collect()
}

/// What a binding does, marked unavailable when it writes and the connection is read-only.
pub fn binding_help(
    app: &App,
    tab: &dyn crate::tui::view::TabView,
    b: &crate::tui::view::Binding,
) -> String {
    if unavailable(app, tab, b) {
        format!("{} (unavailable: read-only)", b.help)
    } else {
        b.help.to_string()
    }
}

/// The binding writes and this connection may not.
pub fn unavailable(
    app: &App,
    tab: &dyn crate::tui::view::TabView,
    b: &crate::tui::view::Binding,
) -> bool {
    !app.env.db.access.can_operate() && tab.operator_keys().contains(&b.keys)
}

/// The help text, one entry per line: (keys, what they do); an empty key starts a section.
pub fn lines(app: &App) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut on_logs = false;
    if let Some(tab) = app.active_tab() {
        let own = tab.bindings();
        if !own.is_empty() {
            out.push((String::new(), format!("{} tab", tab.id().title())));
            for b in &own {
                out.push((b.keys.to_string(), binding_help(app, tab, b)));
            }
        }
        on_logs = tab.id() == crate::tui::msg::Tab::Logs;
    }
    if on_logs {
        out.push((String::new(), "The Logs list".into()));
        for (k, h) in LOGS_LIST {
            out.push((
                if k.is_empty() { " " } else { k }.to_string(),
                h.to_string(),
            ));
        }
        out.push((String::new(), "Error groups and audit trail".into()));
        for (k, h) in LOGS_VIEWS {
            out.push((
                if k.is_empty() { " " } else { k }.to_string(),
                h.to_string(),
            ));
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
    out.push((
        String::new(),
        "Log filter language (/ on the Logs tab, opsdash export --filter)".into(),
    ));
    out.extend(filter_language());
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
    crate::tui::widgets::render(f, Clear, area);
    crate::tui::widgets::render(
        f,
        Paragraph::new(text)
            .block(block("Help - j/k scroll, esc or ? closes", true, theme))
            .style(theme.style(Role::Text))
            .scroll((scroll.min(max_scroll), 0)),
        area,
    );
}
