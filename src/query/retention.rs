//! SQL of retention: partition discovery, detach/drop, default-partition moves, log compaction,
//! anonymization, trimming of unpartitioned tables, the `retention_run` record and the status
//! rows the Health tab shows. The retention job (`worker::retention`) orders these steps.
//!
//! Table and partition names are never user text: tables come from a fixed list and partitions
//! from the catalog; `ident` still refuses anything but `[a-z0-9_]` before a name is put in SQL.
//!
//! Every retention step's SQL is kept in this one file so the order of the steps and the locks
//! each takes can be read together.

use anyhow::{bail, Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool, Row};

use crate::config::{RetentionConfig, PARTITIONED_TABLES};
use crate::db::Db;

/// `opsdash."name"` for a table or partition name made of `[a-z0-9_]` only.
pub fn ident(name: &str) -> Result<String> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        bail!("not a valid opsdash table name: {name:?}");
    }
    Ok(format!("opsdash.\"{name}\""))
}

/// Name of the daily partition of `table` for `day` (as `opsdash.ensure_partition` names it).
pub fn partition_name(table: &str, day: NaiveDate) -> String {
    format!("{table}_p{}", day.format("%Y%m%d"))
}

/// Splits `log_event_p20260101` into (`log_event`, day) when the parent is a partitioned table.
pub fn parse_partition_name(name: &str) -> Option<(&'static str, NaiveDate)> {
    let (parent, day) = name.rsplit_once("_p")?;
    let table = PARTITIONED_TABLES.iter().find(|t| **t == parent)?;
    if day.len() != 8 {
        return None;
    }
    let day = NaiveDate::parse_from_str(day, "%Y%m%d").ok()?;
    Some((table, day))
}

/// Start (inclusive) and end (exclusive) of a UTC day.
pub fn day_range(day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let lo = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    (lo, lo + chrono::Duration::days(1))
}

/// Time column a table is partitioned (or trimmed) on.
pub fn time_column(table: &str) -> &'static str {
    match table {
        t if t.starts_with("rollup_") => "bucket",
        _ => "ts",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionState {
    Attached,
    /// A `DETACH ... CONCURRENTLY` was interrupted: finish it with `DETACH ... FINALIZE`.
    DetachPending,
    /// Detached by an earlier run that stopped before the drop.
    Detached,
}

#[derive(Debug, Clone)]
pub struct Partition {
    pub table: &'static str,
    pub name: String,
    pub day: NaiveDate,
    pub state: PartitionState,
}

/// Every daily partition of the opsdash partitioned tables, attached or left detached.
pub async fn partitions(pool: &PgPool) -> Result<Vec<Partition>> {
    let rows = sqlx::query(
        "SELECT c.relname::text AS name, i.inhrelid IS NOT NULL AS attached, \
                coalesce(i.inhdetachpending, false) AS pending \
           FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'opsdash' \
           LEFT JOIN pg_inherits i ON i.inhrelid = c.oid \
          WHERE c.relkind = 'r' AND c.relname ~ '_p[0-9]{8}$' \
          ORDER BY c.relname",
    )
    .fetch_all(pool)
    .await
    .context("listing partitions")?;
    let mut out = Vec::new();
    for r in rows {
        let name: String = r.get("name");
        let Some((table, day)) = parse_partition_name(&name) else {
            continue;
        };
        let state = match (r.get::<bool, _>("attached"), r.get::<bool, _>("pending")) {
            (true, true) => PartitionState::DetachPending,
            (true, false) => PartitionState::Attached,
            (false, _) => PartitionState::Detached,
        };
        out.push(Partition {
            table,
            name,
            day,
            state,
        });
    }
    Ok(out)
}

/// Creates the daily partitions of every partitioned table for `from..=to`.
pub async fn ensure_partitions(pool: &PgPool, from: NaiveDate, to: NaiveDate) -> Result<i32> {
    sqlx::query_scalar("SELECT opsdash.ensure_partitions($1, $2)")
        .bind(from)
        .bind(to)
        .fetch_one(pool)
        .await
        .context("creating partitions ahead")
}

pub async fn ensure_partition(pool: &PgPool, table: &str, day: NaiveDate) -> Result<String> {
    sqlx::query_scalar("SELECT opsdash.ensure_partition($1, $2)")
        .bind(table)
        .bind(day)
        .fetch_one(pool)
        .await
        .with_context(|| format!("creating partition of {table} for {day}"))
}

/// Days that have rows in `table`'s DEFAULT partition, up to `last` (rows further in the future
/// wait there until their partition is made ahead).
pub async fn default_partition_days(
    pool: &PgPool,
    table: &str,
    last: NaiveDate,
    limit: i64,
) -> Result<Vec<NaiveDate>> {
    let col = time_column(table);
    let sql = format!(
        "SELECT DISTINCT ({col} AT TIME ZONE 'UTC')::date AS day FROM {} \
          WHERE {col} < $1 ORDER BY 1 LIMIT $2",
        ident(&format!("{table}_default"))?
    );
    let (end, _) = day_range(last + chrono::Duration::days(1));
    sqlx::query_scalar(&sql)
        .bind(end)
        .bind(limit)
        .fetch_all(pool)
        .await
        .with_context(|| format!("reading {table}'s default partition"))
}

pub async fn has_default_partition(pool: &PgPool, table: &str) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table p \
          WHERE p.partrelid = to_regclass('opsdash.' || $1) AND p.partdefid <> 0)",
    )
    .bind(table)
    .fetch_one(pool)
    .await?)
}

