//! The trace view: one request's spans as a waterfall. A component: its trace id, its spans
//! and cursor, its query, its keys and its draw.

use super::*;

#[derive(Default)]
pub(super) struct TraceView {
    pub(super) id: String,
    trace: Panel<Vec<TraceItem>>,
    trace_cursor: Cursor,
}

impl TraceView {
    /// Shows trace `id` from its first span (nothing of the previous trace stays).
    pub(super) fn open(&mut self, id: String) {
        *self = TraceView {
            id,
            ..TraceView::default()
        };
    }

    pub(super) fn request(&mut self, ctx: &TabCtx) -> Effect {
        let db = ctx.db.clone();
        let id = self.id.clone();
        self.trace.loading = true;
        Effect::Query(QueryRequest::new(
            "trace",
            async move { Ok(crate::query::trace::trace(&db.read, &id, 2000).await?) },
            LogsData::Trace,
        ))
    }

    pub(super) fn on_data(&mut self, r: crate::tui::msg::Res<Vec<TraceItem>>) {
        self.trace.set(r);
        self.trace_cursor
            .clamp(self.trace.data.as_ref().map_or(0, Vec::len));
    }

    /// Navigation; false for Back (the tab returns to the list).
    pub(super) fn on_action(&mut self, a: Action) -> bool {
        if a == Action::Back {
            return false;
        }
        let n = self.trace.data.as_ref().map_or(0, Vec::len);
        self.trace_cursor.apply(a, n, 10);
        true
    }

    /// `y`: the trace id.
    pub(super) fn copy_text(&self) -> Option<(String, String)> {
        let id = self.id.clone();
        (!id.is_empty()).then(|| (id.clone(), format!("trace id {}", safe(&id))))
    }

    pub(super) fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let b = block(&format!("trace {}", safe(&self.id)), true, theme);
        let inner = b.inner(area);
        crate::tui::widgets::render(f, b, area);
        let Some(items) = &self.trace.data else {
            let (t, r) = self
                .trace
                .placeholder()
                .unwrap_or((String::new(), Role::Dim));
            draw_note(f, inner, &t, r, theme);
            return;
        };
        if items.is_empty() {
            draw_note(f, inner, "nothing carries this trace id", Role::Dim, theme);
            return;
        }
        let (bars, span) = crate::query::trace::waterfall(items);
        let bar_w = (inner.width as usize / 3).max(10);
        let text_w = (inner.width as usize).saturating_sub(bar_w + 8 + 8 + 9 + 4);
        let height = inner.height as usize;
        let top = self
            .trace_cursor
            .selected
            .saturating_sub(height.saturating_sub(1));
        let lines: Vec<Line> = items
            .iter()
            .zip(&bars)
            .enumerate()
            .skip(top)
            .take(height)
            .map(|(i, (it, bar))| {
                let scale = if span > 0.0 { bar_w as f64 / span } else { 0.0 };
                let start = ((bar.offset_ms * scale) as usize).min(bar_w.saturating_sub(1));
                let len = ((bar.duration_ms * scale).ceil() as usize).clamp(1, bar_w - start);
                let mut wf = " ".repeat(start);
                wf.push_str(&(if bar.duration_ms > 0.0 { "█" } else { "│" }).repeat(len));
                wf.push_str(&" ".repeat(bar_w - start - len));
                let role = match (it.level, it.status) {
                    _ if it.failed => Role::Error,
                    (Some(l), _) => level_role(Level::from_i16(l)),
                    (_, Some(s)) if s >= 500 => Role::Error,
                    (_, Some(s)) if s >= 400 => Role::Warn,
                    _ => Role::ChartPrimary,
                };
                let sel = i == self.trace_cursor.selected;
                Line::from(vec![
                    Span::styled(
                        format!("{:>8} ", fmt_ms(bar.offset_ms)),
                        row_style(sel, theme),
                    ),
                    Span::styled(wf, theme.style(role)),
                    Span::styled(
                        format!(" {:>7} ", it.duration_ms.map(fmt_ms).unwrap_or_default()),
                        row_style(sel, theme),
                    ),
                    Span::styled(format!("{:<8}", it.kind.name()), theme.style(Role::Dim)),
                    Span::styled(
                        truncate(
                            // Spans indent under their parent (two columns a level).
                            &format!(
                                "{:indent$}{} {}",
                                "",
                                safe(&it.service),
                                safe(&it.summary),
                                indent = 2 * usize::from(it.depth)
                            ),
                            text_w,
                        ),
                        row_style(sel, theme),
                    ),
                ])
            })
            .collect();
        crate::tui::widgets::render(f, Paragraph::new(lines), inner);
    }
}
