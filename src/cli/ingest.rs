//! `opsdash ingest`: reads log lines from files or standard input into the database; its
//! arguments, its signal handling and its exit status.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

use crate::config::Config;
use crate::ingest::follow::{is_pattern, FollowSet};
use crate::ingest::layout::Layout;
use crate::ingest::writer::Committed;
use crate::ingest::{self, AtEof, Format, Options, Pipeline};

/// Exit status when some lines were rejected (the good ones are stored).
pub const EXIT_REJECTED: u8 = 3;
/// Exit status when more than `--max-rejects` lines were rejected and reading stopped early.
pub const EXIT_TOO_MANY_REJECTS: u8 = 4;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit status:
  0        every line read was stored (blank lines are skipped)
  1        an error: a file cannot be read, the database cannot be written
  2        bad arguments
  3        some lines were rejected (each is reported on stderr; the good ones are stored)
  4        more than --max-rejects lines were rejected: reading stopped early (what was read
           before is stored)
  128+N    aborted by a second signal N (INT 130, TERM 143, HUP 129)

Signals: INT (Ctrl-C), TERM and HUP stop reading, commit what was read, print the summary and
exit as above; a second signal aborts at once and says how many lines read were not committed.")]
pub struct IngestArgs {
    /// Files to read, or glob patterns (quoted: '/var/log/app/*.log'); `-` or nothing reads
    /// standard input.
    #[arg(value_name = "FILE|GLOB|-")]
    pub files: Vec<PathBuf>,
    /// Line format: auto, json, logfmt, nginx, apache, postgres, journald, docker, cri, syslog,
    /// or a custom access-log layout `nginx:'<log_format>'` / `apache:'<LogFormat>'` (lines it
    /// does not match are rejected; `ingest.access_format` in the config gives one to auto,
    /// nginx and apache). `auto` decides per line: journald JSON, Docker json-file, CRI and
    /// syslog envelopes, whose text is then detected in turn; JSON, access log, logfmt,
    /// PostgreSQL's log, else plain text with its leading time and level. Times written without
    /// a zone (syslog's, ISO times without an offset) are read in `ingest.timezone` (UTC by
    /// default; `local`, an IANA name such as Europe/Berlin, or an offset such as +02:00); the
    /// summary line says so when it happened.
    #[arg(long, value_parser = parse_format, default_value = "auto", value_name = "FORMAT")]
    pub format: FormatArg,
    /// Service of every line: given, it wins over the line's own `service`, `app`, `logger`,
    /// `name` or `component` field (kept in attrs under its name). Not given, lines that name
    /// none get the file name without its extension.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Hold the days of rows older than the retention period (`retention.*.keep_days`) from
    /// retention for DURATION (`--keep=90d`; default 30d), e.g. a one-off import of old logs; the holds are
    /// listed by `opsdash retention status`. Without it, ingest says how many rows the next
    /// retention run will drop.
    #[arg(
        long,
        value_name = "DURATION",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "30d"
    )]
    pub keep: Option<String>,
    /// Keep reading as the input grows. Files are followed by name like `tail -F`: a rotation
    /// (rename and create, copytruncate, delete and create again) is noticed and said on
    /// stderr, the old file is read to its end first, and files new to a glob are picked up.
    /// The read position of each regular file is saved with the rows it covers, so a restart
    /// (even after `kill -9`) resumes exactly where the last commit ended: no line twice, none
    /// missed. Standard input and pipes have no position to save: they are read as a stream
    /// (`tail -F app.log | opsdash ingest --follow`) and a restart cannot resume them.
    /// Rows are written at least every `ingest.flush_interval_ms`.
    #[arg(long)]
    pub follow: bool,
    /// Stop reading once more than N lines were rejected (exit status 4); 0 stops at the
    /// first bad line. Default: no limit.
    #[arg(long, value_name = "N")]
    pub max_rejects: Option<u64>,
    /// What the lines are: `auto` stores log rows (and request, query and audit rows where a
    /// line is one); `audit` stores every line as an audit event only (a JSON line with an
    /// action and an actor, see `[ingest.audit]`, or an sshd login line) and rejects the rest.
    #[arg(long, value_enum, default_value_t = Kind::Auto)]
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Auto,
    Audit,
}

