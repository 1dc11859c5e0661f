//! SQL of the read positions of followed files (`opsdash ingest FILE --follow`): the writer
//! saves them in each batch's transaction, a new run loads them to resume where the last one
//! committed.

use std::sync::Arc;

use anyhow::{Context, Result};
use sqlx::PgConnection;

/// Where reading of one followed name stands: the byte after the last line covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The followed name (absolute path), the key.
    pub path: Arc<str>,
    pub dev: i64,
    pub inode: i64,
    pub offset: i64,
    /// SHA-256 (hex) of the first `head_len` bytes of the file.
    pub head_len: i32,
    pub head_hash: Arc<str>,
}

/// Upserts the positions in the caller's transaction (one statement for all of them).
pub async fn save(conn: &mut PgConnection, cps: &[Checkpoint]) -> Result<()> {
    if cps.is_empty() {
        return Ok(());
    }
    let path: Vec<&str> = cps.iter().map(|c| &*c.path).collect();
    let dev: Vec<i64> = cps.iter().map(|c| c.dev).collect();
    let inode: Vec<i64> = cps.iter().map(|c| c.inode).collect();
    let offset: Vec<i64> = cps.iter().map(|c| c.offset).collect();
    let head_len: Vec<i32> = cps.iter().map(|c| c.head_len).collect();
    let head_hash: Vec<&str> = cps.iter().map(|c| &*c.head_hash).collect();
    sqlx::query(
        r#"INSERT INTO opsdash.ingest_checkpoint
               (path, dev, inode, "offset", head_len, head_hash, updated_at)
           SELECT *, now() FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[],
                                       $5::int4[], $6::text[])
           ON CONFLICT (path) DO UPDATE SET
               dev = EXCLUDED.dev, inode = EXCLUDED.inode, "offset" = EXCLUDED."offset",
               head_len = EXCLUDED.head_len, head_hash = EXCLUDED.head_hash,
               updated_at = EXCLUDED.updated_at"#,
    )
    .bind(&path)
    .bind(&dev)
    .bind(&inode)
    .bind(&offset)
    .bind(&head_len)
    .bind(&head_hash)
    .execute(conn)
    .await
    .context("saving read positions")?;
    Ok(())
}

/// Every saved position (a run follows few files; new glob matches look theirs up here).
pub async fn load_all(pool: &sqlx::PgPool) -> Result<Vec<Checkpoint>> {
    let rows: Vec<(String, i64, i64, i64, i32, String)> = sqlx::query_as(
        r#"SELECT path, dev, inode, "offset", head_len, head_hash FROM opsdash.ingest_checkpoint"#,
    )
    .fetch_all(pool)
    .await
    .context("loading read positions")?;
    Ok(rows
        .into_iter()
        .map(
            |(path, dev, inode, offset, head_len, head_hash)| Checkpoint {
                path: path.into(),
                dev,
                inode,
                offset,
                head_len,
                head_hash: head_hash.into(),
            },
        )
        .collect())
}
