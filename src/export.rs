//! Exports the log lines a filter selects as CSV, JSON or plain text, streaming (constant
//! memory whatever the size). Used by `opsdash export` and by the Logs tab's export prompt.
//!
//! CSV and JSON carry the data exactly (a round trip gives the same rows); the text format is
//! for reading and is sanitized like the screen, since it is likely to be `cat` to a terminal.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::filter::Filter;
use crate::model::Level;
use crate::query::logs::{for_each_batch, LogLine};
use crate::sanitize::sanitize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
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
            level: Level::from_i16(l.level).name().to_string(),
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

fn write_csv_row(out: &mut (impl Write + ?Sized), r: &ExportRow) -> io::Result<()> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let fields = [
        r.id.to_string(),
        r.ts.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        r.level.clone(),
        r.service.clone(),
        opt(&r.host),
        r.message.clone(),
        opt(&r.trace_id),
        opt(&r.span_id),
        opt(&r.request_id),
        opt(&r.user_id),
        opt(&r.route),
        opt(&r.method),
        r.status.map(|s| s.to_string()).unwrap_or_default(),
        r.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
        opt(&r.ip),
        opt(&r.user_agent),
        opt(&r.error_type),
        r.attrs.as_ref().map(|a| a.to_string()).unwrap_or_default(),
        opt(&r.fingerprint),
        r.repeat_count.to_string(),
    ];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        csv_field(out, f)?;
    }
    out.write_all(b"\r\n")
}

fn write_text_row(out: &mut (impl Write + ?Sized), r: &ExportRow) -> io::Result<()> {
    write!(
        out,
        "{} {:<5} {} {}",
        r.ts.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        r.level,
        sanitize(&r.service),
        sanitize(&r.message)
    )?;
    if let Some(t) = &r.trace_id {
        write!(out, " trace={}", sanitize(t))?;
    }
    out.write_all(b"\n")
}

/// Writes every line `filter` selects to `out`; `progress` gets the running row count after
/// each batch. Returns the number of rows written.
pub async fn export(
    pool: &PgPool,
    filter: &Filter,
    format: Format,
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
                Format::Csv => write_csv_row(out, &row)?,
                Format::Json => {
                    out.write_all(if written == 0 { b"\n" } else { b",\n" })?;
                    serde_json::to_writer(&mut *out, &row)?;
                }
                Format::Text => write_text_row(out, &row)?,
            }
            written += 1;
        }
        progress(written);
        Ok(())
    })
    .await
    .context("reading the lines to export")?;
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
    let file = create_file(path, force)?;
    let mut out = BufWriter::with_capacity(1 << 16, file);
    match export(pool, filter, format, &mut out, progress).await {
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
}
