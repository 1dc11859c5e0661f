//! What `opsdash serve` and `opsdash worker` share as long-running services: where their log
//! goes (stderr for journald, or `--log-file`), the signals they obey (SIGTERM/Ctrl-C stop,
//! SIGHUP reloads) and systemd's notify protocol (READY, WATCHDOG, STOPPING, RELOADING).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use sd_notify::NotifyState;
use tokio::signal::unix::{signal, SignalKind};

/// Sets up the log: filter from OPSDASH_LOG, else RUST_LOG, else `default`; written to `file`
/// (appended) when given, else stderr.
pub fn init_log(default: &str, file: Option<&Path>) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OPSDASH_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_env("RUST_LOG"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    match file {
        Some(path) => {
            let f = open_log(path)?;
            let _ = builder.with_writer(std::sync::Mutex::new(f)).try_init();
        }
        None => {
            let _ = builder.with_writer(std::io::stderr).try_init();
        }
    }
    Ok(())
}

/// Opens `path` for appending (making its directory), readable by its owner only: a log may
/// name hosts and users.
pub fn open_log(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("log file {}", dir.display()))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("log file {}", path.display()))
}

/// Where the dashboard writes its own and its in-process worker's diagnostics (it owns the
/// terminal): `$XDG_STATE_HOME/opsdash/dashboard.log`, else `~/.local/state/opsdash/...`.
pub fn dashboard_log_path() -> Option<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "opsdash")?;
    let dir = dirs
        .state_dir()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dirs.data_local_dir().to_path_buf());
    Some(dir.join("dashboard.log"))
}

/// Tells systemd (when NOTIFY_SOCKET is set) something about this service; failures are
/// logged, never fatal.
pub fn notify(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!("telling systemd: {e}");
    }
}

/// Pings systemd's watchdog at half its interval while the runtime runs (WatchdogSec=);
/// nothing when the unit has no watchdog.
pub fn spawn_watchdog() {
    let Some(every) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (every / 2).max(Duration::from_millis(100));
    tokio::spawn(async move {
        loop {
            notify(&[NotifyState::Watchdog]);
            tokio::time::sleep(every).await;
        }
    });
}

/// Signals a service obeys.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

pub enum Event {
    Stop,
    Reload,
}

impl Signals {
    /// Takes SIGTERM, SIGINT and SIGHUP over from their default actions.
    pub fn new() -> Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("SIGTERM handler")?,
            hup: signal(SignalKind::hangup()).context("SIGHUP handler")?,
        })
    }

    pub async fn next(&mut self) -> Event {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => Event::Stop,
            _ = self.term.recv() => Event::Stop,
            _ = self.hup.recv() => Event::Reload,
        }
    }
}
