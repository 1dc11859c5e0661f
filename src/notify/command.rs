//! Command channel: runs a program with the Alertmanager-style JSON on stdin. Exit status 0
//! means delivered; anything else is retried. The message id is in `OPSDASH_WEBHOOK_ID` so the
//! program can drop duplicates. A command still running at the timeout is killed.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use super::{payload, Attempt};
use crate::alerts::ChannelConfig;
use crate::query::outbox::Claimed;

pub async fn send(ch: &ChannelConfig, m: &Claimed) -> Attempt {
    let Some((program, args)) = ch.command.split_first() else {
        return Attempt::Permanent {
            status: None,
            error: "channel has no command".into(),
        };
    };
    let body = serde_json::to_vec(&payload::alertmanager(m, &ch.name)).unwrap_or_default();
    let child = tokio::process::Command::new(program)
        .args(args)
        .env("OPSDASH_WEBHOOK_ID", &m.idempotency_key)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // The caller's timeout drops this future: the child must not outlive it.
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return Attempt::Permanent {
                status: None,
                error: format!("cannot run {program:?}: {e}"),
            }
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A program that exits without reading its input is its own business.
        let _ = stdin.write_all(&body).await;
    }
    match child.wait_with_output().await {
        Ok(out) if out.status.success() => Attempt::Delivered { status: None },
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: String = err
                .trim()
                .chars()
                .rev()
                .take(200)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            Attempt::Transient {
                status: out.status.code(),
                error: format!(
                    "command exited with {}: {}",
                    out.status,
                    crate::sanitize::clean(&tail)
                ),
                retry_after: None,
            }
        }
        Err(e) => Attempt::Transient {
            status: None,
            error: format!("waiting for the command: {e}"),
            retry_after: None,
        },
    }
}
