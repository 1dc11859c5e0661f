//! Drawing helpers shared by tabs: number formatting, KPI cards with a sparkline and a change
//! arrow, themed blocks, table panels and text sparklines. Everything here is pure.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Sparkline, Table};
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use crate::model::{AlertState, Severity};
use crate::tui::theme::{Role, Theme};

/// "12s ago" style age of a duration.
pub fn human_age(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    if s < 0 {
        "in the future".into()
    } else if s < 60 {
        format!("{s}s ago")
    } else if s < 3600 {
        format!("{}m ago", s / 60)
    } else if s < 86_400 {
        format!("{}h ago", s / 3600)
    } else {
        format!("{}d ago", s / 86_400)
    }
}

/// Compact duration: "45s", "12m", "3h", "2d".
pub fn human_secs(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        "-".into()
    } else if s < 1.0 {
        format!("{:.0}ms", s * 1000.0)
    } else if s < 60.0 {
        format!("{s:.0}s")
    } else if s < 3600.0 {
        format!("{:.0}m", s / 60.0)
    } else if s < 86_400.0 {
        format!("{:.1}h", s / 3600.0)
    } else {
        format!("{:.1}d", s / 86_400.0)
    }
}

/// 950, 1.2k, 3.4M, 5.6G.
pub fn fmt_count(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        "-".into()
    } else if a < 1000.0 {
        if v.fract() == 0.0 {
            format!("{v:.0}")
        } else if a < 10.0 {
            format!("{v:.2}")
        } else {
            format!("{v:.1}")
        }
    } else if a < 1e6 {
        format!("{:.1}k", v / 1e3)
    } else if a < 1e9 {
        format!("{:.1}M", v / 1e6)
    } else {
        format!("{:.1}G", v / 1e9)
    }
}

/// Milliseconds: "87ms", "1.24s".
pub fn fmt_ms(ms: f64) -> String {
    if !ms.is_finite() {
        "-".into()
    } else if ms < 10.0 {
        format!("{ms:.1}ms")
    } else if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{:.2}s", ms / 1000.0)
    }
}

pub fn fmt_pct(ratio: f64) -> String {
    if !ratio.is_finite() {
        "-".into()
    } else if ratio >= 0.9995 || ratio == 0.0 {
        format!("{:.0}%", ratio * 100.0)
    } else if ratio < 0.001 {
        format!("{:.3}%", ratio * 100.0)
    } else {
        format!("{:.1}%", ratio * 100.0)
    }
}

pub fn fmt_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0}{}", UNITS[i])
    } else {
        format!("{v:.1}{}", UNITS[i])
    }
}

/// Cuts `s` to `width` columns (by chars), with an ellipsis when cut.
pub fn truncate(s: &str, width: usize) -> String {
    use unicode_width::UnicodeWidthChar;
    if UnicodeWidthStr::width(s) <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    // Counted in terminal cells, not chars: a CJK character takes two, and cutting by chars
    // would overrun the column and push the next one aside.
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > width - 1 {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// `s` cut to `width` terminal cells (see `truncate`) and padded with spaces to exactly
/// `width` cells: `format!("{:<w$}")` pads by chars, which misaligns wide characters.
pub fn pad(s: &str, width: usize) -> String {
    let mut out = truncate(s, width);
    let used = UnicodeWidthStr::width(out.as_str());
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(used)));
    out
}

/// Renders `widget` into `area`: how every view draws, so a test can check (`tui::paint`)
/// that no two widgets write the same cell.
pub fn render<W: ratatui::widgets::Widget>(f: &mut Frame, widget: W, area: Rect) {
    crate::tui::paint::record::<W>(area);
    f.render_widget(widget, area);
}

/// Which direction of change is bad news, for the colour of the change arrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trend {
    /// More is worse (errors, latency).
    UpIsBad,
    /// More is better (uptime, users).
    UpIsGood,
    Neutral,
}

