//! Partition archives: `ARCHIVE_DIR/TABLE/PARTITION.copy.gz` (gzip of `COPY ... TO STDOUT` text
//! format) and `PARTITION.manifest.json` beside it (table, range, rows, columns, SHA-256 and
//! size of the .gz file). Written to `.partial` names, fsynced and renamed, so a file under its
//! final name is complete; read back and verified before the retention job drops anything.

use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::config::Config;
use crate::query::retention as q;

pub const FORMAT: &str = "postgresql-copy-text+gzip";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub table: String,
    pub partition: String,
    pub day: NaiveDate,
    pub range_start: DateTime<Utc>,
    pub range_end: DateTime<Utc>,
    pub rows: u64,
    pub columns: Vec<String>,
    /// Name of the data file, in the manifest's directory.
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub created_at: DateTime<Utc>,
    /// OID of the table archived. A partition re-created later (late rows for an expired day)
    /// has another OID, so its archive is written beside this one instead of replacing it.
    #[serde(default)]
    pub relid: i64,
}

/// The archive directory: `retention.archive_dir`, or `archive` under the embedded data dir.
pub fn archive_dir(cfg: &Config) -> Result<PathBuf> {
    if !cfg.retention.archive_dir.is_empty() {
        return Ok(PathBuf::from(&cfg.retention.archive_dir));
    }
    Ok(crate::db::embedded::default_root(&cfg.embedded.data_dir)?.join("archive"))
}

/// Data file of an archive; `stem` is the partition name, plus `.N` for the N+1th archive of
/// the same day (see `Manifest::relid`).
pub fn data_path(dir: &Path, table: &str, stem: &str) -> PathBuf {
    dir.join(table).join(format!("{stem}.copy.gz"))
}

pub fn manifest_path(dir: &Path, table: &str, stem: &str) -> PathBuf {
    dir.join(table).join(format!("{stem}.manifest.json"))
}

pub fn stem(partition: &str, generation: u32) -> String {
    if generation == 0 {
        partition.to_string()
    } else {
        format!("{partition}.{generation}")
    }
}

fn partial(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// Hashes what passes through to the file, so the checksum costs no second read while writing.
struct HashingWriter<W: Write> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `partition` (a table in schema opsdash, attached or detached) to an archive and its
/// manifest. Replaces any partial or earlier file of the same name.
#[allow(clippy::too_many_arguments)]
pub async fn write(
    pool: &PgPool,
    dir: &Path,
    table: &str,
    partition: &str,
    stem: &str,
    day: NaiveDate,
    relid: i64,
) -> Result<Manifest> {
    let columns = q::columns(pool, table).await?;
    let statement = q::copy_out_statement(partition, &columns)?;
    let data = data_path(dir, table, stem);
    let parent = data.parent().unwrap_or(dir).to_path_buf();
    fs::create_dir_all(&parent)
        .with_context(|| format!("creating archive directory {}", parent.display()))?;
    let tmp = partial(&data);
    let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut gz = GzEncoder::new(
        HashingWriter {
            inner: std::io::BufWriter::with_capacity(1 << 20, file),
            hash: Sha256::new(),
            bytes: 0,
        },
        flate2::Compression::fast(),
    );
    let mut rows = 0u64;
    {
        let mut conn = pool.acquire().await?;
        let mut stream = conn
            .copy_out_raw(&statement)
            .await
            .with_context(|| format!("reading {partition}"))?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.with_context(|| format!("reading {partition}"))?;
            rows += memchr::memchr_iter(b'\n', &chunk).count() as u64;
            gz.write_all(&chunk)
                .with_context(|| format!("writing {}", tmp.display()))?;
        }
    }
    let hw = gz
        .finish()
        .with_context(|| format!("writing {}", tmp.display()))?;
    let sha256 = hex::encode(hw.hash.finalize());
    let bytes = hw.bytes;
    let file = hw
        .inner
        .into_inner()
        .map_err(|e| anyhow::anyhow!("writing {}: {}", tmp.display(), e.error()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", tmp.display()))?;
    drop(file);
    fs::rename(&tmp, &data).with_context(|| format!("renaming {}", tmp.display()))?;
    let (range_start, range_end) = q::day_range(day);
    let manifest = Manifest {
        format: FORMAT.into(),
        table: table.into(),
        partition: partition.into(),
        day,
        range_start,
        range_end,
        rows,
        columns,
        file: data
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default(),
        bytes,
        sha256,
        created_at: Utc::now(),
        relid,
    };
    let mpath = manifest_path(dir, table, stem);
    let mtmp = partial(&mpath);
    let text = serde_json::to_vec_pretty(&manifest)?;
    {
        let mut f = File::create(&mtmp).with_context(|| format!("creating {}", mtmp.display()))?;
        f.write_all(&text)
            .and_then(|_| f.sync_all())
            .with_context(|| format!("writing {}", mtmp.display()))?;
    }
    fs::rename(&mtmp, &mpath).with_context(|| format!("renaming {}", mtmp.display()))?;
    sync_dir(&parent)?;
    Ok(manifest)
}

pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let text = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let m: Manifest = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not an opsdash archive manifest", path.display()))?;
    if m.format != FORMAT {
        bail!("{}: unknown archive format {:?}", path.display(), m.format);
    }
    Ok(m)
}

/// Resolves what a user named (the .gz or the manifest) to the manifest path.
pub fn manifest_for(path: &Path) -> PathBuf {
    let s = path.to_string_lossy();
    if let Some(stem) = s.strip_suffix(".copy.gz") {
        PathBuf::from(format!("{stem}.manifest.json"))
    } else {
        path.to_path_buf()
    }
}

/// Reads the data file back: its size and SHA-256 must match the manifest, and it must
/// decompress to exactly `rows` rows. Returns the verified row count.
pub fn verify(manifest_path: &Path, m: &Manifest) -> Result<u64> {
    let data = manifest_path.with_file_name(&m.file);
    let mut hash = Sha256::new();
    let mut bytes = 0u64;
    let mut rows = 0u64;
    {
        // Hash the compressed bytes while decompressing them, in one pass.
        struct Tee<'a, R: Read> {
            inner: R,
            hash: &'a mut Sha256,
            bytes: &'a mut u64,
        }
        impl<R: Read> Read for Tee<'_, R> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.inner.read(buf)?;
                self.hash.update(&buf[..n]);
                *self.bytes += n as u64;
                Ok(n)
            }
        }
        let f = File::open(&data).with_context(|| format!("opening {}", data.display()))?;
        let mut gz = GzDecoder::new(Tee {
            inner: BufReader::with_capacity(1 << 20, f),
            hash: &mut hash,
            bytes: &mut bytes,
        });
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = gz
                .read(&mut buf)
                .with_context(|| format!("{} is corrupt", data.display()))?;
            if n == 0 {
                break;
            }
            rows += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        }
        // Trailing bytes after the gzip stream would not be hashed by the decoder: read them.
        let mut rest = Vec::new();
        gz.into_inner()
            .read_to_end(&mut rest)
            .with_context(|| format!("reading {}", data.display()))?;
    }
    let sha = hex::encode(hash.finalize());
    if bytes != m.bytes || sha != m.sha256 {
        bail!(
            "{}: checksum mismatch (manifest {} bytes sha256 {}, file {} bytes sha256 {})",
            data.display(),
            m.bytes,
            m.sha256,
            bytes,
            sha
        );
    }
    if rows != m.rows {
        bail!(
            "{}: {} rows in the file, {} in the manifest",
            data.display(),
            rows,
            m.rows
        );
    }
    Ok(rows)
}

