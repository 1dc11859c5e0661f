//! `draw`: a pure function of the application state. Header (tab bar, clock, connection, alert
//! counts, worker leadership, time range), the database banner, the current tab, the status bar
//! and the overlays (help, command line, filter).

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use crate::db::topology::ReplicaStatus;
use crate::tui::app::{App, Conn, Mode};
use crate::tui::theme::Role;
use crate::tui::view::DrawCtx;
use crate::tui::widgets::truncate;

pub fn draw(app: &App, f: &mut Frame) {
    let area = f.area();
    let theme = &app.theme;
    crate::tui::widgets::render(f, Block::default().style(theme.style(Role::Text)), area);
    let banner = matches!(app.conn, Conn::Down { .. }) || app.background_note.is_some();
    let rows = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(banner as u16),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .split(area);
    draw_tab_bar(app, f, rows[0]);
    draw_info_line(app, f, rows[1]);
    if banner {
        draw_banner(app, f, rows[2]);
    }
    let ctx = DrawCtx {
        theme,
        now: app.now,
        range: app.range,
        local_clock: app.local_clock,
        instance: &app.env.instance,
    };
    if let Some(tab) = app.active_tab() {
        tab.draw(f, rows[3], &ctx);
    }
    draw_status_bar(app, f, rows[4]);
    if let Mode::Help { scroll } = app.mode {
        crate::tui::help::draw(app, f, rows[3], scroll);
    }
}

fn clock_text(app: &App) -> String {
    if app.local_clock {
        app.now
            .with_timezone(&chrono::Local)
            .format("%H:%M:%S %Z")
            .to_string()
    } else {
        app.now.format("%H:%M:%S UTC").to_string()
    }
}

fn draw_tab_bar(app: &App, f: &mut Frame, area: Rect) {
    let theme = &app.theme;
    let active = app.active_id();
    let mut spans = Vec::new();
    let bar = crate::tui::layout::tab_bar(app.tabs.iter().map(|t| t.id()), area.width);
    for (i, entry) in bar.into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" ", theme.style(Role::Header)));
        }
        let role = if Some(entry.tab) == active {
            Role::TabActive
        } else {
            Role::TabInactive
        };
        spans.push(Span::styled(entry.label, theme.style(role)));
    }
    let clock = clock_text(app);
    let cw = clock.chars().count() as u16 + 1;
    let [left, right] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(cw)]).areas(area);
    crate::tui::widgets::render(
        f,
        Paragraph::new(Line::from(spans)).style(theme.style(Role::Header)),
        left,
    );
    crate::tui::widgets::render(
        f,
        Paragraph::new(Span::styled(clock, theme.style(Role::Header)))
            .alignment(ratatui::layout::Alignment::Right),
        right,
    );
}

fn draw_info_line(app: &App, f: &mut Frame, area: Rect) {
    let theme = &app.theme;
    let dim = theme.style(Role::Dim);
    let mut right: Vec<Span> = Vec::new();
    // Open alerts by severity, always visible; the words say what is counted (open = not
    // resolved, as in the Alerts tab, the KPI card and `alerts list`), testing-mode ones apart.
    match &app.header {
        Some(h) => {
            let a = &h.alerts;
            right.push(Span::styled("alerts open: ", dim));
            for (label, n, role) in [
                ("C", a.critical, Role::Critical),
                ("E", a.error, Role::Error),
                ("W", a.warning, Role::Warn),
                ("I", a.info, Role::Info),
            ] {
                let style = if n > 0 { theme.style(role) } else { dim };
                right.push(Span::styled(format!("{label}{n}"), style));
                right.push(Span::styled(" ", dim));
            }
            if a.testing > 0 {
                right.push(Span::styled(format!("+{} testing ", a.testing), dim));
            }
            right.push(Span::styled("│ ", dim));
            if h.jobs_total == 0 {
                right.push(Span::styled("worker idle", dim));
            } else if h.jobs_led > 0 {
                right.push(Span::styled(
                    format!("leader {}/{}", h.jobs_led, h.jobs_total),
                    theme.style(Role::Accent),
                ));
            } else {
                right.push(Span::styled("follower", dim));
            }
            match h.replica {
                None | Some(ReplicaStatus::Unknown) => {}
                Some(ReplicaStatus::Serving { lag, paused }) => {
                    right.push(Span::styled(" │ ", dim));
                    let secs = lag.as_secs_f64();
                    let role = if paused || secs >= 30.0 {
                        Role::Warn
                    } else {
                        Role::Dim
                    };
                    let what = if paused {
                        "replay paused"
                    } else {
                        "replica lag"
                    };
                    right.push(Span::styled(
                        format!("{what} {secs:.1}s"),
                        theme.style(role),
                    ));
                }
                Some(ReplicaStatus::Down) => {
                    right.push(Span::styled(" │ ", dim));
                    right.push(Span::styled(
                        "replica down: reading primary",
                        theme.style(Role::Error),
                    ));
                }
            }
        }
        None => right.push(Span::styled("alerts …", dim)),
    }
    // Said once, up front: this session cannot act (a reader's role, or --read-only).
    if let Some(badge) = app.env.db.access.badge() {
        right.push(Span::styled(" │ ", dim));
        right.push(Span::styled(badge, theme.style(Role::Warn)));
    }
    right.push(Span::styled(" │ ", dim));
    right.push(Span::styled(
        format!("range {}", app.range.label()),
        theme.style(Role::Accent),
    ));
    let right_w: u16 = right.iter().map(|s| s.width() as u16).sum::<u16>() + 1;
    let [left_area, right_area] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(right_w)]).areas(area);
    let (dot, state, role) = match &app.conn {
        Conn::Connecting => ("○", "connecting".to_string(), Role::Warn),
        Conn::Up { rtt } => (
            "●",
            format!("{:.0}ms", rtt.as_secs_f64() * 1000.0),
            Role::Ok,
        ),
        Conn::Down { .. } => ("✕", "reconnecting".to_string(), Role::Error),
    };
    let target = crate::sanitize::sanitize(&app.env.db.target.to_string()).into_owned();
    let left_room = left_area.width as usize;
    let state_text = format!("{dot} {state} ");
    let target_room = left_room.saturating_sub(state_text.chars().count() + 1);
    crate::tui::widgets::render(
        f,
        Paragraph::new(Line::from(vec![
            Span::styled(state_text, theme.style(role)),
            Span::styled(truncate(&target, target_room), dim),
        ])),
        left_area,
    );
    crate::tui::widgets::render(
        f,
        Paragraph::new(Line::from(right)).alignment(ratatui::layout::Alignment::Right),
        right_area,
    );
}

