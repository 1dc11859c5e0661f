//! Exports the log lines a filter selects as CSV, JSON or plain text, streaming (constant
//! memory whatever the size). Used by `opsdash export` and by the Logs tab's export prompt.
//!
//! JSON carries the data exactly (a round trip gives the same rows). CSV does too, except that a
//! text cell starting with `=`, `+`, `-`, `@`, tab or CR gets a leading `'` (OWASP's guard
//! against CSV injection: a spreadsheet would run it as a formula). The text format is for
//! reading and is sanitized like the screen (`crate::sanitize`), since it is likely to be `cat`
//! to a terminal. `Mode::Raw` (`opsdash export --raw`, never to a terminal) writes text and CSV
//! cells as stored. Either way one record is one line of text: line breaks inside a value are
//! written as `\n` / `\r` (raw) or `^J` / `^M` (escaped), so no value can forge a record.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::filter::Filter;
use crate::query::logs::{for_each_batch, LogLine};
use crate::sanitize::sanitize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// RFC 4180 with a header row, formula cells guarded.
    Csv,
    /// One array, one object per line, exact.
    Json,
    /// For reading: time, level, service, message, escaped as on screen.
    Text,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Text => "log",
        }
    }
}

/// How text from the data is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Text format escaped as on screen; CSV cells guarded against formula injection.
    #[default]
    Escaped,
    /// Values as stored (line breaks in text still escaped, one record per line).
    Raw,
}

/// The columns of a CSV export, in order (also the keys of a JSON export).
pub const CSV_COLUMNS: [&str; 20] = [
    "id",
    "ts",
    "level",
    "service",
    "host",
    "message",
    "trace_id",
    "span_id",
    "request_id",
    "user_id",
    "route",
    "method",
    "status",
    "duration_ms",
    "ip",
    "user_agent",
    "error_type",
    "attrs",
    "fingerprint",
    "repeat_count",
];

/// One exported line: the stored row with the level by name and the timestamp in RFC 3339.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportRow {
    pub id: i64,
    pub ts: chrono::DateTime<chrono::Utc>,
    pub level: String,
    pub service: String,
    pub host: Option<String>,
    pub message: String,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub request_id: Option<String>,
    pub user_id: Option<String>,
    pub route: Option<String>,
    pub method: Option<String>,
    pub status: Option<i16>,
    pub duration_ms: Option<f64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub error_type: Option<String>,
    pub attrs: Option<serde_json::Value>,
    pub fingerprint: Option<String>,
    pub repeat_count: i32,
}

impl From<LogLine> for ExportRow {
    fn from(l: LogLine) -> Self {
        ExportRow {
            id: l.id,
            ts: l.ts,
            level: l.level.name().to_string(),
            service: l.service,
            host: l.host,
            message: l.message,
            trace_id: l.trace_id,
            span_id: l.span_id,
            request_id: l.request_id,
            user_id: l.user_id,
            route: l.route,
            method: l.method,
            status: l.status,
            duration_ms: l.duration_ms,
            ip: l.ip,
            user_agent: l.user_agent,
            error_type: l.error_type,
            attrs: l.attrs,
            fingerprint: l.fingerprint,
            repeat_count: l.repeat_count,
        }
    }
}

/// Characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A text cell as a spreadsheet may safely open it: a leading `'` when the cell would start a
/// formula, which spreadsheets show as text and do not evaluate.
fn guard_formula(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(FORMULA_START) {
        std::borrow::Cow::Owned(format!("'{s}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// A CSV field: quoted when it holds a comma, quote, CR or LF (RFC 4180). NULL is empty.
fn csv_field(out: &mut (impl Write + ?Sized), s: &str) -> io::Result<()> {
    if s.contains([',', '"', '\n', '\r']) {
        out.write_all(b"\"")?;
        out.write_all(s.replace('"', "\"\"").as_bytes())?;
        out.write_all(b"\"")
    } else {
        out.write_all(s.as_bytes())
    }
}

fn write_csv_row(out: &mut (impl Write + ?Sized), r: &ExportRow, mode: Mode) -> io::Result<()> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    // (value, is text from the data): numbers and times we format cannot start a formula.
    let fields = [
        (r.id.to_string(), false),
        (
            r.ts.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            false,
        ),
        (r.level.clone(), true),
        (r.service.clone(), true),
        (opt(&r.host), true),
        (r.message.clone(), true),
        (opt(&r.trace_id), true),
        (opt(&r.span_id), true),
        (opt(&r.request_id), true),
        (opt(&r.user_id), true),
        (opt(&r.route), true),
        (opt(&r.method), true),
        (r.status.map(|s| s.to_string()).unwrap_or_default(), false),
        (
            r.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
            false,
        ),
        (opt(&r.ip), true),
        (opt(&r.user_agent), true),
        (opt(&r.error_type), true),
        (
            r.attrs.as_ref().map(|a| a.to_string()).unwrap_or_default(),
            true,
        ),
        (opt(&r.fingerprint), true),
        (r.repeat_count.to_string(), false),
    ];
    for (i, (f, text)) in fields.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        if *text && mode == Mode::Escaped {
            csv_field(out, &guard_formula(f))?;
        } else {
            csv_field(out, f)?;
        }
    }
    out.write_all(b"\r\n")
}

/// Text from the data for one line of the text format: escaped as on screen, or raw with only
/// its line breaks spelled out (one record, one line).
fn text_value(s: &str, mode: Mode) -> std::borrow::Cow<'_, str> {
    match mode {
        Mode::Escaped => sanitize(s),
        Mode::Raw if s.contains(['\n', '\r']) => {
            std::borrow::Cow::Owned(s.replace('\n', "\\n").replace('\r', "\\r"))
        }
        Mode::Raw => std::borrow::Cow::Borrowed(s),
    }
}

fn write_text_row(out: &mut (impl Write + ?Sized), r: &ExportRow, mode: Mode) -> io::Result<()> {
    write!(
        out,
        "{} {:<5} {} {}",
        r.ts.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        text_value(&r.level, mode),
        text_value(&r.service, mode),
        text_value(&r.message, mode)
    )?;
    if let Some(t) = &r.trace_id {
        write!(out, " trace={}", text_value(t, mode))?;
    }
    out.write_all(b"\n")
}

/// Writes every line `filter` selects to `out`, escaped (`Mode::Escaped`); `progress` gets the
/// running row count after each batch. Returns the number of rows written.
pub async fn export(
    pool: &PgPool,
    filter: &Filter,
    format: Format,
    out: &mut (dyn Write + Send),
    progress: impl FnMut(u64) + Send,
) -> Result<u64> {
    export_with(pool, filter, format, Mode::Escaped, out, progress).await
}

/// `export` in the given mode.
pub async fn export_with(
    pool: &PgPool,
    filter: &Filter,
    format: Format,
    mode: Mode,
    out: &mut (dyn Write + Send),
    mut progress: impl FnMut(u64) + Send,
) -> Result<u64> {
    let mut written = 0u64;
    match format {
        Format::Csv => out.write_all((CSV_COLUMNS.join(",") + "\r\n").as_bytes())?,
        Format::Json => out.write_all(b"[")?,
        Format::Text => {}
    }
    for_each_batch(pool, filter, 2000, |batch| -> Result<()> {
        for line in batch {
            let row = ExportRow::from(line);
            match format {
                Format::Csv => write_csv_row(out, &row, mode)?,
                Format::Json => {
                    out.write_all(if written == 0 { b"\n" } else { b",\n" })?;
                    // As an io::Error, so a closed stdout is still recognised as one.
                    serde_json::to_writer(&mut *out, &row).map_err(io::Error::from)?;
                }
                Format::Text => write_text_row(out, &row, mode)?,
            }
            written += 1;
        }
        progress(written);
        Ok(())
    })
    .await
    // A regular expression PostgreSQL refuses is the filter's mistake, said as such. Exports
    // are not held to `filter::REGEX_BUDGET`: they read all they are asked for, as they
    // always have (no statement timeout), and Ctrl-C stops them.
    .map_err(|e| {
        match e
            .downcast_ref::<sqlx::Error>()
            .and_then(|db| crate::filter::explain_error(filter, db))
        {
            Some(msg) => anyhow::anyhow!(msg),
            None => e.context("reading the lines to export"),
        }
    })?;
    if format == Format::Json {
        out.write_all(b"\n]\n")?;
    }
    out.flush()?;
    Ok(written)
}

/// A file name for an export made now: `opsdash-logs-20261121-221500.csv` in `dir`.
pub fn default_path(dir: &Path, format: Format) -> PathBuf {
    dir.join(format!(
        "opsdash-logs-{}.{}",
        chrono::Utc::now().format("%Y%m%d-%H%M%S"),
        format.extension()
    ))
}

/// Opens the export target: refuses an existing file unless `force`.
pub fn create_file(path: &Path, force: bool) -> Result<File> {
    let mut o = OpenOptions::new();
    o.write(true);
    if force {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    o.open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "{} already exists (use --force to overwrite, or choose another --output)",
                path.display()
            )
        } else {
            anyhow::anyhow!("cannot write {}: {e}", path.display())
        }
    })
}