/// `--format`: a named format, or a custom access-log layout.
#[derive(Debug, Clone)]
pub struct FormatArg {
    pub format: Format,
    pub layout: Option<Arc<Layout>>,
}

fn parse_format(s: &str) -> Result<FormatArg, String> {
    if s.starts_with("nginx:") || s.starts_with("apache:") {
        let layout = Layout::parse_spec(s)?;
        return Ok(FormatArg {
            format: if s.starts_with("nginx:") {
                Format::Nginx
            } else {
                Format::Apache
            },
            layout: Some(Arc::new(layout)),
        });
    }
    use clap::ValueEnum;
    Format::from_str(s, true)
        .map(|format| FormatArg { format, layout: None })
        .map_err(|_| {
            format!(
                "unknown format {s:?} (auto, json, logfmt, nginx, apache, postgres, journald, docker, cri, syslog, nginx:'<log_format>', apache:'<LogFormat>')"
            )
        })
}

type Signals = [tokio::signal::unix::Signal; 3];

/// The next of INT, TERM, HUP: its number and name.
async fn next_signal(s: &mut Signals) -> (i32, &'static str) {
    let [int, term, hup] = s;
    tokio::select! {
        _ = int.recv() => (libc::SIGINT, "INT"),
        _ = term.recv() => (libc::SIGTERM, "TERM"),
        _ = hup.recv() => (libc::SIGHUP, "HUP"),
    }
}

/// Handles INT, TERM and HUP: the first one resolves the receiver (stop reading, commit,
/// report); a second one ends the process at once, saying how many lines read were not
/// committed. Installed before anything else, so no signal finds the default action (death).
fn handle_signals(
    committed: Arc<std::sync::OnceLock<Arc<Committed>>>,
    resumable: bool,
) -> Result<oneshot::Receiver<()>> {
    let install = |kind: SignalKind, name: &str| {
        signal(kind).with_context(|| format!("installing the SIG{name} handler"))
    };
    let mut signals: Signals = [
        install(SignalKind::interrupt(), "INT")?,
        install(SignalKind::terminate(), "TERM")?,
        install(SignalKind::hangup(), "HUP")?,
    ];
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (_, name) = next_signal(&mut signals).await;
        eprintln!(
            "opsdash ingest: SIG{name}: stopping; committing what was read (a second signal aborts)"
        );
        let _ = tx.send(());
        let (num, name) = next_signal(&mut signals).await;
        let lost = committed.get().map_or(0, |c| {
            c.read
                .load(Ordering::Relaxed)
                .saturating_sub(c.lines.load(Ordering::Relaxed))
        });
        let then = if resumable {
            "they are read again from the saved position next time"
        } else {
            "they are lost"
        };
        eprintln!(
            "opsdash ingest: second signal (SIG{name}): aborted; {lost} lines read were not committed ({then})"
        );
        std::process::exit(128 + num);
    });
    Ok(rx)
}

