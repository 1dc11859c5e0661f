//! Colour themes. Every colour the UI draws comes from a named `Role`, looked up in a theme read
//! from TOML: the built-in themes are embedded in the binary, user themes are read from
//! `<config dir>/themes/<name>.toml`. With `NO_COLOR` (or `--no-color`) the no-colour theme is
//! used: no colour codes at all, emphasis by bold and reverse video only.

use std::collections::BTreeMap;
use std::path::Path;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

/// A named use of colour in the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Text,
    Dim,
    Accent,
    Border,
    Title,
    TabActive,
    TabInactive,
    Header,
    Status,
    Selection,
    Ok,
    Warn,
    Error,
    Critical,
    Info,
    Banner,
    Spark,
    ChartPrimary,
    ChartSecondary,
    Input,
}

impl Role {
    pub const ALL: [Role; 20] = [
        Role::Text,
        Role::Dim,
        Role::Accent,
        Role::Border,
        Role::Title,
        Role::TabActive,
        Role::TabInactive,
        Role::Header,
        Role::Status,
        Role::Selection,
        Role::Ok,
        Role::Warn,
        Role::Error,
        Role::Critical,
        Role::Info,
        Role::Banner,
        Role::Spark,
        Role::ChartPrimary,
        Role::ChartSecondary,
        Role::Input,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Text => "text",
            Role::Dim => "dim",
            Role::Accent => "accent",
            Role::Border => "border",
            Role::Title => "title",
            Role::TabActive => "tab_active",
            Role::TabInactive => "tab_inactive",
            Role::Header => "header",
            Role::Status => "status",
            Role::Selection => "selection",
            Role::Ok => "ok",
            Role::Warn => "warn",
            Role::Error => "error",
            Role::Critical => "critical",
            Role::Info => "info",
            Role::Banner => "banner",
            Role::Spark => "spark",
            Role::ChartPrimary => "chart_primary",
            Role::ChartSecondary => "chart_secondary",
            Role::Input => "input",
        }
    }

    /// Emphasis used when colours are off, so states stay distinguishable on a monochrome screen.
    fn mono_modifier(self) -> Modifier {
        match self {
            Role::Title | Role::Error | Role::Input => Modifier::BOLD,
            Role::TabActive | Role::Critical | Role::Banner => Modifier::BOLD | Modifier::REVERSED,
            Role::Selection => Modifier::REVERSED,
            Role::Warn => Modifier::UNDERLINED,
            _ => Modifier::empty(),
        }
    }
}

pub const BUILTIN: &[(&str, &str)] = &[
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("solarized", include_str!("../../themes/solarized.toml")),
];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleSpec {
    fg: Option<String>,
    bg: Option<String>,
    #[serde(default)]
    bold: bool,
    #[serde(default)]
    reverse: bool,
    #[serde(default)]
    italic: bool,
    #[serde(default)]
    underline: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: Option<String>,
    #[serde(default)]
    roles: BTreeMap<String, RoleSpec>,
}

/// A resolved theme: one style per role.
#[derive(Debug, Clone)]
pub struct Theme {
    pub name: String,
    pub colored: bool,
    styles: BTreeMap<Role, Style>,
}

impl Theme {
    pub fn style(&self, role: Role) -> Style {
        self.styles.get(&role).copied().unwrap_or_default()
    }

    /// No colour codes at all: every role is the terminal's default colours plus emphasis.
    pub fn no_color() -> Theme {
        Theme {
            name: "no-color".into(),
            colored: false,
            styles: Role::ALL
                .iter()
                .map(|r| (*r, Style::default().add_modifier(r.mono_modifier())))
                .collect(),
        }
    }

    /// Parses a theme file. Roles it does not mention fall back to the dark theme's.
    pub fn parse(text: &str, fallback_name: &str) -> Result<Theme, String> {
        let file: ThemeFile = toml::from_str(text).map_err(|e| e.message().trim().to_string())?;
        let base = if fallback_name == "dark" {
            None
        } else {
            Some(Theme::builtin("dark").ok_or("dark theme missing")?)
        };
        let mut styles = base.map(|b| b.styles).unwrap_or_default();
        for (key, spec) in &file.roles {
            let role = Role::ALL
                .iter()
                .find(|r| r.name() == key)
                .ok_or_else(|| format!("unknown role {key:?}"))?;
            styles.insert(*role, spec_style(spec).map_err(|e| format!("{key}: {e}"))?);
        }
        Ok(Theme {
            name: file.name.unwrap_or_else(|| fallback_name.to_string()),
            colored: true,
            styles,
        })
    }

    pub fn builtin(name: &str) -> Option<Theme> {
        let (_, text) = BUILTIN.iter().find(|(n, _)| *n == name)?;
        Theme::parse(text, name).ok()
    }

