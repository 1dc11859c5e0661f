//! Application state and `update`, the only place where state changes. `update` takes one event
//! and returns effects (queries to run, quit) for the main loop to carry out; it never awaits.
//!
//! Long because `update` is the one mutator: every shell key, command, jump and prompt lands
//! here; what a tab does with its own keys lives in `tabs/`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ratatui::crossterm::event::{
    Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent,
    MouseEventKind,
};

use crate::config::Config;
use crate::db::Db;
use crate::model::TimeRange;
use crate::query::status::HeaderStatus;
use crate::tui::command::{self, Command};
use crate::tui::keymap::{Action, Keymap};
use crate::tui::line_input::LineInput;
use crate::tui::msg::{Event, Sender};
// Effects and jumps are part of the shell's interface; they live in `msg` with the rest.
use crate::tui::msg::{Data, Owner, QueryDone, QueryRequest, ShellData, Tab};
pub use crate::tui::msg::{Effect, Jump};
use crate::tui::tabs;
use crate::tui::theme::Theme;
use crate::tui::view::{Refresher, TabCtx, TabView};

/// A one-line note about background work of the dashboard's own process (the demo's
/// backfill: "figures are partial until it ends"), read on every tick and shown as a banner
/// while it returns something.
#[derive(Clone)]
pub struct Background(pub Arc<dyn Fn() -> Option<String> + Send + Sync>);

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Background(..)")
    }
}

/// Database connection state, from the background ping.
#[derive(Debug, Clone, PartialEq)]
pub enum Conn {
    Connecting,
    Up { rtt: Duration },
    Down { since: DateTime<Utc>, error: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Normal,
    Help { scroll: u16 },
    Command(LineInput),
    Filter(LineInput),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub text: String,
    pub error: bool,
    pub at: DateTime<Utc>,
}

/// Things `App::new` needs besides the database and config.
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    pub no_color: bool,
    pub instance: String,
    /// Where user themes live (`<dir>/themes/*.toml`); None: built-in themes only.
    pub config_dir: Option<PathBuf>,
}

/// Handles every tab may use to build its queries.
pub struct Env {
    pub db: Db,
    pub cfg: Arc<Config>,
    pub instance: String,
    /// The main loop's event channel, for tabs whose background sources wake them
    /// (`Event::Wake`). None where no loop runs (render tests drive `update` by hand).
    pub events: Option<Sender>,
}

pub struct App {
    pub env: Env,
    pub tabs: Vec<Box<dyn TabView>>,
    pub active: usize,
    pub theme: Theme,
    pub no_color: bool,
    pub config_dir: Option<PathBuf>,
    pub keymap: Keymap,
    pub range: TimeRange,
    pub local_clock: bool,
    pub now: DateTime<Utc>,
    pub conn: Conn,
    pub header: Option<HeaderStatus>,
    header_refresh: Refresher,
    pub mode: Mode,
    /// Filters submitted with Enter, oldest first (Up/Down in the filter line walk them).
    pub filter_history: Vec<String>,
    /// Where Up/Down stand in `filter_history` while the filter line is open.
    filter_history_pos: Option<usize>,
    pub message: Option<Message>,
    pub quit: bool,
    /// Something visible changed since the last draw.
    pub dirty: bool,
    /// The operator typed, clicked or resized since the last draw: the next frame is drawn at
    /// once, whatever the frame pace.
    pub urgent: bool,
    /// Screen size as last seen (for mouse hit tests and page sizes).
    pub size: (u16, u16),
    /// Where the background note comes from, and what it said at the last tick.
    pub background: Option<Background>,
    pub background_note: Option<String>,
}

/// Builds the tab context from the app's fields (a macro so the borrow of `env` stays disjoint
/// from the borrow of the tab being updated).
macro_rules! ctx {
    ($app:expr) => {
        TabCtx {
            db: &$app.env.db,
            cfg: &$app.env.cfg,
            range: $app.range,
            now: $app.now,
            instance: &$app.env.instance,
            events: $app.env.events.as_ref(),
        }
    };
}

