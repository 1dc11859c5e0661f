//! What a tab is: the `TabView` trait the shell drives, what a tab may read while handling an
//! event (`TabCtx`) or drawing (`DrawCtx`), and the small kit every tab uses (a periodic
//! `Refresher`, a table `Cursor`, a `Panel` of data that keeps the last good value beside the
//! last error). Apart from `tabs/`, so the tabs and their registry import it and it imports
//! none of them.

use chrono::{DateTime, Duration, Utc};
use ratatui::crossterm::event::KeyEvent;
use ratatui::layout::Rect;
use ratatui::Frame;

use crate::config::Config;
use crate::db::Db;
use crate::model::TimeRange;
use crate::tui::keymap::Action;
use crate::tui::msg::{Data, Effect, Jump, Res, Sender, Tab};
use crate::tui::theme::Theme;

/// The frame pace while lines stream by faster than the eye reads: 20 frames a second keeps
/// a line's way from the database to the screen well under the 50 ms median (a line waits half
/// a frame on average) and draws a third fewer frames than 30 a second.
pub const FRAME_WHILE_STREAMING: std::time::Duration = std::time::Duration::from_millis(50);

/// What a tab may read while handling an event: the database handle (to build query futures),
/// the config and the shared view settings.
pub struct TabCtx<'a> {
    pub db: &'a Db,
    pub cfg: &'a Config,
    pub range: TimeRange,
    pub now: DateTime<Utc>,
    /// This process's worker instance id (to mark what we hold).
    pub instance: &'a str,
    /// The main loop's event channel (None in tests that drive `update` by hand).
    pub events: Option<&'a Sender>,
}

/// What a tab may read while drawing.
pub struct DrawCtx<'a> {
    pub theme: &'a Theme,
    pub now: DateTime<Utc>,
    pub range: TimeRange,
    pub local_clock: bool,
    pub instance: &'a str,
}

impl DrawCtx<'_> {
    /// A timestamp as the clock setting wants it.
    pub fn fmt_time(&self, t: DateTime<Utc>, fmt: &str) -> String {
        if self.local_clock {
            t.with_timezone(&chrono::Local).format(fmt).to_string()
        } else {
            t.format(fmt).to_string()
        }
    }

    /// "12s ago", "3m ago", "2h ago", "4d ago".
    pub fn ago(&self, t: DateTime<Utc>) -> String {
        crate::tui::widgets::human_age(self.now - t)
    }
}

/// One key binding of a tab, for the help overlay and the status-bar hints.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub keys: &'static str,
    pub help: &'static str,
}

/// A tab: its state plus how it reacts. Everything but `draw` may change state and return
/// effects (queries to run); `draw` is pure and must never wait on I/O.
pub trait TabView: Send {
    fn id(&self) -> Tab;

    /// Requests all of the tab's data: when the tab is shown, on `r`, when the time range
    /// changes and when the database comes back.
    fn refresh(&mut self, ctx: &TabCtx) -> Vec<Effect>;

    /// Called every second while the tab is visible and the database reachable (periodic
    /// refresh, see `Refresher`).
    /// The tab's periodic refresh schedule, if it has one: the default `tick` refreshes the tab
    /// whenever it is due.
    fn refresher(&mut self) -> Option<&mut Refresher> {
        None
    }

    fn tick(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        if self.refresher().is_some_and(|r| r.due(ctx.now)) {
            self.refresh(ctx)
        } else {
            Vec::new()
        }
    }

    /// Navigation actions (up/down/page/top/bottom/left/right/select/back).
    fn on_action(&mut self, action: Action, ctx: &TabCtx) -> Vec<Effect>;

    /// Keys the shell did not bind; return None if the tab does not use the key either.
    fn on_key(&mut self, _key: &KeyEvent, _ctx: &TabCtx) -> Option<Vec<Effect>> {
        None
    }

    /// A result of one of the tab's queries (its variant of `Data` says which panel).
    fn on_data(&mut self, data: Data, ctx: &TabCtx) -> Vec<Effect>;

    /// The `/` filter text changed (called on every keystroke and on Enter; empty clears).
    fn on_filter(&mut self, _text: &str, _ctx: &TabCtx) -> Vec<Effect> {
        Vec::new()
    }

    /// Enter in the filter line. Tabs whose filter costs a query per change (the Logs tab)
    /// validate in `on_filter` and apply here; by default it is one more `on_filter`.
    fn on_filter_submit(&mut self, text: &str, ctx: &TabCtx) -> Vec<Effect> {
        self.on_filter(text, ctx)
    }

    /// Another tab sent the operator here (`Effect::Jump`): take its filter (the shell has
    /// already switched tabs and refreshes this one right after).
    fn on_jump(&mut self, jump: &Jump, ctx: &TabCtx) -> Vec<Effect> {
        self.on_filter_submit(&jump.filter, ctx)
    }

    /// The current filter, shown in the status line.
    fn filter(&self) -> &str {
        ""
    }

    /// A `:` command the shell does not know (`name` is the first word). None: unknown.
    fn on_command(&mut self, _name: &str, _args: &str, _ctx: &TabCtx) -> Option<Vec<Effect>> {
        None
    }

