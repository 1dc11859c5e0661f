//! The detail pane: the whole selected line (read when the tail read it partly) and how it is
//! drawn.

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
            format!("{} ", Level::from_i16(l.level).name()),
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

impl LogsTab {
    /// The selected line as the detail pane shows it: whole once read, else as the tail read
    /// it (`partial`).
    pub(super) fn detail_line(&self) -> Option<&LogLine> {
        let line = self.selected_line()?;
        match &self.full {
            Some(full) if full.id == line.id => Some(full),
            _ => Some(line),
        }
    }

    /// Reads the whole selected line when the detail pane shows a line the tail read partly.
    /// While following a stream with the pane open this asks once per new selection; the
    /// runner keeps one read in flight and the newest request.
    pub(super) fn want_detail(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        if !self.detail || self.view != View::Tail {
            return Vec::new();
        }
        let Some(line) = self.selected_line().filter(|l| l.partial) else {
            return Vec::new();
        };
        let id = line.id;
        if self.full.as_ref().is_some_and(|f| f.id == id) || self.full_asked == Some(id) {
            return Vec::new();
        }
        self.full_asked = Some(id);
        let pool = ctx.db.read.clone();
        vec![Effect::Query(QueryRequest::new(
            "detail",
            async move { Ok(lq::line(&pool, id).await?) },
            LogsData::Detail,
        ))]
    }
}