/// "▲ 12%" / "▼ 3%" / "= 0%" against the previous period, coloured by `Trend`.
pub fn change_span(cur: f64, prev: Option<f64>, trend: Trend, theme: &Theme) -> Span<'static> {
    let Some(prev) = prev.filter(|p| p.is_finite()) else {
        return Span::styled("", theme.style(Role::Dim));
    };
    if !cur.is_finite() {
        return Span::styled("", theme.style(Role::Dim));
    }
    if prev == 0.0 {
        return if cur == 0.0 {
            Span::styled("= 0%", theme.style(Role::Dim))
        } else {
            let role = match trend {
                Trend::UpIsBad => Role::Error,
                Trend::UpIsGood => Role::Ok,
                Trend::Neutral => Role::Dim,
            };
            Span::styled("▲ new", theme.style(role))
        };
    }
    let pct = (cur - prev) / prev.abs() * 100.0;
    let (arrow, up) = if pct.abs() < 0.5 {
        ("=", None)
    } else if pct > 0.0 {
        ("▲", Some(true))
    } else {
        ("▼", Some(false))
    };
    let role = match (trend, up) {
        (_, None) | (Trend::Neutral, _) => Role::Dim,
        (Trend::UpIsBad, Some(true)) | (Trend::UpIsGood, Some(false)) => Role::Warn,
        _ => Role::Ok,
    };
    let text = if pct.abs() >= 1000.0 {
        format!("{arrow} {:.0}x", cur / prev)
    } else {
        format!("{arrow} {:.0}%", pct.abs())
    };
    Span::styled(text, theme.style(role))
}

/// One KPI counter: a title, a value, the change against the previous period and a sparkline.
#[derive(Debug, Clone, Default)]
pub struct Card {
    pub title: String,
    pub value: String,
    /// Style role of the value (e.g. Error when something is wrong).
    pub value_role: Option<Role>,
    pub change: Option<Span<'static>>,
    pub spark: Vec<u64>,
    /// Extra text after the value (e.g. "of 12").
    pub detail: String,
}

/// Draws a card in 3 rows (title, value+change, sparkline); fewer rows drop the sparkline.
pub fn draw_card(f: &mut Frame, area: Rect, card: &Card, theme: &Theme) {
    if area.height == 0 || area.width < 4 {
        return;
    }
    let inner = Rect {
        x: area.x + 1,
        width: area.width.saturating_sub(2),
        ..area
    };
    let rows = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
    ])
    .split(inner);
    crate::tui::widgets::render(
        f,
        Paragraph::new(Span::styled(
            truncate(&card.title, inner.width as usize),
            theme.style(Role::Dim),
        )),
        rows[0],
    );
    let mut spans = vec![Span::styled(
        card.value.clone(),
        theme
            .style(card.value_role.unwrap_or(Role::Text))
            .add_modifier(ratatui::style::Modifier::BOLD),
    )];
    if !card.detail.is_empty() {
        spans.push(Span::styled(
            format!(" {}", card.detail),
            theme.style(Role::Dim),
        ));
    }
    if let Some(c) = &card.change {
        if !c.content.is_empty() {
            spans.push(Span::raw(" "));
            spans.push(c.clone());
        }
    }
    crate::tui::widgets::render(f, Paragraph::new(Line::from(spans)), rows[1]);
    if rows[2].height > 0 && !card.spark.is_empty() {
        draw_spark(f, rows[2], &card.spark, theme);
    }
}

/// A sparkline of the last `area.width` points.
pub fn draw_spark(f: &mut Frame, area: Rect, data: &[u64], theme: &Theme) {
    let w = area.width as usize;
    let tail = &data[data.len().saturating_sub(w)..];
    crate::tui::widgets::render(
        f,
        Sparkline::default()
            .data(tail)
            .style(theme.style(Role::Spark)),
        Rect {
            height: area.height.min(1),
            ..area
        },
    );
}

/// A bordered block with a title in the theme's colours; `focused` highlights the border.
pub fn block<'a>(title: &str, focused: bool, theme: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(theme.style(if focused { Role::Accent } else { Role::Border }))
        .title(Span::styled(format!(" {title} "), theme.style(Role::Title)))
}

/// Draws a bordered, titled block over `area` and returns the area inside it.
pub fn framed(f: &mut Frame, area: Rect, title: &str, focused: bool, theme: &Theme) -> Rect {
    let b = block(title, focused, theme);
    let inner = b.inner(area);
    crate::tui::widgets::render(f, b, area);
    inner
}