    /// A built-in theme or `<dir>/themes/<name>.toml`. Errors are one line for the status bar.
    pub fn load(name: &str, config_dir: Option<&Path>) -> Result<Theme, String> {
        if name == "no-color" || name == "none" {
            return Ok(Theme::no_color());
        }
        if let Some(dir) = config_dir {
            let path = dir.join("themes").join(format!("{name}.toml"));
            if path.exists() {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                return Theme::parse(&text, name).map_err(|e| format!("{}: {e}", path.display()));
            }
        }
        Theme::builtin(name).ok_or_else(|| {
            format!(
                "unknown theme {name:?} (built in: {})",
                BUILTIN
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }

    /// Theme names offered for completion: the built-ins plus the user's theme files.
    pub fn available(config_dir: Option<&Path>) -> Vec<String> {
        let mut names: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
        if let Some(Ok(entries)) = config_dir.map(|d| std::fs::read_dir(d.join("themes"))) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "toml") {
                    if let Some(stem) = p.file_stem() {
                        names.push(stem.to_string_lossy().into_owned());
                    }
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }
}

/// Whether the environment asks for no colour (https://no-color.org: set and non-empty).
pub fn no_color_requested() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

fn spec_style(spec: &RoleSpec) -> Result<Style, String> {
    let mut s = Style::default();
    if let Some(fg) = &spec.fg {
        s = s.fg(parse_color(fg)?);
    }
    if let Some(bg) = &spec.bg {
        s = s.bg(parse_color(bg)?);
    }
    let mut m = Modifier::empty();
    if spec.bold {
        m |= Modifier::BOLD;
    }
    if spec.reverse {
        m |= Modifier::REVERSED;
    }
    if spec.italic {
        m |= Modifier::ITALIC;
    }
    if spec.underline {
        m |= Modifier::UNDERLINED;
    }
    Ok(s.add_modifier(m))
}

pub fn parse_color(s: &str) -> Result<Color, String> {
    let t = s.trim().to_ascii_lowercase();
    if let Some(hex) = t.strip_prefix('#') {
        if hex.len() == 6 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            let v = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
            return Ok(Color::Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8));
        }
        return Err(format!("bad colour {s:?} (expected #rrggbb)"));
    }
    if let Ok(i) = t.parse::<u8>() {
        return Ok(Color::Indexed(i));
    }
    Ok(match t.replace(['-', '_', ' '], "").as_str() {
        "reset" | "default" => Color::Reset,
        "black" => Color::Black,
        "red" => Color::Red,
        "green" => Color::Green,
        "yellow" => Color::Yellow,
        "blue" => Color::Blue,
        "magenta" => Color::Magenta,
        "cyan" => Color::Cyan,
        "gray" | "grey" => Color::Gray,
        "darkgray" | "darkgrey" => Color::DarkGray,
        "lightred" => Color::LightRed,
        "lightgreen" => Color::LightGreen,
        "lightyellow" => Color::LightYellow,
        "lightblue" => Color::LightBlue,
        "lightmagenta" => Color::LightMagenta,
        "lightcyan" => Color::LightCyan,
        "white" => Color::White,
        _ => return Err(format!("unknown colour {s:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_theme_parses_and_defines_every_role() {
        for (name, text) in BUILTIN {
            let file: ThemeFile = toml::from_str(text).unwrap();
            for role in Role::ALL {
                assert!(
                    file.roles.contains_key(role.name()),
                    "{name} lacks {}",
                    role.name()
                );
            }
            let t = Theme::parse(text, name).unwrap();
            assert_eq!(&t.name, name);
        }
    }

    #[test]
    fn no_color_theme_has_no_colours() {
        let t = Theme::no_color();
        for role in Role::ALL {
            let s = t.style(role);
            assert!(s.fg.is_none() && s.bg.is_none(), "{role:?}");
        }
        assert!(t
            .style(Role::Selection)
            .add_modifier
            .contains(Modifier::REVERSED));
    }

    #[test]
    fn bad_theme_is_an_error_not_a_panic() {
        assert!(Theme::parse("[roles]\ntext = { fg = \"chartreuse\" }", "x").is_err());
        assert!(Theme::parse("[roles]\nnope = { fg = \"red\" }", "x").is_err());
        assert!(Theme::load("does-not-exist", None).is_err());
        assert_eq!(parse_color("#ff0080").unwrap(), Color::Rgb(255, 0, 128));
    }

    #[test]
    fn user_theme_from_config_dir_overrides() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("themes")).unwrap();
        std::fs::write(
            dir.path().join("themes/mine.toml"),
            "name = \"mine\"\n[roles]\ntext = { fg = \"#010203\" }\n",
        )
        .unwrap();
        let t = Theme::load("mine", Some(dir.path())).unwrap();
        assert_eq!(t.style(Role::Text).fg, Some(Color::Rgb(1, 2, 3)));
        // Unmentioned roles come from the dark theme.
        assert_eq!(t.style(Role::Ok).fg, Some(Color::Green));
        assert!(Theme::available(Some(dir.path())).contains(&"mine".to_string()));
    }
}