/// Exports into a file (never overwriting one unless `force`); a failed export removes its
/// partial file so nothing half-written is left looking complete.
pub async fn export_to_file(
    pool: &PgPool,
    filter: &Filter,
    format: Format,
    path: &Path,
    force: bool,
    progress: impl FnMut(u64) + Send,
) -> Result<u64> {
    export_to_file_with(pool, filter, format, Mode::Escaped, path, force, progress).await
}

/// `export_to_file` in the given mode.
pub async fn export_to_file_with(
    pool: &PgPool,
    filter: &Filter,
    format: Format,
    mode: Mode,
    path: &Path,
    force: bool,
    progress: impl FnMut(u64) + Send,
) -> Result<u64> {
    let file = create_file(path, force)?;
    let mut out = BufWriter::with_capacity(1 << 16, file);
    match export_with(pool, filter, format, mode, &mut out, progress).await {
        Ok(n) => {
            out.into_inner()
                .map_err(|e| anyhow::anyhow!("writing {}: {}", path.display(), e.error()))?
                .sync_all()
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(n)
        }
        Err(e) => {
            drop(out);
            let _ = std::fs::remove_file(path);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An export is the stored row: its columns are the id plus what ingest writes, in order, so
    /// a column added to `log_event` cannot silently go missing from exports.
    #[test]
    fn export_columns_are_the_id_and_the_ingested_columns() {
        assert_eq!(CSV_COLUMNS[0], "id");
        assert_eq!(&CSV_COLUMNS[1..], crate::ingest::writer::LOG_COLUMNS);
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        let mut v = Vec::new();
        csv_field(&mut v, "plain").unwrap();
        v.push(b'|');
        csv_field(&mut v, "a,\"b\"\nc").unwrap();
        assert_eq!(String::from_utf8(v).unwrap(), "plain|\"a,\"\"b\"\"\nc\"");
    }

    fn row(message: &str) -> ExportRow {
        ExportRow {
            id: 7,
            ts: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            level: "error".into(),
            service: "api".into(),
            host: None,
            message: message.into(),
            trace_id: None,
            span_id: None,
            request_id: None,
            user_id: Some("@admin".into()),
            route: None,
            method: None,
            status: Some(500),
            duration_ms: Some(-1.5),
            ip: None,
            user_agent: None,
            error_type: None,
            attrs: None,
            fingerprint: None,
            repeat_count: 1,
        }
    }

    #[test]
    fn csv_text_cells_that_would_be_formulas_get_a_leading_quote() {
        for (cell, want) in [
            (
                "=HYPERLINK(\"http://x\")",
                "\"'=HYPERLINK(\"\"http://x\"\")\"",
            ),
            ("+1+2", "'+1+2"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "\"'\rx\""),
            ("a=1", "a=1"),
        ] {
            let mut v = Vec::new();
            write_csv_row(&mut v, &row(cell), Mode::Escaped).unwrap();
            let line = String::from_utf8(v).unwrap();
            let fields: Vec<&str> = line.splitn(7, ',').collect();
            assert!(fields[5].starts_with(want), "{cell:?}: {line:?}");
            // Numbers we format are left alone; text from the data is guarded everywhere.
            assert!(line.contains(",'@admin,"), "{line:?}");
            assert!(line.contains(",500,-1.5,"), "{line:?}");
            let mut raw = Vec::new();
            write_csv_row(&mut raw, &row(cell), Mode::Raw).unwrap();
            assert!(
                !String::from_utf8(raw).unwrap().contains('\''),
                "raw is as stored"
            );
        }
    }

    #[test]
    fn a_text_record_is_one_line_in_both_modes() {
        let hostile = "a\nforged 2026-01-01T00:00:00.000Z error api root\r\n\x1b]52;c;ZXZpbA==\x07";
        let mut v = Vec::new();
        write_text_row(&mut v, &row(hostile), Mode::Escaped).unwrap();
        let esc = String::from_utf8(v).unwrap();
        assert_eq!(esc.matches('\n').count(), 1, "{esc:?}");
        assert!(!esc.contains(['\x1b', '\x07', '\r']), "{esc:?}");
        assert!(
            esc.contains("a^Jforged") && esc.contains("^[]52;c;"),
            "{esc:?}"
        );
        let mut v = Vec::new();
        write_text_row(&mut v, &row(hostile), Mode::Raw).unwrap();
        let raw = String::from_utf8(v).unwrap();
        assert_eq!(raw.matches('\n').count(), 1, "{raw:?}");
        assert!(
            raw.contains("a\\nforged") && raw.contains("\x1b]52;c;"),
            "{raw:?}"
        );
    }
}
