use std::fmt;
use std::str::FromStr;

/// Log level, stored as a small integer (see `opsdash.level_name`), ordered by gravity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Fatal = 5,
}

impl Level {
    pub const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
    ];

    pub fn as_i16(self) -> i16 {
        self as i16
    }

    pub fn from_i16(v: i16) -> Level {
        match v {
            i16::MIN..=0 => Level::Trace,
            1 => Level::Debug,
            2 => Level::Info,
            3 => Level::Warn,
            4 => Level::Error,
            _ => Level::Fatal,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// OpenTelemetry's SeverityNumber: 1-4 trace, 5-8 debug, 9-12 info, 13-16 warn, 17-20
    /// error, 21-24 fatal.
    pub fn from_otel_number(n: i64) -> Option<Level> {
        Some(match n {
            1..=4 => Level::Trace,
            5..=8 => Level::Debug,
            9..=12 => Level::Info,
            13..=16 => Level::Warn,
            17..=20 => Level::Error,
            21..=24 => Level::Fatal,
            _ => return None,
        })
    }

    /// Parses the spellings structured loggers use (case-insensitive): "WARNING", "err", "crit",
    /// syslog numbers 0-7, bunyan/pino numbers 10-60 (custom pino levels in between round
    /// down to the named one below), zap's "dpanic" (an error that panics only in development)
    /// and "panic", Serilog's "Information"/"Verbose", and the single letters of logcat, glog
    /// and klog (V D I W E F).
    pub fn parse_loose(s: &str) -> Option<Level> {
        let t = s.trim();
        if let Ok(n) = t.parse::<i64>() {
            if (10..=99).contains(&n) {
                return Some(match n {
                    10..=19 => Level::Trace,
                    20..=29 => Level::Debug,
                    30..=39 => Level::Info,
                    40..=49 => Level::Warn,
                    50..=59 => Level::Error,
                    _ => Level::Fatal,
                });
            }
            return Some(match n {
                10 => Level::Trace,
                20 => Level::Debug,
                30 => Level::Info,
                40 => Level::Warn,
                50 => Level::Error,
                60 => Level::Fatal,
                0..=2 => Level::Fatal,
                3 => Level::Error,
                4 => Level::Warn,
                5 | 6 => Level::Info,
                7 => Level::Debug,
                _ => return None,
            });
        }
        if t.len() > 13 {
            return None;
        }
        let mut buf = [0u8; 13];
        buf[..t.len()].copy_from_slice(t.as_bytes());
        buf[..t.len()].make_ascii_lowercase();
        Some(match &buf[..t.len()] {
            b"trace" | b"trc" | b"verbose" | b"vrb" | b"finest" | b"finer" | b"v" | b"t" => {
                Level::Trace
            }
            b"debug" | b"dbg" | b"fine" | b"d" => Level::Debug,
            b"info" | b"inf" | b"information" | b"notice" | b"informational" | b"config" | b"i" => {
                Level::Info
            }
            b"warn" | b"warning" | b"wrn" | b"w" => Level::Warn,
            b"error" | b"err" | b"eror" | b"erro" | b"severe" | b"dpanic" | b"e" => Level::Error,
            b"fatal" | b"ftl" | b"crit" | b"critical" | b"alert" | b"emerg" | b"emergency"
            | b"panic" | b"f" => Level::Fatal,
            _ => return None,
        })
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::parse_loose(s).ok_or_else(|| format!("unknown level {s:?}"))
    }
}

/// Alert severity, ordered by urgency; stored, printed and taken by `--severity` lowercase
/// (the sqlx glue is in `alert.rs`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Info,
        Severity::Warning,
        Severity::Error,
        Severity::Critical,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    // `pad`: the CLI's tables align it with `{:<8}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "info" => Ok(Severity::Info),
            "warning" | "warn" => Ok(Severity::Warning),
            "error" => Ok(Severity::Error),
            "critical" | "crit" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity {other:?} (info, warning, error, critical)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_round_trip() {
        for l in Level::ALL {
            assert_eq!(Level::from_i16(l.as_i16()), l);
            assert_eq!(l.name().parse::<Level>().unwrap(), l);
        }
        assert_eq!(Level::parse_loose("WARNING"), Some(Level::Warn));
        assert_eq!(Level::parse_loose("50"), Some(Level::Error));
        assert_eq!(Level::parse_loose("bogus"), None);
        assert_eq!(Level::parse_loose("35"), Some(Level::Info));
        assert_eq!(Level::parse_loose("60"), Some(Level::Fatal));
        assert_eq!(Level::parse_loose("E"), Some(Level::Error));
        assert_eq!(Level::parse_loose("w"), Some(Level::Warn));
        assert_eq!(Level::parse_loose("V"), Some(Level::Trace));
        assert_eq!(Level::parse_loose("dpanic"), Some(Level::Error));
        assert_eq!(Level::parse_loose("panic"), Some(Level::Fatal));
        assert_eq!(Level::parse_loose("Information"), Some(Level::Info));
        assert_eq!(Level::parse_loose("x"), None);
        assert_eq!(Level::from_otel_number(17), Some(Level::Error));
        assert_eq!(Level::from_otel_number(9), Some(Level::Info));
        assert_eq!(Level::from_otel_number(0), None);
    }
}
