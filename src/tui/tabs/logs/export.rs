//! The export component (`x`, `:export`): writes a file on its own task (an export may take
//! longer than a panel query's timeout), counts its rows as they go and says how it ended.
//! Two kinds: the log lines the header counts (through `crate::export`), and the audit rows
//! the audit view's filter line selects (all of them, paged as `opsdash audit search` pages,
//! one JSON object a line as `--format json` writes, or its text lines).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;
use crate::filter::audit::AuditFilter;
use crate::query::audit::AuditKey;

/// One running export.
struct Running {
    path: PathBuf,
    /// What is being written ("lines", "audit rows"), for the note line.
    noun: &'static str,
    rows: Arc<AtomicU64>,
    done: oneshot::Receiver<Result<u64, String>>,
}

/// At most one export at a time; the note line shows its progress.
#[derive(Default)]
pub(super) struct Exporter {
    running: Option<Running>,
}

/// The log export's format, from the file's extension (CSV unless `.json`, `.log`, `.txt`).
fn log_format(path: Option<&Path>) -> Format {
    path.and_then(|p| p.extension())
        .and_then(|e| e.to_str())
        .map(|e| match e {
            "json" => Format::Json,
            "log" | "txt" => Format::Text,
            _ => Format::Csv,
        })
        .unwrap_or(Format::Csv)
}

/// Rows per page read by the audit export.
const AUDIT_EXPORT_PAGE: i64 = 2000;

impl Exporter {
    pub(super) fn busy(&self) -> bool {
        self.running.is_some()
    }

    /// Starts `work` (given the row counter to advance) writing to `path`.
    fn start<F, Fut>(&mut self, path: PathBuf, noun: &'static str, work: F)
    where
        F: FnOnce(Arc<AtomicU64>) -> Fut,
        Fut: std::future::Future<Output = Result<u64, String>> + Send + 'static,
    {
        let rows = Arc::new(AtomicU64::new(0));
        let (tx, rx) = oneshot::channel();
        let fut = work(rows.clone());
        tokio::spawn(async move {
            let _ = tx.send(fut.await);
        });
        self.running = Some(Running {
            path,
            noun,
            rows,
            done: rx,
        });
    }

    /// Exports the log lines `filter` selects (the caller bounds it to the range).
    pub(super) fn start_logs(
        &mut self,
        f: Filter,
        path: Option<PathBuf>,
        force: bool,
        ctx: &TabCtx,
    ) {
        let format = log_format(path.as_deref());
        let path = path.unwrap_or_else(|| {
            crate::export::default_path(&std::env::current_dir().unwrap_or_default(), format)
        });
        let pool = ctx.db.write.clone();
        let target = path.clone();
        self.start(path, "lines", move |counter| async move {
            crate::export::export_to_file(&pool, &f, format, &target, force, |n| {
                counter.store(n, Ordering::Relaxed)
            })
            .await
            .map_err(|e| format!("{e:#}"))
        });
    }

    /// Exports every audit row `filter` selects, newest first: JSON lines (`.json`,
    /// `.jsonl`, the default) as `opsdash audit search --format json` prints them, or its text
    /// lines (`.log`, `.txt`), escaped.
    pub(super) fn start_audit(
        &mut self,
        filter: AuditFilter,
        path: Option<PathBuf>,
        force: bool,
        ctx: &TabCtx,
    ) {
        let text = path
            .as_deref()
            .and_then(|p| p.extension())
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "log" || e == "txt");
        let path = path.unwrap_or_else(|| {
            std::env::current_dir().unwrap_or_default().join(format!(
                "opsdash-audit-{}.jsonl",
                Utc::now().format("%Y%m%d-%H%M%S")
            ))
        });
        let pool = ctx.db.read.clone();
        let target = path.clone();
        self.start(path, "audit rows", move |counter| async move {
            export_audit(&pool, &filter, &target, force, text, &counter)
                .await
                .map_err(|e| format!("{e:#}"))
        });
    }

