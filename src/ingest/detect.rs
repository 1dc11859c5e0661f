//! Input formats and per-line detection: mixed streams (a container's stdout with JSON from the
//! app and text from its runtime) are common, so `auto` decides line by line.

use super::access::{self, Flavor};
use super::fields::LineContext;
use super::record::Parsed;
use super::{json, logfmt, pglog, text};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Decide per line: JSON object, access log, logfmt, else plain text.
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// key=value pairs.
    Logfmt,
    /// nginx access log (common/combined, optional $request_time in seconds).
    Nginx,
    /// Apache access log (common/combined, optional %D in microseconds).
    Apache,
    /// journald entries: `journalctl -o json` or `-o json-seq` (with or without -f).
    Journald,
    /// Docker json-file lines (`{"log":...,"stream":...,"time":...}`).
    Docker,
    /// CRI lines of Kubernetes/containerd/CRI-O (`<time> <stream> <P|F> <text>`).
    Cri,
    /// Syslog files or messages: RFC 3164 or RFC 5424, with or without `<PRI>`. Times without
    /// a year are of the current year (the previous one if that is days ahead), times without
    /// a zone are in `ingest.timezone` (UTC unless set).
    Syslog,
    /// PostgreSQL's server log: stderr (any usual log_line_prefix), csvlog or jsonlog
    /// (`auto` recognises them too).
    Postgres,
}

/// The format `auto` picks for one line.
pub fn detect(line: &str) -> Format {
    let t = line.trim_start();
    if t.starts_with('{') {
        return Format::Json;
    }
    // Access logs start with the client address and have "[date]" then a quoted request.
    if t.as_bytes()
        .first()
        .is_some_and(|b| b.is_ascii_hexdigit() || *b == b':')
        && t.contains(" [")
        && t.contains("] \"")
    {
        return Format::Nginx;
    }
    let first = t.split(' ').next().unwrap_or("");
    if let Some(eq) = first.find('=') {
        if eq > 0 && !first[..eq].contains('"') {
            return Format::Logfmt;
        }
    }
    Format::Auto
}

/// Parses one line in the given format.
pub fn parse_line(format: Format, line: &str, ctx: &LineContext) -> Result<Parsed, String> {
    match format {
        Format::Json => json::parse(line, ctx),
        Format::Logfmt => logfmt::parse(line, ctx),
        Format::Nginx => access::parse(line, Flavor::Nginx, ctx),
        Format::Apache => access::parse(line, Flavor::Apache, ctx),
        Format::Postgres => pglog::parse(line, ctx),
        // The text inside an envelope (see `envelope`) is detected like any line.
        Format::Auto | Format::Journald | Format::Docker | Format::Cri | Format::Syslog => {
            match detect(line) {
                Format::Json => json::parse(line, ctx),
                Format::Nginx => {
                    access::parse(line, Flavor::Either, ctx).or_else(|_| Ok(text::parse(line, ctx)))
                }
                Format::Logfmt => logfmt::parse(line, ctx).or_else(|_| Ok(text::parse(line, ctx))),
                _ => Ok(text::parse(line, ctx)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [Format; 10] = [
        Format::Postgres,
        Format::Auto,
        Format::Json,
        Format::Logfmt,
        Format::Nginx,
        Format::Apache,
        Format::Journald,
        Format::Docker,
        Format::Cri,
        Format::Syslog,
    ];

    fn ctx() -> LineContext<'static> {
        LineContext {
            service: "svc",
            now: chrono::Utc::now(),
            level: None,
            zone: &crate::ingest::timestamp::UTC,
        }
    }

    proptest! {
        /// No input makes a parser panic: every line is either records or a reason.
        #[test]
        fn parsers_never_panic_on_arbitrary_text(line in "\\PC{0,200}") {
            for f in ALL {
                let _ = parse_line(f, &line, &ctx());
            }
        }

        #[test]
        fn parsers_never_panic_on_line_shaped_text(
            line in r#"[{}\[\]":,=a-z0-9 ._\\/-]{0,120}"#,
        ) {
            for f in ALL {
                let _ = parse_line(f, &line, &ctx());
            }
        }

        #[test]
        fn auto_never_rejects_text_that_does_not_start_with_a_brace(line in "[^{\\s][^\n]{0,100}") {
            prop_assert!(parse_line(Format::Auto, &line, &ctx()).is_ok());
        }
    }

    #[test]
    fn detects_per_line() {
        assert_eq!(detect(r#" {"msg":"x"}"#), Format::Json);
        assert_eq!(
            detect(r#"10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 1"#),
            Format::Nginx
        );
        assert_eq!(detect("level=info msg=hi"), Format::Logfmt);
        assert_eq!(detect("Started server on :80"), Format::Auto);
    }
}
