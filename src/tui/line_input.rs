//! The one line-input widget of the TUI: the `/` filter line, the `:` command line and the
//! Alerts tab's prompts (a note, a duration). A one-line ratatui-textarea (emacs/readline keys:
//! Ctrl-A/E home/end, Ctrl-W and Alt-Backspace delete a word, Ctrl-K to the end, Ctrl-R redo,
//! Alt-B/F by word; Ctrl-U undoes in the filter line and deletes to the start in the command
//! line, as each did before they shared this widget). Whoever owns it keeps Enter, Esc, Ctrl-C
//! (and, for the filter, Up/Down through its history) for itself; this type keeps the text one
//! safe line whatever is typed or pasted.
//!
//! The filter line opens with the applied filter selected (`reopen`), as a browser's address
//! bar or k9s's filter: typing replaces it, a cursor key keeps it for editing. It remembers the
//! filter that was applied when it opened, so Esc puts that one back (`original`).

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::Style;
use ratatui_textarea::{CursorMove, TextArea};

#[derive(Debug, Clone)]
pub struct LineInput {
    // Boxed: a TextArea is large and the shell's `Mode` holds one only while a line is open.
    area: Box<TextArea<'static>>,
    /// The filter applied when the line opened: what Esc restores.
    original: String,
    /// Ctrl-U deletes back to the start of the line (the command line) instead of undoing.
    ctrl_u_kills: bool,
}

impl Default for LineInput {
    fn default() -> Self {
        LineInput::with_text("")
    }
}

impl PartialEq for LineInput {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text() && self.area.cursor() == other.area.cursor()
    }
}

impl LineInput {
    pub fn with_text(text: &str) -> LineInput {
        let mut area = TextArea::new(vec![one_line(text)]);
        // One row: no underline on "the current line".
        area.set_cursor_line_style(Style::default());
        area.move_cursor(CursorMove::End);
        LineInput {
            area: Box::new(area),
            original: String::new(),
            ctrl_u_kills: false,
        }
    }

    /// The `:` command line: empty, Ctrl-U deletes to the start.
    pub fn command() -> LineInput {
        LineInput {
            ctrl_u_kills: true,
            ..LineInput::default()
        }
    }

    /// A prompt's line: `text` to start from, `placeholder` shown while it is empty.
    pub fn prompt(text: &str, placeholder: &str) -> LineInput {
        let mut l = LineInput::with_text(text);
        l.area.set_placeholder_text(placeholder.to_string());
        l
    }

    /// The line as `/` opens it: the applied filter, all selected, so the first typed
    /// character replaces it (Backspace empties it); a cursor key keeps it for editing.
    pub fn reopen(applied: &str) -> LineInput {
        let mut f = LineInput::with_text(applied);
        if !f.text().is_empty() {
            f.area.select_all();
        }
        f.original = f.text().to_string();
        f
    }

    /// The filter that was applied when the line opened.
    pub fn original(&self) -> &str {
        &self.original
    }

    /// Replaces the text (a history entry), cursor at the end, nothing selected.
    pub fn set_text(&mut self, text: &str) {
        let original = std::mem::take(&mut self.original);
        let kills = self.ctrl_u_kills;
        let placeholder = self.area.placeholder_text().to_string();
        *self = LineInput::with_text(text);
        self.original = original;
        self.ctrl_u_kills = kills;
        if !placeholder.is_empty() {
            self.area.set_placeholder_text(placeholder);
        }
    }

    /// True while the text is selected (just reopened): typing replaces it.
    pub fn is_selected(&self) -> bool {
        self.area.is_selecting()
    }

    pub fn text(&self) -> &str {
        self.area.lines().first().map(String::as_str).unwrap_or("")
    }

    /// Cursor position in characters.
    pub fn cursor(&self) -> usize {
        self.area.cursor().1
    }

    /// The widget, styled for drawing (`draw` is pure: the style is applied to a copy).
    pub fn widget(&self, text: Style, cursor: Style) -> TextArea<'static> {
        let mut a = (*self.area).clone();
        a.set_style(text);
        a.set_cursor_style(cursor);
        a
    }

    /// An editing key; true when the text changed. Keys that would add a line are ignored.
    pub fn input(&mut self, key: KeyEvent) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Enter | KeyCode::Tab | KeyCode::BackTab => return false,
            KeyCode::Char('m' | 'j') if ctrl => return false,
            KeyCode::Char(c) if crate::sanitize::is_unsafe(c) => return false,
            KeyCode::Char('u') if ctrl && self.ctrl_u_kills => {
                let before = self.text().to_string();
                self.area.delete_line_by_head();
                return self.text() != before;
            }
            _ => {}
        }
        let before = self.text().to_string();
        self.area.input(key);
        self.keep_one_line();
        self.text() != before
    }

    /// Pasted text, made one safe line.
    pub fn insert(&mut self, s: &str) {
        self.area.insert_str(one_line(s));
        self.keep_one_line();
    }

    fn keep_one_line(&mut self) {
        if self.area.lines().len() > 1 {
            let joined = self.area.lines().join(" ");
            self.set_text(&joined);
        }
    }
}