/// Whether a lock wait was cut off by `lock_timeout` (SQLSTATE 55P03): retry, nothing is wrong.
pub fn is_lock_timeout(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<sqlx::Error>()
            .and_then(|e| e.as_database_error())
            .and_then(|d| d.code())
            .is_some_and(|code| code == "55P03")
    })
}

/// Detaches a partition. With a DEFAULT partition PostgreSQL refuses `DETACH ... CONCURRENTLY`,
/// so the plain form runs under a short `lock_timeout`: its exclusive lock on the parent is held
/// for a catalog update only, and waiting for it never queues ingest longer than the timeout.
/// Without a default partition the concurrent form runs on an autocommit connection.
///
/// A role that does not own the tables (`owner` false: a granted opsdash_worker) may not run
/// DDL on them: it calls `opsdash.retention_detach` (migrations/0026), which detaches with the
/// owner's rights, in the plain form (a function cannot run the concurrent one).
pub async fn detach_partition(
    pool: &PgPool,
    p: &Partition,
    concurrently: bool,
    lock_timeout_ms: u64,
    owner: bool,
) -> Result<()> {
    let parent = ident(p.table)?;
    let part = ident(&p.name)?;
    if !owner {
        if p.state == PartitionState::Detached {
            return Ok(());
        }
        // As below, one round trip; the name is `[a-z0-9_]` only (checked by `ident`), so it
        // can stand as a literal.
        sqlx::raw_sql(&format!(
            "SET LOCAL lock_timeout = {}; SELECT opsdash.retention_detach('{}')",
            lock_timeout_ms.max(1),
            p.name
        ))
        .execute(pool)
        .await
        .with_context(|| format!("detaching {}", p.name))?;
        return Ok(());
    }
    match p.state {
        PartitionState::Detached => Ok(()),
        PartitionState::DetachPending => {
            sqlx::query(&format!(
                "ALTER TABLE {parent} DETACH PARTITION {part} FINALIZE"
            ))
            .execute(pool)
            .await
            .with_context(|| format!("finishing the detach of {}", p.name))?;
            Ok(())
        }
        PartitionState::Attached if concurrently => {
            // Outside any transaction block: a pooled connection in autocommit.
            sqlx::query(&format!(
                "ALTER TABLE {parent} DETACH PARTITION {part} CONCURRENTLY"
            ))
            .execute(pool)
            .await
            .with_context(|| format!("detaching {}", p.name))?;
            Ok(())
        }
        PartitionState::Attached => {
            // One round trip (a multi-statement query is one implicit transaction, rolled back
            // whole on error): the exclusive lock is held from the ALTER to the commit, and no
            // client latency sits between them.
            sqlx::raw_sql(&format!(
                "SET LOCAL lock_timeout = {}; ALTER TABLE {parent} DETACH PARTITION {part}",
                lock_timeout_ms.max(1)
            ))
            .execute(pool)
            .await
            .with_context(|| format!("detaching {}", p.name))?;
            Ok(())
        }
    }
}