/// A table's columns: header titles and widths; one column, `flexible`, takes the width the
/// others leave (at least its own).
pub struct Columns {
    pub header: &'static [&'static str],
    /// Each column's minimum width.
    pub widths: &'static [u16],
    /// The column that takes the space left once every column has what it wants.
    pub flexible: usize,
    pub header_role: Role,
    /// The width a column would like when there is room (a whole trace id, a long service
    /// name); missing or smaller than the minimum: the minimum is enough.
    pub wants: &'static [u16],
}

impl Columns {
    /// Column widths for a table `width` cells wide (one cell between columns): every column
    /// gets its minimum, then space goes to the columns that want more, in order, up to what
    /// they want, and the rest to the flexible column. Fixed widths alone left half a wide
    /// terminal empty while ids were cut.
    pub fn fit(&self, width: u16) -> Vec<u16> {
        let n = self.widths.len();
        let gaps = n.saturating_sub(1) as u16;
        let mut out = self.widths.to_vec();
        let mut spare = width.saturating_sub(out.iter().sum::<u16>() + gaps);
        for (i, w) in out.iter_mut().enumerate() {
            let want = self.wants.get(i).copied().unwrap_or(0);
            let grow = want.saturating_sub(*w).min(spare);
            *w += grow;
            spare -= grow;
        }
        if let Some(w) = out.get_mut(self.flexible) {
            *w += spare;
        }
        out
    }

    /// The rows under the header, in the column widths fitted to `width`.
    pub fn table<'r>(&self, rows: Vec<Row<'r>>, theme: &Theme, width: u16) -> Table<'r> {
        let widths = self.fit(width).into_iter().map(Constraint::Length);
        Table::new(rows, widths)
            .column_spacing(1)
            .header(Row::new(self.header.iter().copied()).style(theme.style(self.header_role)))
    }
}

/// Draws a table panel into `area`: the note when there is one (loading, an error, nothing to
/// list: see `Panel::note`), else the table of the rows `rows` builds for a page of the given
/// height (the area's height less the header line).
pub fn draw_table_panel<'r>(
    f: &mut Frame,
    area: Rect,
    theme: &Theme,
    columns: &Columns,
    note: Option<(String, Role)>,
    rows: impl FnOnce(usize) -> Vec<Row<'r>>,
) {
    if let Some((msg, role)) = note {
        draw_note(f, area, &msg, role, theme);
        return;
    }
    let page = area.height.saturating_sub(1) as usize;
    crate::tui::widgets::render(f, columns.table(rows(page), theme, area.width), area);
}

/// The items on the page of `page` rows that shows item `selected`, with their indexes.
pub fn visible_page<T>(
    items: &[T],
    selected: usize,
    page: usize,
) -> impl Iterator<Item = (usize, &T)> {
    let first = selected.saturating_sub(page.saturating_sub(1));
    items.iter().enumerate().skip(first).take(page)
}

/// Block characters of a text sparkline, lowest to highest.
pub const SPARK_BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A text sparkline of the last `width` values (one block character each, blank for zero).
pub fn spark_text(values: &[u64], width: usize) -> String {
    let tail = &values[values.len().saturating_sub(width)..];
    let max = tail.iter().copied().max().unwrap_or(0);
    tail.iter()
        .map(|&v| {
            if max == 0 || v == 0 {
                ' '
            } else {
                SPARK_BARS[((v * 7) / max) as usize]
            }
        })
        .collect()
}

/// Style for a status word: healthy/ok/delivered green, degraded/warn yellow, down/error red.
pub fn status_role(status: &str) -> Role {
    match status {
        "healthy" | "ok" | "up" | "delivered" | "resolved" => Role::Ok,
        "degraded" | "warning" | "pending" | "acknowledged" => Role::Warn,
        "down" | "error" | "failed" | "dead" | "firing" => Role::Error,
        "critical" => Role::Critical,
        "info" => Role::Info,
        _ => Role::Dim,
    }
}

