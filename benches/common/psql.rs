//! psql against a bench's own database: run one statement, empty the log tables between runs,
//! count the stored log rows. Shared by the ingest and serve benches.

use std::process::Command;

use anyhow::{bail, Context, Result};

pub fn psql(url: &str, sql: &str) -> Result<String> {
    let out = Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .context("running psql")?;
    if !out.status.success() {
        bail!("psql failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn reset(url: &str) -> Result<()> {
    psql(
        url,
        "TRUNCATE opsdash.log_event, opsdash.request_log, opsdash.error_group CASCADE; \
         TRUNCATE opsdash.ingest_stat; CHECKPOINT",
    )?;
    Ok(())
}

pub fn rows(url: &str) -> Result<u64> {
    Ok(psql(url, "SELECT count(*) FROM opsdash.log_event")?.parse()?)
}