/// Name a detached partition takes when it is handed to the background drop:
/// `request_log_p20260101_drop16384` (the partition's name, then its OID, so two incarnations of
/// one day never collide). The name frees the partition's own name at once (late rows for that
/// day get a new partition), and it is the mark the background drop looks for: a table is
/// renamed only after its archive, when configured, was verified.
pub fn pending_drop_name(partition: &str, relid: i64) -> String {
    format!("{partition}_drop{relid}")
}

/// The partition a pending-drop table was (`pending_drop_name` backwards): its table, name and
/// day.
pub fn parse_pending_drop_name(name: &str) -> Option<(&'static str, String, NaiveDate)> {
    let (partition, relid) = name.rsplit_once("_drop")?;
    if relid.is_empty() || !relid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (table, day) = parse_partition_name(partition)?;
    Some((table, partition.to_string(), day))
}

/// The end of a partition's drop step, in one transaction: the detached table is renamed to its
/// pending-drop name, its marks and hold are forgotten, and the step's run record is finished.
/// A crash before the commit leaves it detached under its own name (the next run redoes the
/// step); after it, the background drop (`drop_pending`) frees the storage. No lock on the
/// parent: the table is no longer a partition. Returns the pending-drop name.
///
/// The rename is `opsdash.retention_hand_off` (migrations/0026), for the owner and a granted
/// worker alike: it runs with the owner's rights and names the table `pending_drop_name`.
pub async fn hand_off(
    pool: &PgPool,
    p: &Partition,
    run: i64,
    outcome: &RunOutcome,
) -> Result<String> {
    ident(&p.name)?;
    let mut tx = pool.begin().await?;
    let pending: String = sqlx::query_scalar("SELECT opsdash.retention_hand_off($1)")
        .bind(&p.name)
        .fetch_one(&mut *tx)
        .await
        .with_context(|| format!("handing {} to the background drop", p.name))?;
    sqlx::query("DELETE FROM opsdash.partition_mark WHERE partition = $1")
        .bind(&p.name)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM opsdash.retention_hold WHERE partition = $1")
        .bind(&p.name)
        .execute(&mut *tx)
        .await?;
    run_finish(&mut *tx, run, outcome, None).await?;
    tx.commit()
        .await
        .with_context(|| format!("handing {} to the background drop", p.name))?;
    Ok(pending)
}

/// Tables handed to the background drop and not dropped yet (left by a run that stopped, or
/// waiting for this run's drop phase), oldest partition day first.
pub async fn pending_drops(pool: &PgPool) -> Result<Vec<String>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'opsdash' \
          WHERE c.relkind = 'r' AND c.relname ~ '_p[0-9]{8}_drop[0-9]+$' AND NOT c.relispartition \
          ORDER BY c.relname",
    )
    .fetch_all(pool)
    .await
    .context("listing tables pending their drop")?;
    Ok(names
        .into_iter()
        .filter(|n| parse_pending_drop_name(n).is_some())
        .collect())
}

/// Drops a table handed to the background drop. It is no partition any more, so this locks
/// only the table itself: ingest into the parent never waits for it, however long the file
/// system takes to free the blocks. Refuses any other name (and so does
/// `opsdash.retention_drop`, which drops with the owner's rights: migrations/0026).
pub async fn drop_pending(pool: &PgPool, name: &str) -> Result<()> {
    if parse_pending_drop_name(name).is_none() {
        bail!("{name} is not a table pending its drop");
    }
    sqlx::query("SELECT opsdash.retention_drop($1)")
        .bind(name)
        .execute(pool)
        .await
        .with_context(|| format!("dropping {name}"))?;
    Ok(())
}

/// OID of an opsdash table (identifies one incarnation of a partition name).
pub async fn relid(db: impl PgExecutor<'_>, name: &str) -> Result<i64> {
    sqlx::query_scalar::<_, Option<i64>>("SELECT to_regclass('opsdash.' || $1)::oid::bigint")
        .bind(name)
        .fetch_one(db)
        .await?
        .with_context(|| format!("{name} does not exist"))
}