/// Style for an alert severity (as `status_role` colours its name).
pub fn severity_role(s: Severity) -> Role {
    match s {
        Severity::Critical => Role::Critical,
        Severity::Error => Role::Error,
        Severity::Warning => Role::Warn,
        Severity::Info => Role::Info,
    }
}

/// Style for an alert state (as `status_role` colours its name; suppressed is dim).
pub fn alert_state_role(s: AlertState) -> Role {
    match s {
        AlertState::Resolved => Role::Ok,
        AlertState::Pending | AlertState::Acknowledged => Role::Warn,
        AlertState::Firing => Role::Error,
        AlertState::Suppressed => Role::Dim,
    }
}

/// A style for one cell of a selected or plain row.
pub fn row_style(selected: bool, theme: &Theme) -> Style {
    if selected {
        theme.style(Role::Selection)
    } else {
        theme.style(Role::Text)
    }
}

/// A one-line message centred in `area` (empty panel, loading, error).
pub fn draw_note(f: &mut Frame, area: Rect, text: &str, role: Role, theme: &Theme) {
    if area.height == 0 {
        return;
    }
    let y = area.y + area.height / 2;
    crate::tui::widgets::render(
        f,
        Paragraph::new(Span::styled(
            truncate(text, area.width as usize),
            theme.style(role),
        ))
        .alignment(ratatui::layout::Alignment::Center),
        Rect {
            y,
            height: 1,
            ..area
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_count(950.0), "950");
        assert_eq!(fmt_count(1234.0), "1.2k");
        assert_eq!(fmt_count(3_400_000.0), "3.4M");
        assert_eq!(fmt_ms(87.2), "87ms");
        assert_eq!(fmt_ms(1240.0), "1.24s");
        assert_eq!(fmt_pct(0.05), "5.0%");
        assert_eq!(fmt_bytes(2048.0), "2.0kB");
        assert_eq!(truncate("abcdef", 4), "abc…");
        // Wide characters count two cells each.
        assert_eq!(truncate("東京都庁", 5), "東京…");
        assert_eq!(pad("東京", 6), "東京  ");
        assert_eq!(pad("abcdef", 4), "abc…");
        assert_eq!(human_age(chrono::Duration::seconds(125)), "2m ago");
    }

    #[test]
    fn change_arrow_direction_and_colour() {
        let t = Theme::builtin("dark").unwrap();
        let s = change_span(120.0, Some(100.0), Trend::UpIsBad, &t);
        assert_eq!(s.content, "▲ 20%");
        assert_eq!(s.style, t.style(Role::Warn));
        let s = change_span(80.0, Some(100.0), Trend::UpIsBad, &t);
        assert_eq!(s.content, "▼ 20%");
        assert_eq!(s.style, t.style(Role::Ok));
        assert_eq!(change_span(1.0, None, Trend::Neutral, &t).content, "");
    }

    fn table_panel_text(note: Option<(String, Role)>) -> String {
        const COLUMNS: Columns = Columns {
            header: &["name"],
            widths: &[4],
            flexible: 0,
            header_role: Role::Header,
            wants: &[],
        };
        let theme = Theme::builtin("dark").unwrap();
        let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(20, 4)).unwrap();
        term.draw(|f| {
            draw_table_panel(f, f.area(), &theme, &COLUMNS, note, |page| {
                assert_eq!(page, 3, "4 lines less the header");
                let names: Vec<String> = (0..9).map(|i| format!("r{i}")).collect();
                visible_page(&names, 5, page)
                    .map(|(_, n)| Row::new([n.clone()]))
                    .collect()
            })
        })
        .unwrap();
        let buf = term.backend().buffer();
        (0..4)
            .map(|y| (0..20).map(|x| buf[(x, y)].symbol()).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_table_panel_shows_its_note_or_the_page_holding_the_selected_row() {
        let text = table_panel_text(Some(("loading…".into(), Role::Dim)));
        assert!(
            text.contains("loading…") && !text.contains("name"),
            "{text}"
        );
        let text = table_panel_text(None);
        assert!(text.starts_with("name"), "{text}");
        // Row 5 selected on pages of 3: rows 3, 4 and 5.
        assert!(text.contains("r3") && text.contains("r5"), "{text}");
        assert!(!text.contains("r2") && !text.contains("r6"), "{text}");
    }

    #[test]
    fn columns_give_wanted_width_first_then_the_rest_to_the_flexible_one() {
        const C: Columns = Columns {
            header: &["time", "endpoint", "trace"],
            widths: &[8, 14, 16],
            flexible: 1,
            header_role: Role::Header,
            wants: &[0, 30, 32],
        };
        // 80 cells: minimums (38) + 2 gaps, 40 spare: endpoint to 30, trace to 32, the last
        // 8 to the flexible endpoint column.
        assert_eq!(C.fit(80), vec![8, 38, 32]);
        // 60 cells: 20 spare, endpoint takes 16 of them first, trace the 4 left.
        assert_eq!(C.fit(60), vec![8, 30, 20]);
        // 160 cells: every column has what it wants, the flexible column takes the rest.
        assert_eq!(C.fit(160), vec![8, 118, 32]);
        assert_eq!(C.fit(160).iter().sum::<u16>() + 2, 160);
        // Too narrow: the minimums (ratatui clips the last column).
        assert_eq!(C.fit(20), vec![8, 14, 16]);
    }

    #[test]
    fn spark_text_scales_to_the_maximum() {
        assert_eq!(spark_text(&[0, 1, 7], 8), " ▂█");
        assert_eq!(spark_text(&[5; 20], 4).chars().count(), 4);
        assert_eq!(spark_text(&[], 4), "");
    }
}

/// `Buffer::set_line` with a fast path for printable ASCII, which is nearly every log line: one
/// cell per byte, no grapheme segmentation or width lookup (which were a tenth of the
/// dashboard's time while the tail streams 10,000 lines a second). Any other span goes through
/// ratatui's own `set_stringn`, so the cells are exactly what `set_line` writes.
pub fn put_line(buf: &mut ratatui::buffer::Buffer, x: u16, y: u16, line: &Line, width: u16) {
    crate::tui::paint::record::<Line>(Rect::new(x, y, width, 1));
    let right = buf.area.right().min(x.saturating_add(width));
    if y < buf.area.top() || y >= buf.area.bottom() || x < buf.area.left() {
        return;
    }
    let mut x = x;
    for span in &line.spans {
        if x >= right {
            break;
        }
        let style = line.style.patch(span.style);
        let text = span.content.as_ref();
        if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            for b in text.bytes().take(usize::from(right - x)) {
                buf[(x, y)].set_char(char::from(b)).set_style(style);
                x += 1;
            }
        } else {
            x = buf.set_stringn(x, y, text, usize::from(right - x), style).0;
        }
    }
}

