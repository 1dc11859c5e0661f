//! The Alerts tab's prompts over the bottom of the view: a one-line note (acknowledge,
//! resolve: one alert or several at once) or the silence editor (its matchers, a duration and
//! a comment, with a live count of the open alerts the matchers match). Enter runs the
//! operator action, Esc closes it.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::Shared;
use crate::alerts::operator::{self, Operator};
use crate::alerts::Matcher;
use crate::model::rule::parse_matchers;
use crate::query::silences;
use crate::sanitize::sanitize;
use crate::tui::line_input::LineInput;
use crate::tui::msg::{AlertsData, Effect, QueryRequest};
use crate::tui::theme::{Role, Theme};
use crate::tui::view::TabCtx;
use crate::tui::widgets::{framed, truncate};
use ratatui::crossterm::event::{KeyCode, KeyEvent};

/// A prompt open over the tab.
pub enum Prompt {
    Ack { ids: Vec<i64>, input: LineInput },
    Resolve { ids: Vec<i64>, input: LineInput },
    Silence(SilenceForm),
}

/// The silence editor's fields, in Tab order.
const FIELDS: [&str; 3] = ["matchers", "duration", "comment"];

/// The silence editor: matchers prefilled from the selection, a duration, a comment.
pub struct SilenceForm {
    pub fields: [LineInput; 3],
    /// The field being edited (an index into `FIELDS`).
    pub focus: usize,
    /// The count of open alerts the matchers match, for the matchers line it was asked for.
    pub preview: Option<(String, usize)>,
    /// Why the matchers line does not parse, or why the preview failed.
    pub problem: Option<String>,
    /// How many alerts were selected when it opened (the preview is compared with it).
    pub selected: usize,
}

impl SilenceForm {
    pub fn new(matchers: &[Matcher], selected: usize) -> SilenceForm {
        let line = matchers
            .iter()
            .map(Matcher::to_editable)
            .collect::<Vec<_>>()
            .join(", ");
        SilenceForm {
            fields: [
                LineInput::prompt(&line, "name=value, name!=value, name=~regex, name!~regex"),
                LineInput::prompt("1h", "e.g. 30m, 2h, 1d"),
                LineInput::prompt("", "why (optional)"),
            ],
            focus: 0,
            preview: None,
            problem: None,
            selected,
        }
    }

    pub fn matchers_text(&self) -> &str {
        self.fields[0].text()
    }

    /// Asks the database how many open alerts the matchers line matches (nothing when it does
    /// not parse: the problem is shown instead).
    pub fn preview_request(&self, ctx: &TabCtx) -> Vec<Effect> {
        let text = self.matchers_text().to_string();
        let Ok(matchers) = parse_matchers(&text) else {
            return Vec::new();
        };
        if matchers.is_empty() {
            return Vec::new();
        }
        let db = ctx.db.clone();
        vec![Effect::Query(QueryRequest::new(
            "silence-preview",
            async move {
                let n = silences::preview_count(&db.read, &matchers).await?;
                Ok((text, n))
            },
            AlertsData::SilencePreview,
        ))]
    }

    /// An editing key: Tab / Down and BackTab / Up move between the fields; a change to the
    /// matchers asks for a new preview.
    fn on_key(&mut self, key: &KeyEvent, ctx: &TabCtx) -> Vec<Effect> {
        match key.code {
            KeyCode::Tab | KeyCode::Down => self.focus = (self.focus + 1) % FIELDS.len(),
            KeyCode::BackTab | KeyCode::Up => {
                self.focus = (self.focus + FIELDS.len() - 1) % FIELDS.len()
            }
            _ => {
                if self.fields[self.focus].input(*key) && self.focus == 0 {
                    self.problem = match parse_matchers(self.matchers_text()) {
                        Ok(m) if m.is_empty() => {
                            Some("a silence needs at least one matcher".into())
                        }
                        Ok(_) => None,
                        Err(e) => Some(e),
                    };
                    return self.preview_request(ctx);
                }
            }
        }
        Vec::new()
    }

    /// A preview answer: kept when it is for the line as it stands.
    pub fn on_preview(&mut self, r: Result<(String, usize), String>) {
        match r {
            Ok((text, n)) if text == self.matchers_text() => self.preview = Some((text, n)),
            Ok(_) => {}
            Err(e) => self.problem = Some(format!("preview: {e}")),
        }
    }

    /// The preview line: how many open alerts the silence would cover.
    fn preview_line(&self) -> (String, Role) {
        if let Some(p) = &self.problem {
            return (p.clone(), Role::Error);
        }
        match &self.preview {
            Some((text, n)) if text == self.matchers_text() => {
                let role = if *n == 0 { Role::Warn } else { Role::Ok };
                let mut s = format!(
                    "matches {n} open alert{} now",
                    if *n == 1 { "" } else { "s" }
                );
                if *n != self.selected {
                    s.push_str(&format!(" ({} selected)", self.selected));
                }
                (s, role)
            }
            _ => ("counting…".into(), Role::Dim),
        }
    }
}

impl Prompt {
    fn title(&self) -> String {
        let what = |ids: &[i64]| match ids {
            [id] => format!("alert {id}"),
            _ => format!("{} alerts", ids.len()),
        };
        match self {
            Prompt::Ack { ids, .. } => {
                format!(
                    "Acknowledge {}: note (Enter to save, Esc to cancel)",
                    what(ids)
                )
            }
            Prompt::Resolve { ids, .. } => {
                format!("Resolve {}: note (Enter to save, Esc to cancel)", what(ids))
            }
            Prompt::Silence(_) => "Silence · Tab next field · Enter create · Esc cancel".into(),
        }
    }