pub fn run(cfg: &Config, args: IngestArgs) -> Result<ExitCode> {
    let files: Vec<PathBuf> = args
        .files
        .into_iter()
        .filter(|f| f.as_os_str() != "-")
        .collect();
    let source = if files.is_empty() {
        "stdin".to_string()
    } else {
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let texts: Vec<String> = files
        .iter()
        .map(|f| f.to_string_lossy().to_string())
        .collect();
    // One named file that is not a regular one (a FIFO, /dev/stdin) is read as a stream.
    let single_stream = files.len() == 1
        && !is_pattern(&texts[0])
        && std::fs::metadata(&files[0]).is_ok_and(|m| !m.is_file());
    let single_once = files.len() == 1 && !args.follow && !is_pattern(&texts[0]);
    let force_service = args.service.is_some();
    let keep_until = match &args.keep {
        Some(d) => {
            let d = humantime::parse_duration(d)
                .with_context(|| format!("--keep {d:?}: expected a duration such as 30d"))?;
            let d = chrono::Duration::from_std(d).context("--keep: duration too long")?;
            let until = chrono::Utc::now().checked_add_signed(d);
            Some(until.context("--keep: duration too long")?)
        }
        None => None,
    };
    let service = args.service.clone().unwrap_or_else(|| {
        files
            .first()
            .and_then(|f| f.file_stem())
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default()
    });
    let layout = match (&args.format.layout, args.format.format) {
        (Some(l), _) => Some(l.clone()),
        (None, Format::Auto | Format::Nginx | Format::Apache)
            if !cfg.ingest.access_format.is_empty() =>
        {
            Some(Arc::new(
                Layout::parse_spec(&cfg.ingest.access_format)
                    .map_err(|e| anyhow::anyhow!("ingest.access_format: {e}"))?,
            ))
        }
        _ => None,
    };
    let opts = Options {
        format: args.format.format,
        layout,
        service,
        source,
        print_rejects: true,
        force_service,
        log_keep_days: cfg.retention.log_event.keep_days,
        request_keep_days: cfg.retention.request_log.keep_days,
        log_compact_days: cfg.retention.log_non_error_keep_days,
        keep_until,
        audit_only: args.kind == Kind::Audit,
        collect_rejects: false,
        // Rides out a database restart (the writer's own ~20 s of attempts).
        write_retry: None,
    };
    let resumable = args.follow && !files.is_empty() && !single_stream;
    let committed = Arc::new(std::sync::OnceLock::new());
    let rt = super::runtime()?;
    let summary = rt.block_on(async {
        let first_signal = handle_signals(committed.clone(), resumable)?;
        let stop = async {
            if first_signal.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let db = crate::db::Db::open(cfg).await?;
        db.access.check_ingest()?;
        let saved = if resumable {
            crate::query::checkpoint::load_all(&db.write).await?
        } else {
            Vec::new()
        };
        let pipeline = Pipeline::new(db, &cfg.ingest, opts)?;
        let _ = committed.set(pipeline.committed());
        let summary = if files.is_empty() {
            ingest::run_stream(
                tokio::io::stdin(),
                pipeline,
                AtEof::Stop,
                stop,
                args.max_rejects,
            )
            .await
        } else if single_stream || single_once {
            let path = &files[0];
            let f = tokio::fs::File::open(path)
                .await
                .with_context(|| format!("opening {}", path.display()))?;
            ingest::run_stream(f, pipeline, AtEof::Stop, stop, args.max_rejects).await
        } else {
            let set = FollowSet::new(&texts, saved, args.service.clone(), args.follow)?;
            ingest::run_files(set, pipeline, args.follow, stop, args.max_rejects).await
        };
        anyhow::Ok(summary)
    });
    // A read of standard input may still be pending in a blocking thread: do not wait for it.
    rt.shutdown_background();
    let summary = summary?;
    eprintln!("{}", summary.line());
    if let Some(old) = summary.retention_line() {
        eprintln!("{old}");
    }
    if let Some(e) = &summary.error {
        anyhow::bail!("{e}");
    }
    if let Some(max) = args.max_rejects.filter(|&m| summary.rejected > m) {
        eprintln!("opsdash ingest: stopped early: more than {max} lines rejected (--max-rejects)");
        return Ok(ExitCode::from(EXIT_TOO_MANY_REJECTS));
    }
    if summary.rejected > 0 {
        if summary.rows() == 0 {
            eprintln!("opsdash ingest: nothing stored: every line was rejected");
        }
        return Ok(ExitCode::from(EXIT_REJECTED));
    }
    Ok(ExitCode::SUCCESS)
}