#[cfg(test)]
mod put_line_tests {
    use super::put_line;
    use ratatui::buffer::Buffer;
    use ratatui::layout::Rect;
    use ratatui::style::{Color, Style};
    use ratatui::text::{Line, Span};

    #[test]
    fn writes_the_same_cells_as_set_line() {
        let lines = [
            Line::from(vec![
                Span::styled("12:00:01.250 ", Style::new().fg(Color::Gray)),
                Span::styled("ERROR ", Style::new().fg(Color::Red)),
                Span::raw("payment declined for order 4711, retrying in 5 s"),
            ]),
            Line::from(vec![
                Span::raw("wide 漢字 and é combining e\u{301} "),
                Span::styled("tab\there", Style::new().fg(Color::Blue)),
                Span::raw(" tail"),
            ])
            .style(Style::new().bg(Color::DarkGray)),
            Line::from("exactly twenty chars"),
            Line::from(""),
        ];
        for line in &lines {
            for (x, width) in [(0, 40), (3, 17), (5, 200), (39, 5), (0, 0)] {
                let area = Rect::new(0, 0, 40, 3);
                let mut want = Buffer::empty(area);
                let mut got = Buffer::empty(area);
                want.set_line(x, 1, line, width);
                put_line(&mut got, x, 1, line, width);
                assert_eq!(got, want, "line {line:?} at x={x} width={width}");
            }
        }
    }
}