/// One banner line: a lost database first (it is the emergency), else the background note.
fn draw_banner(app: &App, f: &mut Frame, area: Rect) {
    let text = match (&app.conn, &app.background_note) {
        (Conn::Down { since, error }, _) => {
            let secs = (app.now - *since).num_seconds().max(0);
            format!(
                " DATABASE UNREACHABLE for {secs}s: {error} - retrying every second; keys keep working "
            )
        }
        (_, Some(note)) => format!(" {} ", crate::sanitize::sanitize(note)),
        _ => return,
    };
    crate::tui::widgets::render(
        f,
        Paragraph::new(Span::styled(
            truncate(&text, area.width as usize),
            app.theme.style(Role::Banner),
        ))
        .style(app.theme.style(Role::Banner)),
        area,
    );
}

fn draw_status_bar(app: &App, f: &mut Frame, area: Rect) {
    let theme = &app.theme;
    match &app.mode {
        Mode::Command(input) => {
            let line = Line::from(vec![
                Span::styled(":", theme.style(Role::Accent)),
                Span::styled(input.text().to_string(), theme.style(Role::Input)),
            ]);
            crate::tui::widgets::render(f, Paragraph::new(line), area);
            let before: usize = input.cursor();
            let x = area.x + 1 + before.min(area.width.saturating_sub(2) as usize) as u16;
            f.set_cursor_position((x, area.y));
            return;
        }
        Mode::Filter(input) => {
            let [prefix, rest] =
                Layout::horizontal([Constraint::Length(1), Constraint::Min(0)]).areas(area);
            crate::tui::widgets::render(f, Span::styled("/", theme.style(Role::Accent)), prefix);
            let input_style = theme.style(Role::Input);
            crate::tui::widgets::render(
                f,
                &input.widget(
                    input_style,
                    input_style.add_modifier(ratatui::style::Modifier::REVERSED),
                ),
                rest,
            );
            return;
        }
        _ => {}
    }
    let dim = theme.style(Role::Dim);
    let key = theme.style(Role::Accent);
    let mut hints: Vec<(String, String)> = vec![
        ("?".into(), "help".into()),
        (":".into(), "cmd".into()),
        ("/".into(), "filter".into()),
    ];
    if let Some(tab) = app.active_tab() {
        let own = tab.bindings();
        for b in own
            .iter()
            .filter(|b| !matches!(b.keys, "/" | "j/k"))
            .take(3)
        {
            // The status bar is short: an unavailable key just says so (help has the rest).
            let help = if crate::tui::help::unavailable(app, tab, b) {
                "read-only".to_string()
            } else {
                b.help.to_string()
            };
            hints.push((b.keys.to_string(), help));
        }
    }
    hints.push(("q".into(), "quit".into()));
    let mut spans: Vec<Span> = Vec::new();
    if let Some(tab) = app.active_tab() {
        if !tab.filter().is_empty() {
            spans.push(Span::styled(
                format!("/{} ", crate::sanitize::sanitize(tab.filter())),
                theme.style(Role::Warn),
            ));
        }
    }
    for (k, h) in hints {
        spans.push(Span::styled(k, key));
        spans.push(Span::styled(format!(" {h}  "), dim));
    }
    let msg = app.message.as_ref().map(|m| {
        (
            crate::sanitize::sanitize(&m.text).into_owned(),
            if m.error { Role::Error } else { Role::Info },
        )
    });
    let msg_w = msg
        .as_ref()
        .map(|(t, _)| (t.chars().count() as u16 + 1).min(area.width * 2 / 3))
        .unwrap_or(0);
    let [left, right] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(msg_w)]).areas(area);
    crate::tui::widgets::render(
        f,
        Paragraph::new(Line::from(spans)).style(theme.style(Role::Status)),
        left,
    );
    if let Some((text, role)) = msg {
        crate::tui::widgets::render(
            f,
            Paragraph::new(Span::styled(
                truncate(&text, right.width as usize),
                theme.style(role),
            ))
            .alignment(ratatui::layout::Alignment::Right)
            .style(Style::default()),
            right,
        );
    }
}