/// Whether the archive with checksum `sha256` was restored into `partition` after the
/// partition's last successful drop (so its rows are there already).
pub async fn restored_since_last_drop(
    pool: &PgPool,
    partition: &str,
    sha256: &str,
) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM opsdash.retention_run r \
          WHERE r.action = 'restore' AND r.status = 'ok' AND r.partition = $1 AND r.sha256 = $2 \
            AND r.started_at > coalesce((SELECT max(d.started_at) FROM opsdash.retention_run d \
                 WHERE d.action = 'drop' AND d.status = 'ok' AND d.partition = $1), '-infinity'))",
    )
    .bind(partition)
    .bind(sha256)
    .fetch_one(pool)
    .await?)
}

pub async fn count_rows(pool: &PgPool, name: &str) -> Result<i64> {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {}", ident(name)?))
        .fetch_one(pool)
        .await
        .with_context(|| format!("counting rows of {name}"))
}

/// The planner's row estimate of a table (`pg_class.reltuples`, kept by ANALYZE and autovacuum);
/// None when it was never analyzed.
pub async fn estimated_rows(pool: &PgPool, name: &str) -> Result<Option<i64>> {
    let n: Option<f32> = sqlx::query_scalar(
        "SELECT reltuples FROM pg_class WHERE oid = to_regclass('opsdash.' || $1)",
    )
    .bind(name)
    .fetch_optional(pool)
    .await
    .with_context(|| format!("reading the row estimate of {name}"))?
    .flatten();
    Ok(n.filter(|n| *n >= 0.0).map(|n| n.round() as i64))
}

/// Column names of `table` in order (an archive records them so a restore survives later
/// migrations that add columns).
pub async fn columns(pool: &PgPool, table: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT attname::text FROM pg_attribute \
          WHERE attrelid = to_regclass('opsdash.' || $1) AND attnum > 0 AND NOT attisdropped \
          ORDER BY attnum",
    )
    .bind(table)
    .fetch_all(pool)
    .await?)
}

/// `COPY opsdash."partition" (cols) TO STDOUT` (text format).
pub fn copy_out_statement(partition: &str, columns: &[String]) -> Result<String> {
    Ok(format!(
        "COPY {} ({}) TO STDOUT",
        ident(partition)?,
        quoted_columns(columns)?
    ))
}

pub fn quoted_columns(columns: &[String]) -> Result<String> {
    let mut out = Vec::with_capacity(columns.len());
    for c in columns {
        if c.is_empty()
            || !c
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            bail!("unexpected column name {c:?}");
        }
        out.push(format!("\"{c}\""));
    }
    Ok(out.join(", "))
}

// ---------------------------------------------------------------------------------------------
// Holds and marks
// ---------------------------------------------------------------------------------------------

/// Partitions a restore asked to keep, with the time until which they are kept.
pub async fn holds(pool: &PgPool) -> Result<Vec<(String, DateTime<Utc>)>> {
    Ok(
        sqlx::query_as("SELECT partition, until FROM opsdash.retention_hold")
            .fetch_all(pool)
            .await?,
    )
}

/// One hold for `retention status`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Hold {
    pub partition: String,
    pub table_name: String,
    pub until: DateTime<Utc>,
    pub reason: String,
}

/// Every hold, oldest partition first.
pub async fn hold_list(pool: &PgPool) -> Result<Vec<Hold>> {
    sqlx::query_as(
        "SELECT partition, table_name, until, reason FROM opsdash.retention_hold \
          ORDER BY table_name, partition",
    )
    .fetch_all(pool)
    .await
    .context("reading retention holds")
}

pub async fn set_hold(
    pool: &PgPool,
    table: &str,
    partition: &str,
    until: DateTime<Utc>,
    reason: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO opsdash.retention_hold (partition, table_name, until, reason) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (partition) DO UPDATE SET until = EXCLUDED.until, reason = EXCLUDED.reason",
    )
    .bind(partition)
    .bind(table)
    .bind(until)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn marked(pool: &PgPool, mark: &str) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT partition FROM opsdash.partition_mark WHERE mark = $1")
            .bind(mark)
            .fetch_all(pool)
            .await?,
    )
}