/// Every manifest under `dir`, sorted by table and partition.
pub fn list(dir: &Path) -> Result<Vec<(PathBuf, Result<Manifest>)>> {
    let mut out = Vec::new();
    let tables = match fs::read_dir(dir) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for t in tables.flatten() {
        let Ok(files) = fs::read_dir(t.path()) else {
            continue;
        };
        for f in files.flatten() {
            let p = f.path();
            if p.to_string_lossy().ends_with(".manifest.json") {
                let m = read_manifest(&p);
                out.push((p, m));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Brings an archive back into its partition (created if needed) after verifying it. Refuses
/// when the same archive was restored since the partition's last drop, or when the partition is
/// detached and its drop step not finished (a table handed to the background drop has another
/// name and does not count: its rows already left). The partition is
/// held from retention for `hold_days`. Returns the manifest and the rows restored.
pub async fn restore(pool: &PgPool, path: &Path, hold_days: u32) -> Result<(Manifest, u64)> {
    let mpath = manifest_for(path);
    let m = read_manifest(&mpath)?;
    verify(&mpath, &m)?;
    if q::parse_partition_name(&m.partition) != Some((leak_table(&m.table)?, m.day)) {
        bail!(
            "{}: partition {:?} does not match table {:?} and day {}",
            mpath.display(),
            m.partition,
            m.table,
            m.day
        );
    }
    if let Some(p) = q::partitions(pool)
        .await?
        .into_iter()
        .find(|p| p.name == m.partition && p.state != q::PartitionState::Attached)
    {
        bail!(
            "{} is detached and waiting to be dropped by retention: run `opsdash retention run` \
             first (nothing changed)",
            p.name
        );
    }
    if q::restored_since_last_drop(pool, &m.partition, &m.sha256).await? {
        bail!(
            "{} was already restored from this archive and not dropped since (nothing changed)",
            m.partition
        );
    }
    let part = q::ensure_partition(pool, &m.table, m.day).await?;
    let until = Utc::now() + chrono::Duration::days(hold_days as i64);
    q::set_hold(pool, &m.table, &part, until, "restored from archive").await?;
    let statement = format!(
        "COPY {} ({}) FROM STDIN",
        q::ident(&m.table)?,
        q::quoted_columns(&m.columns)?
    );
    let data = mpath.with_file_name(&m.file);
    let mut reader = GzDecoder::new(BufReader::with_capacity(
        1 << 20,
        File::open(&data).with_context(|| format!("opening {}", data.display()))?,
    ));
    let mut conn = pool.acquire().await?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let mut copy = tx.copy_in_raw(&statement).await?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = copy.abort("archive unreadable").await;
                return Err(e).with_context(|| format!("reading {}", data.display()));
            }
        };
        if n == 0 {
            break;
        }
        copy.send(&buf[..n]).await?;
    }
    let rows = copy
        .finish()
        .await
        .with_context(|| format!("restoring into {part}"))?;
    let outcome = q::RunOutcome {
        rows: Some(rows as i64),
        archive_path: Some(data.to_string_lossy().to_string()),
        archive_bytes: Some(m.bytes as i64),
        sha256: Some(m.sha256.clone()),
    };
    q::record_restore(&mut tx, &m.table, &part, q::day_range(m.day), &outcome).await?;
    if m.table == "log_event" {
        // The restored rows keep the transaction ids they were written by, which no block
        // summary describes: the day gets its search indexes before anyone can search it.
        crate::query::log_block::seal_in(&mut tx, &part).await?;
    }
    tx.commit().await?;
    Ok((m, rows))
}

fn leak_table(table: &str) -> Result<&'static str> {
    crate::config::PARTITIONED_TABLES
        .iter()
        .find(|t| **t == table)
        .copied()
        .ok_or_else(|| anyhow::anyhow!("{table:?} is not an opsdash partitioned table"))
}
