//! The Logs tab's two lines around the view: the status line above (LIVE / PAUSED / HISTORY,
//! the counts of the range and filter, the buffer) and the note line below (a filter mistake
//! with its position, a hint, an export's progress, a message, the tail's error).

use super::*;

impl LogsTab {
    pub(super) fn status_line(&self, ctx: &DrawCtx) -> Line<'static> {
        let theme = ctx.theme;
        let mut spans = Vec::new();
        // LIVE means "what you see is happening now": following, and the newest line is
        // recent. Following a stream of old lines (a backfill, an import, a quiet service)
        // says how old the newest line is instead.
        let newest_age = self.list.last().map(|l| ctx.now - l.ts);
        if self.paused {
            let waiting = match self.waiting {
                Some(n) => format!("{} waiting", fmt_count(n as f64)),
                None => "counting".to_string(),
            };
            spans.push(Span::styled(
                format!(" PAUSED ({waiting}) "),
                theme.style(Role::Warn),
            ));
        } else if self.list.newer_left {
            // Back in history, past what the list holds of the newest lines.
            let aside = self.list.waiting_aside();
            let new = if aside > 0 {
                format!("· {} new ", fmt_count(aside as f64))
            } else {
                String::new()
            };
            spans.push(Span::styled(
                format!(" HISTORY {new}(G: newest) "),
                theme.style(Role::Accent),
            ));
        } else if !self.follow {
            spans.push(Span::styled(" SCROLL ", theme.style(Role::Accent)));
        } else if let Some(age) = newest_age.filter(|a| *a > LIVE_WITHIN) {
            spans.push(Span::styled(
                format!(
                    " FOLLOWING · newest line {} ",
                    crate::tui::widgets::human_age(age)
                ),
                theme.style(Role::Accent),
            ));
        } else {
            spans.push(Span::styled(" LIVE ", theme.style(Role::Ok)));
        }
        // Counts over exactly what the list pages through: the filter's lines inside the
        // list's window (the list, these counts and the export use the same condition).
        if let Some(s) = &self.stats.data {
            let total = match &self.count.data {
                Some(c) if c.estimated => format!("~{}", fmt_count(c.lines as f64)),
                Some(c) => fmt_count(c.lines as f64),
                None => fmt_count(s.in_range as f64),
            };
            spans.push(Span::styled(
                format!(
                    " {total} in {} · E{} W{} I{} ",
                    self.range_label(ctx),
                    fmt_count((s.by_level[4] + s.by_level[5]) as f64),
                    fmt_count(s.by_level[3] as f64),
                    fmt_count(s.by_level[2] as f64),
                ),
                theme.style(Role::Dim),
            ));
        }
        if self.list.late() > 0 {
            spans.push(Span::styled(
                format!(" {} late ", fmt_count(self.list.late() as f64)),
                theme.style(Role::Warn),
            ));
        }
        // The filter before the buffer's fill: at 80 columns the line is cut at the right, and
        // what the list is filtered by matters more than how full the ring is.
        if !self.filter_text.is_empty() {
            spans.push(Span::styled(
                format!(" · filter: {}", safe(&self.filter_text)),
                theme.style(Role::Accent),
            ));
        }
        spans.push(Span::styled(
            format!(
                " buffer {}/{}",
                fmt_count(self.list.len() as f64),
                fmt_count(self.list.capacity() as f64)
            ),
            theme.style(Role::Dim),
        ));
        if self.skipped > 0 {
            spans.push(Span::styled(
                format!(" · {} skipped on resume", fmt_count(self.skipped as f64)),
                theme.style(Role::Dim),
            ));
        }
        Line::from(spans)
    }

    pub(super) fn note_line(&self, theme: &Theme) -> Line<'static> {
        if let Some((text, e)) = &self.filter_error {
            // The caret under the mistake needs the text; both are the user's own typing, made
            // safe anyway.
            let before: String = text.chars().take(e.pos).collect();
            let at: String = text.chars().skip(e.pos).take(12).collect();
            return Line::from(vec![
                Span::styled(format!("filter {e}: "), theme.style(Role::Error)),
                Span::styled(safe(&before), theme.style(Role::Dim)),
                Span::styled(format!("▶{}", safe(&at)), theme.style(Role::Error)),
                Span::styled(" (previous filter kept)", theme.style(Role::Dim)),
            ]);
        }
        if let Some(h) = &self.filter_hint {
            return Line::from(Span::styled(safe(h), theme.style(Role::Warn)));
        }
        if let Some(l) = self.export.note(theme) {
            return l;
        }
        if let Some((m, role)) = &self.message {
            return Line::from(Span::styled(safe(m), theme.style(*role)));
        }
        if let Some(e) = &self.tail_error {
            return Line::from(Span::styled(safe(e), theme.style(Role::Error)));
        }
        Line::default()
    }
}