/// Newlines and tabs become spaces; escapes and other unsafe characters are dropped.
fn one_line(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            '\n' | '\r' | '\t' => Some(' '),
            c if crate::sanitize::is_unsafe(c) => None,
            c => Some(c),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn types_edits_and_stays_one_line() {
        let mut f = LineInput::default();
        for c in "level:error api".chars() {
            assert!(f.input(key(KeyCode::Char(c), KeyModifiers::NONE)));
        }
        assert_eq!(f.text(), "level:error api");
        // Ctrl-W deletes the last word; Ctrl-A / Ctrl-E move home / end.
        assert!(f.input(key(KeyCode::Char('w'), KeyModifiers::CONTROL)));
        assert_eq!(f.text(), "level:error ");
        f.input(key(KeyCode::Char('a'), KeyModifiers::CONTROL));
        assert_eq!(f.cursor(), 0);
        f.input(key(KeyCode::Char('-'), KeyModifiers::NONE));
        assert_eq!(f.text(), "-level:error ");
        f.input(key(KeyCode::Char('e'), KeyModifiers::CONTROL));
        assert_eq!(f.cursor(), f.text().chars().count());
        // Nothing adds a line, nothing unsafe gets in.
        assert!(!f.input(key(KeyCode::Enter, KeyModifiers::NONE)));
        assert!(!f.input(key(KeyCode::Char('m'), KeyModifiers::CONTROL)));
        assert!(!f.input(key(KeyCode::Char('\u{1b}'), KeyModifiers::NONE)));
        f.insert("a\nb\u{1b}[2J\tc");
        assert_eq!(f.text(), "-level:error a b[2J c");
        assert_eq!(f.area.lines().len(), 1);
    }

    #[test]
    fn the_command_line_deletes_to_the_start_on_ctrl_u() {
        let mut c = LineInput::command();
        for ch in "range 24h".chars() {
            c.input(key(KeyCode::Char(ch), KeyModifiers::NONE));
        }
        c.input(key(KeyCode::Left, KeyModifiers::NONE));
        c.input(key(KeyCode::Left, KeyModifiers::NONE));
        assert!(c.input(key(KeyCode::Char('u'), KeyModifiers::CONTROL)));
        assert_eq!((c.text(), c.cursor()), ("4h", 0));
        // The filter line keeps the widget's undo on Ctrl-U.
        let mut f = LineInput::default();
        f.input(key(KeyCode::Char('x'), KeyModifiers::NONE));
        f.input(key(KeyCode::Char('u'), KeyModifiers::CONTROL));
        assert_eq!(f.text(), "");
        // A prompt keeps its placeholder when its text is replaced.
        let mut p = LineInput::prompt("1h", "duration");
        p.set_text("");
        assert_eq!(p.area.placeholder_text(), "duration");
    }

    #[test]
    fn reopened_the_applied_filter_is_selected_and_typing_replaces_it() {
        let mut f = LineInput::reopen("level:error");
        assert!(f.is_selected());
        assert_eq!(f.original(), "level:error");
        assert!(f.input(key(KeyCode::Char('l'), KeyModifiers::NONE)));
        assert_eq!(f.text(), "l");
        // A cursor key keeps the text for editing instead.
        let mut f = LineInput::reopen("level:error");
        f.input(key(KeyCode::End, KeyModifiers::NONE));
        assert!(!f.is_selected());
        f.input(key(KeyCode::Char('+'), KeyModifiers::NONE));
        assert_eq!(f.text(), "level:error+");
        // Ctrl-A moves home without deleting; Backspace on the selection empties the line.
        let mut f = LineInput::reopen("a b");
        f.input(key(KeyCode::Char('a'), KeyModifiers::CONTROL));
        assert_eq!((f.text(), f.cursor()), ("a b", 0));
        let mut f = LineInput::reopen("a b");
        assert!(f.input(key(KeyCode::Backspace, KeyModifiers::NONE)));
        assert_eq!(f.text(), "");
        // History entries keep what Esc restores.
        f.set_text("service:api");
        assert_eq!((f.text(), f.original()), ("service:api", "a b"));
    }
}