// ---------------------------------------------------------------------------------------------
// Log compaction: a day's log_event partition keeps only its error/fatal rows
// ---------------------------------------------------------------------------------------------

/// Level from which a log row counts as an error log (`model::Level::Error`).
pub const ERROR_LEVEL: i16 = 4;

/// Rewrites a log_event partition with its error rows only, in one transaction: the rows are
/// copied to a new table while the old partition is locked against writes (only that old day),
/// then the parent is locked briefly (bounded by `lock_timeout`) to swap the tables. A crash
/// rolls everything back; a re-run finds the mark and skips. Returns (rows kept, rows removed).
///
/// The rewrite is DDL, run by `opsdash.retention_compact_log` (migrations/0026) with the
/// tables' owner's rights, so a granted opsdash_worker compacts as the owner does.
pub async fn compact_log_partition(
    pool: &PgPool,
    p: &Partition,
    lock_timeout_ms: u64,
) -> Result<(i64, i64)> {
    if p.table != "log_event" || p.state != PartitionState::Attached {
        bail!("{} is not an attached log_event partition", p.name);
    }
    ident(&p.name)?;
    let mut tx = pool.begin().await?;
    sqlx::query(&format!(
        "SET LOCAL lock_timeout = {}",
        lock_timeout_ms.max(1)
    ))
    .execute(&mut *tx)
    .await?;
    let counts: Vec<i64> = sqlx::query_scalar("SELECT opsdash.retention_compact_log($1, $2)")
        .bind(&p.name)
        .bind(ERROR_LEVEL)
        .fetch_one(&mut *tx)
        .await
        .with_context(|| format!("compacting {}", p.name))?;
    let [kept, removed] = counts[..] else {
        bail!("compacting {}: unexpected answer {counts:?}", p.name);
    };
    sqlx::query(
        "INSERT INTO opsdash.partition_mark (partition, mark, table_name, rows) \
         VALUES ($1, 'compacted', 'log_event', $2) ON CONFLICT DO NOTHING",
    )
    .bind(&p.name)
    .bind(kept)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((kept, removed))
}

// ---------------------------------------------------------------------------------------------
// Anonymization
// ---------------------------------------------------------------------------------------------

/// The inner and outer padded keys of HMAC-SHA256 (RFC 2104), so PostgreSQL computes
/// `sha256(opad || sha256(ipad || message))` with its built-in sha256() and no extension.
pub fn hmac_pads(secret: &[u8]) -> ([u8; 64], [u8; 64]) {
    use sha2::{Digest, Sha256};
    let mut key = [0u8; 64];
    if secret.len() > 64 {
        key[..32].copy_from_slice(&Sha256::digest(secret));
    } else {
        key[..secret.len()].copy_from_slice(secret);
    }
    let mut ipad = [0u8; 64];
    let mut opad = [0u8; 64];
    for i in 0..64 {
        ipad[i] = key[i] ^ 0x36;
        opad[i] = key[i] ^ 0x5c;
    }
    (ipad, opad)
}

/// Prefix of a pseudonymous user id; a value that already has it is left alone.
pub const PSEUDONYM_PREFIX: &str = "anon:";

/// The pseudonym of `user_id` (same as the SQL below computes): `anon:` + 16 hex digits of
/// HMAC-SHA256(secret, user_id). An operator with the secret can find a user's rows again.
pub fn pseudonym(secret: &[u8], user_id: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC accepts keys of any length; this arm cannot be reached.
        Err(_) => return String::from(PSEUDONYM_PREFIX),
    };
    mac.update(user_id.as_bytes());
    let tag = mac.finalize().into_bytes();
    format!("{PSEUDONYM_PREFIX}{}", &hex::encode(tag)[..16])
}