    /// A key while the prompt is open.
    pub fn on_key(sh: &mut Shared, key: &KeyEvent, ctx: &TabCtx) -> Vec<Effect> {
        match key.code {
            KeyCode::Esc => {
                sh.prompt = None;
                Vec::new()
            }
            KeyCode::Enter => Prompt::submit(sh, ctx),
            _ => match sh.prompt.as_mut() {
                Some(Prompt::Ack { input, .. } | Prompt::Resolve { input, .. }) => {
                    input.input(*key);
                    Vec::new()
                }
                Some(Prompt::Silence(form)) => form.on_key(key, ctx),
                None => Vec::new(),
            },
        }
    }

    pub fn submit(sh: &mut Shared, ctx: &TabCtx) -> Vec<Effect> {
        // A silence that would not be valid keeps the editor open with the reason.
        if let Some(Prompt::Silence(form)) = sh.prompt.as_mut() {
            if let Err(e) = silence_parts(form) {
                form.problem = Some(e);
                return Vec::new();
            }
        }
        let Some(prompt) = sh.prompt.take() else {
            return Vec::new();
        };
        let db = ctx.db.clone();
        let cfg = sh.cfg.clone();
        let op = Operator::current();
        match prompt {
            Prompt::Ack { ids, input } => {
                let text = input.text().trim().to_string();
                sh.action(async move {
                    if let [id] = ids[..] {
                        let a = operator::acknowledge(&db, &op, id, Some(&text)).await?;
                        return Ok(format!("alert {} acknowledged", a.id));
                    }
                    let bulk = operator::acknowledge_many(&db, &op, &ids, Some(&text)).await?;
                    Ok(bulk.summary("acknowledged"))
                })
            }
            Prompt::Resolve { ids, input } => {
                let text = input.text().trim().to_string();
                sh.action(async move {
                    if let [id] = ids[..] {
                        let a = operator::resolve(&db, &cfg, &op, id, Some(&text)).await?;
                        return Ok(format!("alert {} resolved", a.id));
                    }
                    let bulk = operator::resolve_many(&db, &cfg, &op, &ids, Some(&text)).await?;
                    Ok(bulk.summary("resolved"))
                })
            }
            Prompt::Silence(form) => {
                let Ok((matchers, d, comment)) = silence_parts(&form) else {
                    return Vec::new();
                };
                sh.action(async move {
                    let id = operator::silence(&db, &op, &matchers, d, &comment).await?;
                    Ok(format!(
                        "silence {id} active for {}",
                        humantime::format_duration(d)
                    ))
                })
            }
        }
    }

    pub fn draw(&self, f: &mut Frame, area: Rect, theme: &Theme) {
        let h = if matches!(self, Prompt::Silence(_)) {
            6
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
        let inner = framed(f, r, &self.title(), true, theme);
        let cursor = Style::default().add_modifier(Modifier::REVERSED);
        match self {
            Prompt::Ack { input, .. } | Prompt::Resolve { input, .. } => {
                crate::tui::widgets::render(f, &input.widget(Style::default(), cursor), inner);
            }
            Prompt::Silence(form) => {
                const LABEL: u16 = 10;
                for (i, (name, input)) in FIELDS.iter().zip(&form.fields).enumerate() {
                    let row = Rect {
                        y: inner.y + i as u16,
                        height: 1,
                        ..inner
                    };
                    if row.y >= inner.bottom() {
                        break;
                    }
                    let focused = i == form.focus;
                    let label_role = if focused { Role::Accent } else { Role::Dim };
                    crate::tui::widgets::render(
                        f,
                        Paragraph::new(Span::styled(format!("{name:<9}"), theme.style(label_role))),
                        Rect {
                            width: LABEL.min(row.width),
                            ..row
                        },
                    );
                    let field = Rect {
                        x: row.x + LABEL.min(row.width),
                        width: row.width.saturating_sub(LABEL),
                        ..row
                    };
                    // Only the focused field shows a cursor.
                    let cur = if focused { cursor } else { Style::default() };
                    crate::tui::widgets::render(f, &input.widget(Style::default(), cur), field);
                }
                let preview = Rect {
                    y: inner.y + FIELDS.len() as u16,
                    height: 1,
                    ..inner
                };
                if preview.y < inner.bottom() {
                    let (text, role) = form.preview_line();
                    crate::tui::widgets::render(
                        f,
                        Paragraph::new(Line::from(Span::styled(
                            truncate(&sanitize(&text), preview.width as usize),
                            theme.style(role),
                        ))),
                        preview,
                    );
                }
            }
        }
    }
}

/// The silence the editor describes: its matchers, duration (empty: 1h) and comment (empty:
/// "from the Alerts tab"), or why it cannot be made.
fn silence_parts(
    form: &SilenceForm,
) -> Result<(Vec<Matcher>, std::time::Duration, String), String> {
    let matchers = parse_matchers(form.matchers_text())?;
    if matchers.is_empty() {
        return Err("a silence needs at least one matcher".into());
    }
    let text = form.fields[1].text().trim();
    let d = match crate::model::rule::duration(if text.is_empty() { "1h" } else { text }) {
        Ok(d) if !d.is_zero() => d,
        _ => return Err(format!("not a duration: {text:?} (e.g. 30m, 2h)")),
    };
    let comment = match form.fields[2].text().trim() {
        "" => "from the Alerts tab".to_string(),
        c => c.to_string(),
    };
    Ok((matchers, d, comment))
}
