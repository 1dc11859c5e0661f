//! The `:` command line: parsing of what the operator typed into a `Command`.

use crate::model::TimeRange;
use crate::tui::msg::Tab;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Quit,
    Range(TimeRange),
    Theme(String),
    Clock {
        local: bool,
    },
    Tab(Tab),
    Refresh,
    Help,
    /// Not a shell command: offered to the current tab (`name` is the first word).
    Other {
        name: String,
        args: String,
    },
}

/// Commands listed in the help overlay.
pub const HELP: &[(&str, &str)] = &[
    (":q  :quit", "quit"),
    (":range 1h|6h|24h|7d|30d", "shared time range"),
    (
        ":theme NAME",
        "dark, light, high-contrast, solarized, or a user theme",
    ),
    (":utc  :local", "clock time zone"),
    (":tab NAME  :kpi  :health ...", "go to a tab"),
    (":refresh", "refresh the current tab"),
    (":help", "this help"),
];

pub fn parse(line: &str) -> Result<Command, String> {
    let line = line.trim().trim_start_matches(':').trim();
    let (name, args) = match line.split_once(char::is_whitespace) {
        Some((n, a)) => (n, a.trim()),
        None => (line, ""),
    };
    let lower = name.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "" => return Err("empty command".into()),
        "q" | "quit" | "q!" | "qa" | "exit" => Command::Quit,
        "range" | "r" => match TimeRange::parse(args) {
            Some(r) => Command::Range(r),
            None => {
                return Err(format!(
                    "range: expected 1h, 6h, 24h, 7d or 30d, got {:?}",
                    crate::sanitize::sanitize(args)
                ))
            }
        },
        "theme" | "colorscheme" | "colo" => {
            if args.is_empty() {
                return Err("theme: name missing (dark, light, high-contrast, solarized)".into());
            }
            Command::Theme(args.to_string())
        }
        "utc" => Command::Clock { local: false },
        "local" => Command::Clock { local: true },
        "tab" => match Tab::from_name(args) {
            Some(t) => Command::Tab(t),
            None => {
                return Err(format!(
                    "tab: unknown tab {:?}",
                    crate::sanitize::sanitize(args)
                ))
            }
        },
        "refresh" | "reload" => Command::Refresh,
        "help" | "h" => Command::Help,
        _ => match (TimeRange::parse(&lower), Tab::from_name(&lower)) {
            (Some(r), _) if args.is_empty() => Command::Range(r),
            (_, Some(t)) if args.is_empty() && lower.parse::<u8>().is_err() => Command::Tab(t),
            _ => Command::Other {
                name: lower,
                args: args.to_string(),
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_shell_commands() {
        assert_eq!(parse(":q").unwrap(), Command::Quit);
        assert_eq!(parse("range 24h").unwrap(), Command::Range(TimeRange::H24));
        assert_eq!(parse(":7d").unwrap(), Command::Range(TimeRange::D7));
        assert_eq!(
            parse(":theme light").unwrap(),
            Command::Theme("light".into())
        );
        assert_eq!(parse(":local").unwrap(), Command::Clock { local: true });
        assert_eq!(parse(":health").unwrap(), Command::Tab(Tab::Health));
        assert_eq!(parse(":tab 1").unwrap(), Command::Tab(Tab::Kpi));
        assert_eq!(
            parse(":ack 12 looking").unwrap(),
            Command::Other {
                name: "ack".into(),
                args: "12 looking".into()
            }
        );
    }

    #[test]
    fn bad_commands_are_one_line_errors() {
        assert!(parse(":range 2w").unwrap_err().contains("1h"));
        assert!(parse(":").is_err());
        assert!(parse(":theme").is_err());
        // Hostile text is never echoed raw.
        assert!(!parse(":range \u{1b}[2J").unwrap_err().contains('\u{1b}'));
    }
}