impl App {
    pub fn new(db: Db, cfg: Arc<Config>, opts: AppOptions) -> App {
        let (keymap, mut problems) = Keymap::new(&cfg.keys.0);
        let no_color = opts.no_color;
        let theme = if no_color {
            Theme::no_color()
        } else {
            match Theme::load(&cfg.ui.theme, opts.config_dir.as_deref()) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("theme: {e}; using dark"));
                    Theme::builtin("dark").unwrap_or_else(Theme::no_color)
                }
            }
        };
        let now = Utc::now();
        let message = (!problems.is_empty()).then(|| Message {
            text: problems.join("; "),
            error: true,
            at: now,
        });
        App {
            tabs: tabs::registered(&cfg),
            active: 0,
            theme,
            no_color,
            config_dir: opts.config_dir,
            keymap,
            range: TimeRange::parse(&cfg.ui.range).unwrap_or(TimeRange::H1),
            local_clock: cfg.ui.clock == "local",
            now,
            conn: Conn::Connecting,
            header: None,
            header_refresh: Refresher::every(5),
            mode: Mode::Normal,
            message,
            filter_history: Vec::new(),
            filter_history_pos: None,
            quit: false,
            dirty: true,
            urgent: false,
            background: None,
            background_note: None,
            size: (80, 24),
            env: Env {
                db,
                cfg,
                instance: opts.instance,
                events: None,
            },
        }
    }

    /// Effects to run at start: the first tab's data and the header.
    pub fn start(&mut self) -> Vec<Effect> {
        let mut fx = self.refresh_header();
        fx.extend(self.refresh_active());
        fx
    }

    pub fn active_tab(&self) -> Option<&dyn TabView> {
        self.tabs.get(self.active).map(|t| t.as_ref())
    }

    pub fn active_id(&self) -> Option<Tab> {
        self.active_tab().map(|t| t.id())
    }

    /// The shortest time between two frames that only data asked for: `base` (one frame at
    /// `ui.max_fps`), longer while the active tab streams faster than anyone reads.
    pub fn frame_interval(&self, base: Duration) -> Duration {
        self.active_tab()
            .and_then(|t| t.paced_frame())
            .map_or(base, |p| p.max(base))
    }

    pub fn online(&self) -> bool {
        !matches!(self.conn, Conn::Down { .. })
    }

    pub fn say(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: false,
            at: self.now,
        });
        self.dirty = true;
    }

    pub fn error(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: true,
            at: self.now,
        });
        self.dirty = true;
    }

    fn refresh_active(&mut self) -> Vec<Effect> {
        let ctx = ctx!(self);
        match self.tabs.get_mut(self.active) {
            Some(tab) => tab.refresh(&ctx),
            None => Vec::new(),
        }
    }

    fn refresh_header(&mut self) -> Vec<Effect> {
        self.header_refresh.done(self.now);
        let db = self.env.db.clone();
        let instance = self.env.instance.clone();
        vec![Effect::Query(QueryRequest::new(
            "header",
            async move { crate::query::status::header(&db, &instance).await },
            ShellData::Header,
        ))]
    }

    fn switch_to(&mut self, tab: Tab) -> Vec<Effect> {
        match self.tabs.iter().position(|t| t.id() == tab) {
            Some(i) if i == self.active => Vec::new(),
            Some(i) => {
                self.active = i;
                self.dirty = true;
                if let Mode::Filter(_) = self.mode {
                    self.mode = Mode::Normal;
                }
                if self.online() {
                    self.refresh_active()
                } else {
                    Vec::new()
                }
            }
            None => {
                self.error(format!("the {} tab is not part of this build", tab.title()));
                Vec::new()
            }
        }
    }

    /// Carries out a cross-tab jump (see `Jump`).
    fn jump(&mut self, jump: Jump) -> Vec<Effect> {
        let Some(target) = jump.tab else {
            return Vec::new();
        };
        let Some(i) = self.tabs.iter().position(|t| t.id() == target) else {
            self.error(format!(
                "the {} tab is not part of this build",
                target.title()
            ));
            return Vec::new();
        };
        if let Some(r) = jump.range {
            self.range = r;
        }
        self.mode = Mode::Normal;
        self.remember_filter(&jump.filter);
        self.active = i;
        self.dirty = true;
        let ctx = ctx!(self);
        // The target takes its filter before its refresh, so it reads the new scope only once.
        let mut fx = self.tabs[i].on_jump(&jump, &ctx);
        if self.online() {
            fx.extend(self.refresh_active());
        }
        if !jump.note.is_empty() {
            self.say(jump.note);
        }
        fx
    }

    fn cycle_tab(&mut self, forward: bool) -> Vec<Effect> {
        if self.tabs.is_empty() {
            return Vec::new();
        }
        let n = self.tabs.len();
        let i = if forward {
            (self.active + 1) % n
        } else {
            (self.active + n - 1) % n
        };
        let id = self.tabs[i].id();
        self.switch_to(id)
    }

    fn set_range(&mut self, range: TimeRange) -> Vec<Effect> {
        if range == self.range {
            return Vec::new();
        }
        self.range = range;
        self.say(format!("time range {}", range.label()));
        self.refresh_active()
    }

    fn run_command(&mut self, line: &str) -> Vec<Effect> {
        match command::parse(line) {
            Err(e) => {
                self.error(e);
                Vec::new()
            }
            Ok(Command::Quit) => {
                self.quit = true;
                vec![Effect::Quit]
            }
            Ok(Command::Range(r)) => self.set_range(r),
            Ok(Command::Theme(name)) => {
                if self.no_color {
                    self.error("colours are off (NO_COLOR / --no-color)");
                } else {
                    match Theme::load(&name, self.config_dir.as_deref()) {
                        Ok(t) => {
                            self.say(format!("theme {}", crate::sanitize::sanitize(&t.name)));
                            self.theme = t;
                        }
                        Err(e) => self.error(crate::sanitize::sanitize(&e).into_owned()),
                    }
                }
                Vec::new()
            }
            Ok(Command::Clock { local }) => {
                self.local_clock = local;
                self.say(if local {
                    "clock: local time"
                } else {
                    "clock: UTC"
                });
                Vec::new()
            }
            Ok(Command::Tab(t)) => self.switch_to(t),
            Ok(Command::Refresh) => self.refresh_now(),
            Ok(Command::Help) => {
                self.mode = Mode::Help { scroll: 0 };
                Vec::new()
            }
            Ok(Command::Other { name, args }) => {
                let ctx = ctx!(self);
                let handled = self
                    .tabs
                    .get_mut(self.active)
                    .and_then(|t| t.on_command(&name, &args, &ctx));
                match handled {
                    Some(fx) => fx,
                    None => {
                        self.error(format!(
                            "unknown command :{} (see ? for help)",
                            crate::sanitize::sanitize(&name)
                        ));
                        Vec::new()
                    }
                }
            }
        }
    }

    fn refresh_now(&mut self) -> Vec<Effect> {
        let mut fx = self.refresh_header();
        fx.extend(self.refresh_active());
        self.say("refreshing");
        fx
    }

    fn global_action(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Quit => {
                self.quit = true;
                vec![Effect::Quit]
            }
            Action::NextTab => self.cycle_tab(true),
            Action::PrevTab => self.cycle_tab(false),
            Action::GoTab(n) => match Tab::ALL.iter().find(|t| t.number() == n) {
                Some(t) => self.switch_to(*t),
                None => Vec::new(),
            },
            Action::Filter => {
                self.filter_history_pos = None;
                let current = self.active_tab().map(|t| t.filter().to_string());
                self.mode = Mode::Filter(LineInput::reopen(&current.unwrap_or_default()));
                Vec::new()
            }
            Action::Command => {
                self.mode = Mode::Command(LineInput::command());
                Vec::new()
            }
            Action::Help => {
                self.mode = Mode::Help { scroll: 0 };
                Vec::new()
            }
            Action::Refresh => self.refresh_now(),
            Action::ToggleClock => {
                let local = !self.local_clock;
                self.run_command(if local { "local" } else { "utc" })
            }
            Action::RangeNext => {
                let i = TimeRange::ALL.iter().position(|r| *r == self.range);
                match i.and_then(|i| TimeRange::ALL.get(i + 1)) {
                    Some(r) => self.set_range(*r),
                    None => Vec::new(),
                }
            }
            Action::RangePrev => {
                let i = TimeRange::ALL.iter().position(|r| *r == self.range);
                match i.filter(|i| *i > 0).map(|i| TimeRange::ALL[i - 1]) {
                    Some(r) => self.set_range(r),
                    None => Vec::new(),
                }
            }
            Action::Redraw => vec![Effect::ClearScreen],
            _ => Vec::new(),
        }
    }

    fn tab_action(&mut self, action: Action) -> Vec<Effect> {
        let ctx = ctx!(self);
        match self.tabs.get_mut(self.active) {
            Some(t) => t.on_action(action, &ctx),
            None => Vec::new(),
        }
    }

    fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        self.dirty = true;
        // An error stays until the operator has seen it and pressed a key; a key that fails
        // again sets it anew below.
        if self.message.as_ref().is_some_and(|m| m.error) {
            self.message = None;
        }
        match &mut self.mode {
            Mode::Help { scroll } => {
                match self.keymap.action(&key) {
                    Some(Action::Down) => *scroll = scroll.saturating_add(1),
                    Some(Action::Up) => *scroll = scroll.saturating_sub(1),
                    Some(Action::PageDown) => *scroll = scroll.saturating_add(10),
                    Some(Action::PageUp) => *scroll = scroll.saturating_sub(10),
                    Some(Action::Top) => *scroll = 0,
                    Some(Action::Quit) if key.modifiers.contains(KeyModifiers::CONTROL) => {
                        self.quit = true;
                        return vec![Effect::Quit];
                    }
                    Some(Action::Quit | Action::Help | Action::Back) => self.mode = Mode::Normal,
                    _ => {}
                }
                Vec::new()
            }
            Mode::Command(input) => match key.code {
                KeyCode::Esc => {
                    self.mode = Mode::Normal;
                    Vec::new()
                }
                KeyCode::Enter => {
                    let line = input.text().to_string();
                    self.mode = Mode::Normal;
                    self.run_command(&line)
                }
                KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                    self.mode = Mode::Normal;
                    Vec::new()
                }
                KeyCode::Backspace if input.text().is_empty() => {
                    self.mode = Mode::Normal;
                    Vec::new()
                }
                _ => {
                    input.input(key);
                    Vec::new()
                }
            },
            Mode::Filter(input) => match key.code {
                KeyCode::Esc => {
                    // Esc cancels the edit: the filter applied when the line opened stays (a
                    // tab that filters as you type gets it back).
                    let original = input.original().to_string();
                    self.mode = Mode::Normal;
                    self.apply_filter(&original)
                }
                KeyCode::Enter => {
                    let text = input.text().to_string();
                    self.mode = Mode::Normal;
                    self.remember_filter(&text);
                    self.submit_filter(&text)
                }
                KeyCode::Up | KeyCode::Down if !self.filter_history.is_empty() => {
                    let last = self.filter_history.len() - 1;
                    let pos = match (key.code, self.filter_history_pos) {
                        (KeyCode::Up, None) => Some(last),
                        (KeyCode::Up, Some(p)) => Some(p.saturating_sub(1)),
                        (KeyCode::Down, Some(p)) if p < last => Some(p + 1),
                        _ => None,
                    };
                    self.filter_history_pos = pos;
                    let text = pos
                        .and_then(|p| self.filter_history.get(p).cloned())
                        .unwrap_or_default();
                    input.set_text(&text);
                    self.apply_filter(&text)
                }
                KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                    let original = input.original().to_string();
                    self.mode = Mode::Normal;
                    self.apply_filter(&original)
                }
                _ => {
                    if input.input(key) {
                        let text = input.text().to_string();
                        self.apply_filter(&text)
                    } else {
                        Vec::new()
                    }
                }
            },
            Mode::Normal
                if self
                    .tabs
                    .get(self.active)
                    .is_some_and(|t| t.captures_input()) =>
            {
                let ctx = ctx!(self);
                self.tabs
                    .get_mut(self.active)
                    .and_then(|t| t.on_key(&key, &ctx))
                    .unwrap_or_default()
            }
            Mode::Normal => match self.keymap.action(&key) {
                Some(a) if a.is_global() => self.global_action(a),
                Some(a) => {
                    let fx = self.tab_action(a);
                    if a == Action::Back && fx.is_empty() {
                        self.message = None;
                    }
                    fx
                }
                None => {
                    let ctx = ctx!(self);
                    let handled = self
                        .tabs
                        .get_mut(self.active)
                        .and_then(|t| t.on_key(&key, &ctx));
                    handled.unwrap_or_default()
                }
            },
        }
    }

    /// Keeps the last 100 distinct submitted filters, most recent last.
    fn remember_filter(&mut self, text: &str) {
        self.filter_history_pos = None;
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        self.filter_history.retain(|f| f != text);
        self.filter_history.push(text.to_string());
        if self.filter_history.len() > 100 {
            self.filter_history.remove(0);
        }
    }

    fn submit_filter(&mut self, text: &str) -> Vec<Effect> {
        let ctx = ctx!(self);
        match self.tabs.get_mut(self.active) {
            Some(t) => t.on_filter_submit(text, &ctx),
            None => Vec::new(),
        }
    }

    fn apply_filter(&mut self, text: &str) -> Vec<Effect> {
        let ctx = ctx!(self);
        match self.tabs.get_mut(self.active) {
            Some(t) => t.on_filter(text, &ctx),
            None => Vec::new(),
        }
    }

    fn on_mouse(&mut self, m: MouseEvent) -> Vec<Effect> {
        match m.kind {
            MouseEventKind::ScrollDown => {
                self.dirty = true;
                if let Mode::Help { scroll } = &mut self.mode {
                    *scroll = scroll.saturating_add(3);
                    return Vec::new();
                }
                self.tab_action(Action::Down)
            }
            MouseEventKind::ScrollUp => {
                self.dirty = true;
                if let Mode::Help { scroll } = &mut self.mode {
                    *scroll = scroll.saturating_sub(3);
                    return Vec::new();
                }
                self.tab_action(Action::Up)
            }
            MouseEventKind::Down(MouseButton::Left) if m.row == 0 => {
                let ids = self.tabs.iter().map(|t| t.id());
                match crate::tui::layout::tab_at(ids, self.size.0, m.column) {
                    Some(tab) => {
                        self.mode = Mode::Normal;
                        self.switch_to(tab)
                    }
                    None => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    fn on_tick(&mut self, now: DateTime<Utc>) -> Vec<Effect> {
        self.now = now;
        self.dirty = true;
        if let Some(b) = &self.background {
            self.background_note = (b.0)();
        }
        if let Some(m) = &self.message {
            // Information fades after a few seconds; an error waits for a key (above), with a
            // long ceiling so an unattended screen does not keep a stale one forever.
            let ttl = if m.error { 300 } else { 5 };
            if (now - m.at).num_seconds() >= ttl {
                self.message = None;
            }
        }
        if !self.online() {
            return Vec::new();
        }
        let mut fx = if self.header_refresh.due(now) {
            self.refresh_header()
        } else {
            Vec::new()
        };
        let ctx = ctx!(self);
        if let Some(t) = self.tabs.get_mut(self.active) {
            fx.extend(t.tick(&ctx));
        }
        fx
    }

    fn on_ping(&mut self, res: Result<Duration, String>) -> Vec<Effect> {
        match res {
            Ok(rtt) => {
                let was_down = matches!(self.conn, Conn::Down { .. });
                // A new round-trip time waits for the next tick's frame (one a second anyway);
                // only a change of state repaints at once.
                if !matches!(self.conn, Conn::Up { .. }) {
                    self.dirty = true;
                }
                self.conn = Conn::Up { rtt };
                if was_down {
                    self.say("database reachable again");
                    return self.refresh_now_quiet();
                }
                Vec::new()
            }
            Err(error) => {
                let since = match &self.conn {
                    Conn::Down { since, .. } => *since,
                    _ => self.now,
                };
                let new = Conn::Down { since, error };
                if new != self.conn {
                    self.dirty = true;
                }
                self.conn = new;
                Vec::new()
            }
        }
    }

    fn refresh_now_quiet(&mut self) -> Vec<Effect> {
        let mut fx = self.refresh_header();
        fx.extend(self.refresh_active());
        fx
    }

    fn on_query(&mut self, done: QueryDone) -> Vec<Effect> {
        self.dirty = true;
        match (done.owner, done.data) {
            (_, Data::Shell(ShellData::Header(res))) => {
                // A failed header read keeps the last one; the banner tells of a lost database.
                if let Ok(h) = res {
                    self.header = Some(h);
                }
                Vec::new()
            }
            (Owner::Tab(id), data) => {
                let ctx = ctx!(self);
                match self.tabs.iter_mut().find(|t| t.id() == id) {
                    Some(t) => t.on_data(data, &ctx),
                    None => Vec::new(),
                }
            }
            (Owner::Shell, _) => Vec::new(),
        }
    }
}

/// The one place state changes: applies an event, returns the effects to carry out.
pub fn update(app: &mut App, ev: Event) -> Vec<Effect> {
    let mut effects: std::collections::VecDeque<Effect> = update_inner(app, ev).into();
    let mut out = Vec::with_capacity(effects.len());
    let mut jumps = 0;
    while let Some(e) = effects.pop_front() {
        match e {
            // A jump's target may answer with another jump; a cycle must not spin forever.
            Effect::Jump(j) if jumps < 4 => {
                jumps += 1;
                effects.extend(app.jump(j));
            }
            Effect::Jump(_) => {}
            Effect::Say { text, error } => {
                if error {
                    app.error(text)
                } else {
                    app.say(text)
                }
            }
            other => out.push(other),
        }
    }
    out
}

fn update_inner(app: &mut App, ev: Event) -> Vec<Effect> {
    if matches!(ev, Event::Input(_)) {
        app.urgent = true;
    }
    match ev {
        Event::Input(TermEvent::Key(k)) if k.kind != KeyEventKind::Release => app.on_key(k),
        Event::Input(TermEvent::Mouse(m)) => app.on_mouse(m),
        Event::Input(TermEvent::Resize(w, h)) => {
            app.size = (w, h);
            app.dirty = true;
            Vec::new()
        }
        Event::Input(TermEvent::Paste(s)) => match &mut app.mode {
            Mode::Command(i) => {
                i.insert(&s);
                app.dirty = true;
                Vec::new()
            }
            Mode::Filter(i) => {
                i.insert(&s);
                app.dirty = true;
                let text = i.text().to_string();
                app.apply_filter(&text)
            }
            _ => Vec::new(),
        },
        Event::Input(_) => Vec::new(),
        Event::InputClosed(e) => {
            // Without a keyboard nobody can quit: leave now.
            app.error(format!("terminal input closed: {e}"));
            app.quit = true;
            vec![Effect::Quit]
        }
        Event::Tick(now) => app.on_tick(now),
        Event::Ping(res) => app.on_ping(res),
        Event::Query(done) => app.on_query(done),
        Event::Wake(tab) => {
            // The tab took its source's news (the tail's lines) inside this update: draw them
            // (at the frame pace; a spare wake-up costs at most one frame).
            app.dirty = true;
            let ctx = ctx!(app);
            match app.tabs.iter_mut().find(|t| t.id() == tab) {
                Some(t) => t.on_wake(&ctx),
                None => Vec::new(),
            }
        }
        Event::Signal(name) => {
            app.error(format!("{name} received"));
            app.quit = true;
            vec![Effect::Quit]
        }
    }
}