    /// Takes the outcome of a finished export: the note line's message, once.
    pub(super) fn poll(&mut self) -> Option<(String, Role)> {
        let ex = self.running.as_mut()?;
        let said = match ex.done.try_recv() {
            Ok(Ok(n)) => (
                format!("exported {n} {} to {}", ex.noun, ex.path.display()),
                Role::Ok,
            ),
            Ok(Err(e)) => (format!("export failed: {e}"), Role::Error),
            Err(oneshot::error::TryRecvError::Empty) => return None,
            Err(oneshot::error::TryRecvError::Closed) => ("export stopped".into(), Role::Error),
        };
        self.running = None;
        Some(said)
    }

    /// The note line while an export runs.
    pub(super) fn note(&self, theme: &Theme) -> Option<Line<'static>> {
        let ex = self.running.as_ref()?;
        Some(Line::from(Span::styled(
            format!(
                "exporting to {}: {} {}…",
                safe(&ex.path.display().to_string()),
                fmt_count(ex.rows.load(Ordering::Relaxed) as f64),
                ex.noun
            ),
            theme.style(Role::Accent),
        )))
    }
}

/// Writes the audit rows page by page (keyset on (ts, id), as the view pages); a failed export
/// removes its partial file, as the log export does.
async fn export_audit(
    pool: &sqlx::PgPool,
    filter: &AuditFilter,
    path: &Path,
    force: bool,
    text: bool,
    counter: &AtomicU64,
) -> anyhow::Result<u64> {
    let file = crate::export::create_file(path, force)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
    let r = async {
        let mut key = None;
        let mut written = 0u64;
        loop {
            let rows = crate::query::audit::search(pool, filter, key, AUDIT_EXPORT_PAGE).await?;
            for r in &rows {
                if text {
                    writeln!(out, "{}", audit_text_line(r))?;
                } else {
                    serde_json::to_writer(&mut out, r)?;
                    out.write_all(b"\n")?;
                }
            }
            written += rows.len() as u64;
            counter.store(written, Ordering::Relaxed);
            match rows.last() {
                Some(last) if rows.len() as i64 == AUDIT_EXPORT_PAGE => {
                    key = Some(AuditKey {
                        ts: last.ts,
                        id: last.id,
                    })
                }
                _ => break,
            }
        }
        out.flush()?;
        out.get_ref().sync_all()?;
        anyhow::Ok(written)
    }
    .await;
    if r.is_err() {
        let _ = std::fs::remove_file(path);
    }
    r
}

/// One audit row as `opsdash audit search` prints it: `time  actor  action  type/id  outcome`,
/// each value escaped, so one row is one line.
pub(super) fn audit_text_line(r: &AuditEvent) -> String {
    let resource = match (&r.resource_type, &r.resource_id) {
        (Some(t), Some(id)) => format!("{}/{}", safe(t), safe(id)),
        (Some(t), None) => safe(t),
        (None, Some(id)) => safe(id),
        (None, None) => "-".into(),
    };
    format!(
        "{}  {}  {}  {}  {}",
        r.ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        safe(&r.actor),
        safe(&r.action),
        resource,
        safe(&r.outcome)
    )
}

impl LogsTab {
    /// Exports what the header counts: the lines matching the filter inside the range, from
    /// the range's start at this instant on; the header's counts are read again with the same
    /// start so the two agree. In the audit view: the rows its filter line selects.
    pub(super) fn start_export(
        &mut self,
        path: Option<PathBuf>,
        force: bool,
        ctx: &TabCtx,
    ) -> Vec<Effect> {
        if self.export.busy() {
            self.message = Some(("an export is already running".into(), Role::Warn));
            return Vec::new();
        }
        if self.view == View::Audit {
            let f = self.audit.export_filter();
            self.export.start_audit(f, path, force, ctx);
            return Vec::new();
        }
        let start = self.history_range(ctx.now, ctx.range).0.from;
        let f = match in_range(&self.filter, start) {
            Ok(f) => f,
            Err(e) => {
                self.message = Some((format!("export: {e}"), Role::Error));
                return Vec::new();
            }
        };
        self.export.start_logs(f, path, force, ctx);
        vec![self.stats_since(ctx, start)]
    }

    pub(super) fn poll_export(&mut self) {
        if let Some(said) = self.export.poll() {
            self.message = Some(said);
        }
    }
}
