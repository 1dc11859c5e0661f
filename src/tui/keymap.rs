//! Key bindings: named actions bound to keys with k9s/vim habits, overridable from the `[keys]`
//! config section (`action = "key [key...]"`). A bad binding is reported and the default kept.

use std::collections::HashMap;
use std::fmt;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key asks the shell (or the current tab) to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Quit,
    NextTab,
    PrevTab,
    GoTab(u8),
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Left,
    Right,
    Select,
    Back,
    Filter,
    Command,
    Help,
    Refresh,
    ToggleClock,
    RangeNext,
    RangePrev,
    Redraw,
}

/// (config name, action, default keys, help text), in help order.
pub const ACTIONS: &[(&str, Action, &str, &str)] = &[
    ("quit", Action::Quit, "q ctrl-c", "quit"),
    ("next_tab", Action::NextTab, "tab", "next tab"),
    ("prev_tab", Action::PrevTab, "backtab", "previous tab"),
    ("tab_1", Action::GoTab(1), "1", "KPI tab"),
    ("tab_2", Action::GoTab(2), "2", "Logs tab"),
    ("tab_3", Action::GoTab(3), "3", "Alerts tab"),
    ("tab_4", Action::GoTab(4), "4", "Performance tab"),
    ("tab_5", Action::GoTab(5), "5", "Health tab"),
    ("up", Action::Up, "k up", "move up"),
    ("down", Action::Down, "j down", "move down"),
    ("page_up", Action::PageUp, "pgup ctrl-b", "page up"),
    ("page_down", Action::PageDown, "pgdn ctrl-f", "page down"),
    ("top", Action::Top, "g home", "first row"),
    ("bottom", Action::Bottom, "G end", "last row"),
    ("left", Action::Left, "h left", "previous section"),
    ("right", Action::Right, "l right", "next section"),
    ("select", Action::Select, "enter", "open / select"),
    ("back", Action::Back, "esc", "back / clear"),
    ("filter", Action::Filter, "/", "filter this tab"),
    ("command", Action::Command, ":", "command line"),
    ("help", Action::Help, "?", "this help"),
    ("refresh", Action::Refresh, "r ctrl-r", "refresh now"),
    (
        "toggle_clock",
        Action::ToggleClock,
        "z",
        "clock UTC / local",
    ),
    ("range_next", Action::RangeNext, "]", "longer time range"),
    ("range_prev", Action::RangePrev, "[", "shorter time range"),
    ("redraw", Action::Redraw, "ctrl-l", "redraw the screen"),
];

impl Action {
    pub fn name(self) -> &'static str {
        ACTIONS
            .iter()
            .find(|(_, a, _, _)| *a == self)
            .map(|(n, _, _, _)| *n)
            .unwrap_or("?")
    }

    /// Actions the shell handles itself; the others go to the current tab.
    pub fn is_global(self) -> bool {
        matches!(
            self,
            Action::Quit
                | Action::NextTab
                | Action::PrevTab
                | Action::GoTab(_)
                | Action::Filter
                | Action::Command
                | Action::Help
                | Action::Refresh
                | Action::ToggleClock
                | Action::RangeNext
                | Action::RangePrev
                | Action::Redraw
        )
    }
}