    /// `Event::Wake` for this tab: a background source of its own has news.
    fn on_wake(&mut self, _ctx: &TabCtx) -> Vec<Effect> {
        Vec::new()
    }

    /// While Some, frames this tab's data asks for are drawn at most this often (lines streaming
    /// faster than anyone reads them); keys still draw at once.
    fn paced_frame(&self) -> Option<std::time::Duration> {
        None
    }

    /// True while the tab edits text (a note, a duration): every key then goes to `on_key`
    /// first, so typing `q` or `3` does not quit or switch tabs. The tab handles Esc itself.
    fn captures_input(&self) -> bool {
        false
    }

    /// The tab's own keys (beyond the shell's), for help and hints.
    fn bindings(&self) -> Vec<Binding> {
        Vec::new()
    }

    /// The `keys` of those bindings that write (operator actions): help and hints mark them
    /// unavailable when the connection is read-only (`Db::access`).
    fn operator_keys(&self) -> &'static [&'static str] {
        &[]
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx);
}

/// Periodic refresh bookkeeping for a tab: `due` is true once per `every`.
#[derive(Debug, Clone)]
pub struct Refresher {
    every: Duration,
    next: Option<DateTime<Utc>>,
}

impl Refresher {
    pub fn every(secs: i64) -> Refresher {
        Refresher {
            every: Duration::seconds(secs),
            next: None,
        }
    }

    /// Marks a refresh made now.
    pub fn done(&mut self, now: DateTime<Utc>) {
        self.next = Some(now + self.every);
    }

    pub fn due(&self, now: DateTime<Utc>) -> bool {
        self.next.is_none_or(|n| now >= n)
    }
}

/// A table cursor: selected row and scroll offset, clamped to the row count.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cursor {
    pub selected: usize,
}

impl Cursor {
    /// Applies a navigation action for a list of `len` rows showing `page` rows at once.
    /// Returns whether the action was a cursor move.
    pub fn apply(&mut self, action: Action, len: usize, page: usize) -> bool {
        let last = len.saturating_sub(1);
        let page = page.max(1);
        self.selected = match action {
            Action::Up => self.selected.saturating_sub(1),
            Action::Down => (self.selected + 1).min(last),
            Action::PageUp => self.selected.saturating_sub(page),
            Action::PageDown => (self.selected + page).min(last),
            Action::Top => 0,
            Action::Bottom => last,
            _ => return false,
        };
        true
    }

    pub fn clamp(&mut self, len: usize) {
        self.selected = self.selected.min(len.saturating_sub(1));
    }

    /// After the rows changed under the cursor (a refresh, a re-sort, a new filter): selects
    /// the row that holds `before`, the item that was selected, so an action applies to the
    /// item the operator was looking at, not to whatever moved into its row number. When
    /// that item is gone the row number is kept (clamped to the new rows).
    pub fn follow<K: PartialEq>(&mut self, before: Option<&K>, keys: impl IntoIterator<Item = K>) {
        let mut len = 0;
        let mut found = None;
        for (i, k) in keys.into_iter().enumerate() {
            len = i + 1;
            if found.is_none() && before.is_some_and(|b| *b == k) {
                found = Some(i);
            }
        }
        match found {
            Some(i) => self.selected = i,
            None => self.clamp(len),
        }
    }
}

/// The data of one panel: the last good value, the last error, whether a query is running.
/// A failed refresh keeps the previous data on screen and shows the error beside it.
#[derive(Debug, Clone)]
pub struct Panel<T> {
    pub data: Option<T>,
    pub error: Option<String>,
    pub loading: bool,
}

impl<T> Default for Panel<T> {
    fn default() -> Self {
        Panel {
            data: None,
            error: None,
            loading: false,
        }
    }
}

impl<T: 'static> Panel<T> {
    /// Takes a query result meant for this panel.
    pub fn set(&mut self, res: Res<T>) {
        self.loading = false;
        match res {
            Ok(v) => {
                self.data = Some(v);
                self.error = None;
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// What a table panel shows instead of its rows: "loading…" or the error (see
    /// `placeholder`), else `empty` when there is nothing to list; None: show the rows.
    pub fn note(
        &self,
        nothing: bool,
        empty: (&str, crate::tui::theme::Role),
    ) -> Option<(String, crate::tui::theme::Role)> {
        self.placeholder()
            .or_else(|| nothing.then(|| (empty.0.to_string(), empty.1)))
    }

    /// "loading…", the error, or None when there is data to show.
    pub fn placeholder(&self) -> Option<(String, crate::tui::theme::Role)> {
        use crate::tui::theme::Role;
        match (&self.data, &self.error) {
            (None, Some(e)) => Some((format!("error: {e}"), Role::Error)),
            (None, None) => Some(("loading…".into(), Role::Dim)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_follows_its_item_across_a_resort() {
        let mut c = Cursor { selected: 1 };
        // "b" was selected at row 1; the refresh re-sorted it to row 3.
        c.follow(Some(&"b"), ["d", "a", "c", "b"]);
        assert_eq!(c.selected, 3);
        // The item is gone: the row number stays, clamped to the rows there are.
        c.follow(Some(&"b"), ["d", "a"]);
        assert_eq!(c.selected, 1);
        c.follow(None::<&&str>, Vec::<&str>::new());
        assert_eq!(c.selected, 0);
    }
}