/// Anonymizes one partition of log_event, request_log or audit_event and marks it, in one
/// transaction (a re-run finds the mark; even without it, the SQL leaves pseudonyms and cut
/// addresses unchanged). Returns the rows updated.
///
/// The UPDATE is `opsdash.retention_anonymize` (migrations/0026), run with the tables' owner's
/// rights: the worker role may not update log rows, and nobody may update audit rows but the
/// retention code (the append-only trigger). It computes `pseudonym` from the HMAC pads.
pub async fn anonymize_partition(
    pool: &PgPool,
    p: &Partition,
    cfg: &RetentionConfig,
) -> Result<u64> {
    if !matches!(p.table, "log_event" | "request_log" | "audit_event") {
        bail!("{} holds no personal data to anonymize", p.table);
    }
    let (ipad, opad) = hmac_pads(cfg.anonymize_secret.expose().as_bytes());
    let mut tx = pool.begin().await?;
    let n: i64 = sqlx::query_scalar("SELECT opsdash.retention_anonymize($1, $2, $3, $4, $5)")
        .bind(&p.name)
        .bind(&opad[..])
        .bind(&ipad[..])
        .bind(&cfg.anonymize_fields)
        .bind(cfg.anonymize_ip == "remove")
        .fetch_one(&mut *tx)
        .await
        .with_context(|| format!("anonymizing {}", p.name))?;
    sqlx::query(
        "INSERT INTO opsdash.partition_mark (partition, mark, table_name, rows) \
         VALUES ($1, 'anonymized', $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(&p.name)
    .bind(p.table)
    .bind(n)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(n as u64)
}

// ---------------------------------------------------------------------------------------------
// Trimming unpartitioned tables with batched DELETEs
// ---------------------------------------------------------------------------------------------

/// The DELETE predicate of an unpartitioned table, `$1` being the cutoff time.
pub fn trim_predicate(table: &str) -> Option<&'static str> {
    Some(match table {
        "alert_history" => "ts < $1",
        "silence" => "ends_at < $1",
        "notification" => "created_at < $1 AND status IN ('delivered', 'dead')",
        "ingest_stat" => "ts < $1",
        "retention_run" => "started_at < $1 AND status <> 'running'",
        "rollup_5m" | "rollup_30m" | "rollup_1h" | "rollup_1d" | "rollup_query_1m" => "bucket < $1",
        // Resolved alerts leave with their history (ON DELETE CASCADE).
        "alert" => "state = 'resolved' AND resolved_at < $1",
        _ => return None,
    })
}

