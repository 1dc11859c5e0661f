//! The detail pane component: the whole selected line (read when the tail read it partly) and
//! how it is drawn.

use super::*;

pub(super) fn kv(k: &str, v: &str, theme: &Theme) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{k:>12}: "), theme.style(Role::Dim)),
        Span::styled(safe(v), theme.style(Role::Text)),
    ])
}

/// Every field of a line; multi-line messages and stack traces line by line; attributes
/// pretty-printed. Each piece is sanitized separately, so a newline in the data becomes a new
/// row here and never an escape.
pub fn detail_lines(l: &LogLine, ctx: &DrawCtx) -> Vec<Line<'static>> {
    let theme = ctx.theme;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    // What an operator reads first: when, how bad, the message and the stack trace.
    let mut out = vec![Line::from(vec![
        Span::styled(
            ctx.fmt_time(l.ts, "%Y-%m-%d %H:%M:%S%.6f "),
            theme.style(Role::Dim),
        ),
        Span::styled(
            format!("{} ", l.level.name()),
            theme.style(level_role(l.level)),
        ),
        Span::styled(safe(&l.service), theme.style(Role::Accent)),
    ])];
    for line in l.message.split('\n') {
        out.push(Line::from(Span::styled(
            safe(line),
            theme.style(Role::Text),
        )));
    }
    let stack = l.attrs.as_ref().and_then(|attrs| {
        [
            "stack",
            "stacktrace",
            "stack_trace",
            "exception",
            "traceback",
            "backtrace",
        ]
        .iter()
        .find_map(|k| attrs.get(*k).and_then(|v| v.as_str()).map(|s| (*k, s)))
    });
    if let Some((k, s)) = stack {
        out.push(Line::from(Span::styled(
            format!("{k}:"),
            theme.style(Role::Dim),
        )));
        for line in s.lines() {
            out.push(Line::from(Span::styled(
                format!("  {}", safe(line)),
                theme.style(Role::Error),
            )));
        }
    }
    if l.partial {
        // The tail read only the list's columns; the whole line is on its way.
        out.extend([
            kv("trace", &opt(&l.trace_id), theme),
            kv("id", &format!("{} (tx {})", l.id, l.tx), theme),
            Line::from(Span::styled(
                "reading every field of this line…",
                theme.style(Role::Dim),
            )),
        ]);
        return out;
    }
    out.extend([
        kv("trace", &opt(&l.trace_id), theme),
        kv("span", &opt(&l.span_id), theme),
        kv("request", &opt(&l.request_id), theme),
        kv("user", &opt(&l.user_id), theme),
        kv("host", &opt(&l.host), theme),
        kv(
            "http",
            &format!(
                "{} {} {} {}",
                opt(&l.method),
                opt(&l.route),
                l.status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
                l.duration_ms.map(fmt_ms).unwrap_or_default()
            ),
            theme,
        ),
        kv("ip", &opt(&l.ip), theme),
        kv("user agent", &opt(&l.user_agent), theme),
        kv("error type", &opt(&l.error_type), theme),
        kv("fingerprint", &opt(&l.fingerprint), theme),
        kv("repeated", &l.repeat_count.to_string(), theme),
        kv("id", &format!("{} (tx {})", l.id, l.tx), theme),
    ]);
    if let Some(attrs) = &l.attrs {
        out.push(Line::from(Span::styled(
            "attributes:",
            theme.style(Role::Dim),
        )));
        let pretty = serde_json::to_string_pretty(attrs).unwrap_or_default();
        for line in pretty.lines() {
            out.push(Line::from(Span::styled(
                format!("  {}", safe(line)),
                theme.style(Role::Text),
            )));
        }
    }
    out
}

/// The detail pane of the list: whether it is open, and the whole selected line once read
/// (the tail reads lines `partial`) with the id last asked for. A component: the tab hands it
/// the selected line; it asks for the rest, takes the answer and draws.
#[derive(Default)]
pub(super) struct DetailPane {
    pub(super) shown: bool,
    full: Option<LogLine>,
    asked: Option<i64>,
}

impl DetailPane {
    /// Forgets the line read (the list was emptied).
    pub(super) fn forget(&mut self) {
        self.full = None;
    }

    /// The selected line as the pane shows it: whole once read, else as the tail read it.
    pub(super) fn line<'a>(&'a self, selected: Option<&'a LogLine>) -> Option<&'a LogLine> {
        let line = selected?;
        match &self.full {
            Some(full) if full.id == line.id => Some(full),
            _ => Some(line),
        }
    }

    /// Reads the whole selected line when the pane shows a line the tail read partly. While
    /// following a stream with the pane open this asks once per new selection; the runner
    /// keeps one read in flight and the newest request.
    pub(super) fn want(&mut self, selected: Option<&LogLine>, ctx: &TabCtx) -> Vec<Effect> {
        if !self.shown {
            return Vec::new();
        }
        let Some(line) = selected.filter(|l| l.partial) else {
            return Vec::new();
        };
        let id = line.id;
        if self.full.as_ref().is_some_and(|f| f.id == id) || self.asked == Some(id) {
            return Vec::new();
        }
        self.asked = Some(id);
        let pool = ctx.db.read.clone();
        vec![Effect::Query(QueryRequest::new(
            "detail",
            async move { Ok(lq::line(&pool, id).await?) },
            LogsData::Detail,
        ))]
    }

    /// The answer of `want`; a message for the note line when there is no line to show.
    pub(super) fn on_data(
        &mut self,
        r: crate::tui::msg::Res<Option<LogLine>>,
    ) -> Option<(String, Role)> {
        match r {
            Ok(Some(full)) => {
                self.full = Some(full);
                None
            }
            // Retention dropped its day since the tail read it.
            Ok(None) => Some(("this line is no longer in the database".into(), Role::Dim)),
            Err(e) => Some((format!("reading the line: {e}"), Role::Error)),
        }
    }

    pub(super) fn draw(
        &self,
        f: &mut Frame,
        area: Rect,
        selected: Option<&LogLine>,
        ctx: &DrawCtx,
    ) {
        if let Some(line) = self.line(selected) {
            let p = Paragraph::new(detail_lines(line, ctx))
                .block(block("details", true, ctx.theme))
                .wrap(Wrap { trim: false });
            crate::tui::widgets::render(f, p, area);
        }
    }
}

impl LogsTab {
    /// The selected line as the detail pane shows it.
    pub(super) fn detail_line(&self) -> Option<&LogLine> {
        self.detail.line(self.selected_line())
    }

    /// The detail pane's read of the whole selected line (the list's view only).
    pub(super) fn want_detail(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        if self.view != View::Tail || !self.detail.shown {
            return Vec::new();
        }
        let selected = self.selected_index().and_then(|i| self.list.get(i));
        self.detail.want(selected, ctx)
    }
}