/// A key with its modifiers, normalised so `G` and `shift-g` are the same binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl Key {
    pub fn new(code: KeyCode, mods: KeyModifiers) -> Key {
        // Terminals report shifted characters both as 'G' and as 'G'+SHIFT: keep the character.
        let mods = match code {
            KeyCode::Char(_) => mods - KeyModifiers::SHIFT,
            KeyCode::BackTab => KeyModifiers::NONE,
            _ => mods,
        } & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        let code = match code {
            KeyCode::Char(c) if mods.contains(KeyModifiers::CONTROL) => {
                KeyCode::Char(c.to_ascii_lowercase())
            }
            c => c,
        };
        Key { code, mods }
    }

    pub fn from_event(e: &KeyEvent) -> Key {
        Key::new(e.code, e.modifiers)
    }

    /// Parses `q`, `G`, `ctrl-c`, `alt-x`, `shift-tab`, `backtab`, `enter`, `esc`, `pgup`,
    /// `f5`, `space`...
    pub fn parse(s: &str) -> Result<Key, String> {
        let mut mods = KeyModifiers::NONE;
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err("empty key".into());
        }
        loop {
            let lower = rest.to_ascii_lowercase();
            if let Some(r) = lower.strip_prefix("ctrl-").or(lower.strip_prefix("c-")) {
                mods |= KeyModifiers::CONTROL;
                rest = &rest[rest.len() - r.len()..];
            } else if let Some(r) = lower.strip_prefix("alt-").or(lower.strip_prefix("m-")) {
                mods |= KeyModifiers::ALT;
                rest = &rest[rest.len() - r.len()..];
            } else if let Some(r) = lower.strip_prefix("shift-").or(lower.strip_prefix("s-")) {
                mods |= KeyModifiers::SHIFT;
                rest = &rest[rest.len() - r.len()..];
            } else {
                break;
            }
            if rest.is_empty() {
                return Err(format!("{s:?}: modifier without a key"));
            }
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => KeyCode::Char(c),
            _ => match rest.to_ascii_lowercase().as_str() {
                "tab" if mods.contains(KeyModifiers::SHIFT) => KeyCode::BackTab,
                "tab" => KeyCode::Tab,
                "backtab" => KeyCode::BackTab,
                "enter" | "return" => KeyCode::Enter,
                "esc" | "escape" => KeyCode::Esc,
                "space" => KeyCode::Char(' '),
                "backspace" => KeyCode::Backspace,
                "delete" | "del" => KeyCode::Delete,
                "insert" | "ins" => KeyCode::Insert,
                "up" => KeyCode::Up,
                "down" => KeyCode::Down,
                "left" => KeyCode::Left,
                "right" => KeyCode::Right,
                "home" => KeyCode::Home,
                "end" => KeyCode::End,
                "pgup" | "pageup" => KeyCode::PageUp,
                "pgdn" | "pgdown" | "pagedown" => KeyCode::PageDown,
                f if f.starts_with('f') => match f[1..].parse::<u8>() {
                    Ok(n) if (1..=12).contains(&n) => KeyCode::F(n),
                    _ => return Err(format!("unknown key {s:?}")),
                },
                _ => return Err(format!("unknown key {s:?}")),
            },
        };
        Ok(Key::new(code, mods))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mods.contains(KeyModifiers::CONTROL) {
            f.write_str("ctrl-")?;
        }
        if self.mods.contains(KeyModifiers::ALT) {
            f.write_str("alt-")?;
        }
        if self.mods.contains(KeyModifiers::SHIFT) {
            f.write_str("shift-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Tab => f.write_str("tab"),
            KeyCode::BackTab => f.write_str("shift-tab"),
            KeyCode::Enter => f.write_str("enter"),
            KeyCode::Esc => f.write_str("esc"),
            KeyCode::Backspace => f.write_str("backspace"),
            KeyCode::Up => f.write_str("up"),
            KeyCode::Down => f.write_str("down"),
            KeyCode::Left => f.write_str("left"),
            KeyCode::Right => f.write_str("right"),
            KeyCode::Home => f.write_str("home"),
            KeyCode::End => f.write_str("end"),
            KeyCode::PageUp => f.write_str("pgup"),
            KeyCode::PageDown => f.write_str("pgdn"),
            KeyCode::F(n) => write!(f, "f{n}"),
            KeyCode::Delete => f.write_str("del"),
            KeyCode::Insert => f.write_str("ins"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// The resolved bindings.
#[derive(Debug, Clone)]
pub struct Keymap {
    by_key: HashMap<Key, Action>,
    by_action: Vec<(Action, Vec<Key>)>,
}

impl Keymap {
    /// Builds the keymap from defaults and overrides; returns the problems found in the
    /// overrides (each one line, for the status bar) alongside a usable keymap.
    pub fn new(overrides: &std::collections::BTreeMap<String, String>) -> (Keymap, Vec<String>) {
        let mut problems = Vec::new();
        let mut by_action: Vec<(Action, Vec<Key>)> = Vec::new();
        for (name, action, defaults, _) in ACTIONS {
            let default_keys: Vec<Key> = defaults
                .split_whitespace()
                .filter_map(|k| Key::parse(k).ok())
                .collect();
            let keys = match overrides.get(*name) {
                None => default_keys,
                Some(spec) => {
                    let parsed: Result<Vec<Key>, String> =
                        spec.split_whitespace().map(Key::parse).collect();
                    match parsed {
                        Ok(keys) if !keys.is_empty() => keys,
                        Ok(_) => {
                            problems.push(format!("keys.{name}: no key given, default kept"));
                            default_keys
                        }
                        Err(e) => {
                            problems.push(format!("keys.{name}: {e}, default kept"));
                            default_keys
                        }
                    }
                }
            };
            by_action.push((*action, keys));
        }
        for name in overrides.keys() {
            if !ACTIONS.iter().any(|(n, _, _, _)| n == name) {
                problems.push(format!("keys.{name}: unknown action"));
            }
        }
        let mut by_key = HashMap::new();
        for (action, keys) in &by_action {
            for k in keys {
                if let Some(prev) = by_key.insert(*k, *action) {
                    if prev != *action {
                        problems.push(format!(
                            "keys: {k} bound to both {} and {}; {} wins",
                            prev.name(),
                            action.name(),
                            action.name()
                        ));
                    }
                }
            }
        }
        // Ctrl-C always quits, whatever the overrides, so nobody is locked in.
        by_key.insert(
            Key::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
            Action::Quit,
        );
        (Keymap { by_key, by_action }, problems)
    }

    pub fn action(&self, key: &KeyEvent) -> Option<Action> {
        self.by_key.get(&Key::from_event(key)).copied()
    }

    /// The keys bound to an action, as shown in help ("j/down").
    pub fn keys_for(&self, action: Action) -> String {
        self.by_action
            .iter()
            .find(|(a, _)| *a == action)
            .map(|(_, keys)| {
                keys.iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_default()
    }
}

impl Default for Keymap {
    fn default() -> Self {
        Keymap::new(&Default::default()).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ev(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn defaults_follow_vim_and_k9s_habits() {
        let km = Keymap::default();
        assert_eq!(
            km.action(&ev(KeyCode::Char('j'), KeyModifiers::NONE)),
            Some(Action::Down)
        );
        assert_eq!(
            km.action(&ev(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            Some(Action::Bottom)
        );
        assert_eq!(
            km.action(&ev(KeyCode::BackTab, KeyModifiers::SHIFT)),
            Some(Action::PrevTab)
        );
        assert_eq!(
            km.action(&ev(KeyCode::Char('5'), KeyModifiers::NONE)),
            Some(Action::GoTab(5))
        );
    }

    #[test]
    fn overrides_apply_and_bad_ones_are_reported_not_fatal() {
        let mut o = BTreeMap::new();
        o.insert("quit".to_string(), "ctrl-q".to_string());
        o.insert("help".to_string(), "ctrl-".to_string());
        o.insert("frobnicate".to_string(), "x".to_string());
        let (km, problems) = Keymap::new(&o);
        assert_eq!(
            km.action(&ev(KeyCode::Char('q'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        assert_eq!(km.action(&ev(KeyCode::Char('q'), KeyModifiers::NONE)), None);
        // Ctrl-C still quits.
        assert_eq!(
            km.action(&ev(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        // The bad help binding kept its default.
        assert_eq!(
            km.action(&ev(KeyCode::Char('?'), KeyModifiers::NONE)),
            Some(Action::Help)
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("keys.help")));
        assert!(problems.iter().any(|p| p.contains("frobnicate")));
    }

    #[test]
    fn key_parse_round_trips() {
        for s in [
            "q",
            "ctrl-c",
            "shift-tab",
            "enter",
            "f5",
            "pgdn",
            "G",
            "space",
        ] {
            let k = Key::parse(s).unwrap();
            assert_eq!(Key::parse(&k.to_string()).unwrap(), k, "{s}");
        }
        assert!(Key::parse("hyper-x").is_err());
        assert!(Key::parse("").is_err());
    }
}
