//! Export of the lines the header counts (`x`, `:export`): started as a task, polled on ticks.

use super::*;

pub(super) struct Export {
    pub(super) path: std::path::PathBuf,
    pub(super) rows: Arc<AtomicU64>,
    pub(super) done: oneshot::Receiver<Result<u64, String>>,
}

impl LogsTab {
    /// Exports what the header counts: the lines matching the filter inside the range, from
    /// the range's start at this instant on; the header's counts are read again with the same
    /// start so the two agree.
    pub(super) fn start_export(
        &mut self,
        path: Option<std::path::PathBuf>,
        force: bool,
        ctx: &TabCtx,
    ) -> Vec<Effect> {
        if self.export.is_some() {
            self.message = Some(("an export is already running".into(), Role::Warn));
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
        let format = path
            .as_ref()
            .and_then(|p| p.extension())
            .and_then(|e| e.to_str())
            .map(|e| match e {
                "json" => Format::Json,
                "log" | "txt" => Format::Text,
                _ => Format::Csv,
            })
            .unwrap_or(Format::Csv);
        let path = path.unwrap_or_else(|| {
            crate::export::default_path(&std::env::current_dir().unwrap_or_default(), format)
        });
        let rows = Arc::new(AtomicU64::new(0));
        let (tx, rx) = oneshot::channel();
        let pool = ctx.db.write.clone();
        let counter = rows.clone();
        let target = path.clone();
        // Not a panel query: an export may take longer than the query timeout.
        tokio::spawn(async move {
            let r = crate::export::export_to_file(&pool, &f, format, &target, force, |n| {
                counter.store(n, Ordering::Relaxed)
            })
            .await
            .map_err(|e| format!("{e:#}"));
            let _ = tx.send(r);
        });
        self.export = Some(Export {
            path,
            rows,
            done: rx,
        });
        vec![self.stats_since(ctx, start)]
    }

    pub(super) fn poll_export(&mut self) {
        let Some(ex) = &mut self.export else {
            return;
        };
        match ex.done.try_recv() {
            Ok(Ok(n)) => {
                self.message = Some((
                    format!("exported {n} lines to {}", ex.path.display()),
                    Role::Ok,
                ));
                self.export = None;
            }
            Ok(Err(e)) => {
                self.message = Some((format!("export failed: {e}"), Role::Error));
                self.export = None;
            }
            Err(oneshot::error::TryRecvError::Empty) => {}
            Err(oneshot::error::TryRecvError::Closed) => {
                self.message = Some(("export stopped".into(), Role::Error));
                self.export = None;
            }
        }
    }
}