/// Deletes rows older than `cutoff` in batches of `batch` (each its own short transaction, so
/// no long lock and no huge WAL burst). Returns the rows deleted.
pub async fn trim_table(
    pool: &PgPool,
    table: &str,
    cutoff: DateTime<Utc>,
    batch: u32,
) -> Result<u64> {
    let Some(pred) = trim_predicate(table) else {
        bail!("{table} is not trimmed by DELETE");
    };
    let t = ident(table)?;
    let sql = format!(
        "DELETE FROM {t} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {t} WHERE {pred} LIMIT $2))"
    );
    let mut total = 0;
    loop {
        let n = sqlx::query(&sql)
            .bind(cutoff)
            .bind(batch as i64)
            .execute(pool)
            .await
            .with_context(|| format!("trimming {table}"))?
            .rows_affected();
        total += n;
        if n < batch as u64 {
            return Ok(total);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The retention_run record
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Clone)]
pub struct RunOutcome {
    pub rows: Option<i64>,
    pub archive_path: Option<String>,
    pub archive_bytes: Option<i64>,
    pub sha256: Option<String>,
}

pub async fn run_start(
    db: impl PgExecutor<'_>,
    table: &str,
    partition: Option<&str>,
    action: &str,
    range: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO opsdash.retention_run (table_name, partition, action, range_start, range_end) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(table)
    .bind(partition)
    .bind(action)
    .bind(range.map(|r| r.0))
    .bind(range.map(|r| r.1))
    .fetch_one(db)
    .await
    .context("recording a retention run")
}

/// Finishes a run record. The finish time is the clock's, not the transaction's start: the
/// drop step finishes its record inside the hand-off transaction, and the step's duration must
/// include that transaction's work.
pub async fn run_finish(
    db: impl PgExecutor<'_>,
    id: i64,
    outcome: &RunOutcome,
    error: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE opsdash.retention_run SET finished_at = clock_timestamp(), \
                status = CASE WHEN $2::text IS NULL THEN 'ok' ELSE 'failed' END, error = $2, \
                rows = coalesce($3, rows), archive_path = coalesce($4, archive_path), \
                archive_bytes = coalesce($5, archive_bytes), sha256 = coalesce($6, sha256) \
          WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .bind(outcome.rows)
    .bind(&outcome.archive_path)
    .bind(outcome.archive_bytes)
    .bind(&outcome.sha256)
    .execute(db)
    .await
    .context("recording a retention run")?;
    Ok(())
}

/// The record of a restore, written in the restore's own transaction (so a restore that rolls
/// back leaves no record, and `restored_since_last_drop` sees exactly the restores that landed).
pub async fn record_restore(
    conn: &mut PgConnection,
    table: &str,
    partition: &str,
    range: (DateTime<Utc>, DateTime<Utc>),
    outcome: &RunOutcome,
) -> Result<()> {
    let id = run_start(&mut *conn, table, Some(partition), "restore", Some(range)).await?;
    run_finish(&mut *conn, id, outcome, None).await
}

/// A run record in one statement (steps that are one SQL call).
pub async fn run_record(
    pool: &PgPool,
    table: &str,
    partition: Option<&str>,
    action: &str,
    rows: i64,
    error: Option<&str>,
) -> Result<()> {
    let id = run_start(pool, table, partition, action, None).await?;
    run_finish(
        pool,
        id,
        &RunOutcome {
            rows: Some(rows),
            ..Default::default()
        },
        error,
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Health tab
// ---------------------------------------------------------------------------------------------

/// One line of the Health tab's retention section.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionStatus {
    pub table: String,
    pub keep_days: u32,
    pub archive: bool,
    /// Oldest row (time column) still in the table.
    pub oldest: Option<DateTime<Utc>>,
    /// Day whose partition leaves next, and when (partitioned tables only).
    pub next_drop: Option<DateTime<Utc>>,
    /// Bytes of the verified archives written for this table (still on disk or not).
    pub archive_bytes: i64,
    pub last_run: Option<DateTime<Utc>>,
    /// Error of the most recent failed step not yet redone successfully.
    pub last_error: Option<String>,
}

/// Per table: oldest data, next drop, archive size, last run and pending error. Reads only the
/// catalog, `min()` over the time index and `retention_run`; fast enough for a refresh tick.
pub async fn retention_status(db: &Db, cfg: &RetentionConfig) -> Result<Vec<RetentionStatus>> {
    let pool = &db.read;
    let runs = sqlx::query(
        "WITH latest AS ( \
             SELECT DISTINCT ON (table_name, action, coalesce(partition, '')) \
                    table_name, started_at, status, error \
               FROM opsdash.retention_run \
              ORDER BY table_name, action, coalesce(partition, ''), started_at DESC, id DESC) \
         SELECT l.table_name, max(l.started_at) AS last_run, \
                (array_agg(l.error ORDER BY l.started_at DESC) FILTER (WHERE l.status = 'failed'))[1] AS last_error, \
                (SELECT coalesce(sum(r.archive_bytes), 0)::bigint FROM opsdash.retention_run r \
                  WHERE r.table_name = l.table_name AND r.action = 'archive' AND r.status = 'ok') AS archive_bytes \
           FROM latest l GROUP BY l.table_name",
    )
    .fetch_all(pool)
    .await
    .context("reading retention runs")?;
    let parts = partitions(pool).await?;
    let held = holds(pool).await?;
    let mut out = Vec::new();
    for (table, policy) in cfg.policies() {
        let time_col = match table {
            "alert_history" | "ingest_stat" => "ts",
            "silence" => "ends_at",
            "notification" => "created_at",
            "retention_run" => "started_at",
            t => time_column(t),
        };
        // A table locked by DDL (a detach in progress, an operator's LOCK) must not hold the
        // whole panel: its oldest row is left unknown after a short wait.
        let oldest: Option<DateTime<Utc>> = {
            let mut tx = pool.begin().await?;
            sqlx::query("SET LOCAL lock_timeout = 200")
                .execute(&mut *tx)
                .await?;
            match sqlx::query_scalar(&format!("SELECT min({time_col}) FROM {}", ident(table)?))
                .fetch_one(&mut *tx)
                .await
            {
                Ok(v) => v,
                Err(e)
                    if e.as_database_error()
                        .and_then(|d| d.code())
                        .is_some_and(|c| c == "55P03") =>
                {
                    None
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("reading the oldest row of {table}"))
                }
            }
        };
        // A partition leaves the day after its period ends, or when a restore's hold ends.
        let next_drop = parts
            .iter()
            .filter(|p| p.table == table)
            .map(|p| {
                let due = day_range(p.day + chrono::Duration::days(policy.keep_days as i64 + 1)).0;
                held.iter()
                    .find(|(name, _)| *name == p.name)
                    .map_or(due, |(_, until)| due.max(*until))
            })
            .min();
        let run = runs
            .iter()
            .find(|r| r.get::<String, _>("table_name") == table);
        out.push(RetentionStatus {
            table: table.to_string(),
            keep_days: policy.keep_days,
            archive: policy.archive,
            oldest,
            next_drop,
            archive_bytes: run.map(|r| r.get("archive_bytes")).unwrap_or(0),
            last_run: run.and_then(|r| r.get("last_run")),
            last_error: run.and_then(|r| r.get("last_error")),
        });
    }
    Ok(out)
}

/// Connection-level helper for tests and the CLI: rows of one partition in the archive's column
/// order, as COPY text, to compare archives with what the database holds.
pub async fn copy_rows_text(conn: &mut PgConnection, statement: &str) -> Result<Vec<u8>> {
    use futures::StreamExt;
    let mut stream = conn.copy_out_raw(statement).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 9).unwrap();
        let name = partition_name("log_event", day);
        assert_eq!(name, "log_event_p20260309");
        assert_eq!(parse_partition_name(&name), Some(("log_event", day)));
        assert_eq!(parse_partition_name("log_event_p2026030"), None);
        assert_eq!(parse_partition_name("app_table_p20260309"), None);
        assert_eq!(parse_partition_name("log_event_p20260309_k"), None);
    }

    #[test]
    fn pending_drop_names_round_trip_and_are_no_partitions() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 9).unwrap();
        let name = pending_drop_name("request_log_p20260309", 16384);
        assert_eq!(name, "request_log_p20260309_drop16384");
        assert_eq!(
            parse_pending_drop_name(&name),
            Some(("request_log", "request_log_p20260309".to_string(), day))
        );
        assert_eq!(parse_partition_name(&name), None);
        assert!(ident(&name).is_ok());
        assert_eq!(parse_pending_drop_name("request_log_p20260309"), None);
        assert_eq!(parse_pending_drop_name("request_log_p20260309_drop"), None);
        assert_eq!(
            parse_pending_drop_name("request_log_p20260309_dropx1"),
            None
        );
        assert_eq!(parse_pending_drop_name("app_table_p20260309_drop1"), None);
    }

    #[test]
    fn ident_refuses_anything_but_plain_names() {
        assert!(ident("log_event_p20260309").is_ok());
        assert!(ident("x\"; DROP TABLE y; --").is_err());
        assert!(ident("").is_err());
        assert!(ident("Upper").is_err());
    }

    proptest::proptest! {
        /// The SQL computes sha256(opad || sha256(ipad || user)); for any key length (shorter,
        /// equal to and longer than the 64-byte block) that must equal HMAC-SHA256.
        #[test]
        fn pads_give_the_same_tag_as_hmac(
            secret in proptest::collection::vec(proptest::num::u8::ANY, 1..150),
            user in ".{0,40}",
        ) {
            use sha2::{Digest, Sha256};
            let (ipad, opad) = hmac_pads(&secret);
            let inner = Sha256::digest([&ipad[..], user.as_bytes()].concat());
            let tag = Sha256::digest([&opad[..], &inner[..]].concat());
            proptest::prop_assert_eq!(
                format!("anon:{}", &hex::encode(tag)[..16]),
                pseudonym(&secret, &user)
            );
        }
    }
}
