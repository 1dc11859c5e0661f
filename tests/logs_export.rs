//! Export round trip on a real PostgreSQL: CSV and JSON parse back to exactly the stored rows
//! (hostile text included); files are never overwritten without --force; the real binary.

use opsdash::db::testkit::TestDb;
use opsdash::export::{self, ExportRow, Format, CSV_COLUMNS};
use opsdash::filter;
use opsdash::query::logs::{LogLine, LINE_COLUMNS};

async fn seed(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    sqlx::raw_sql(
        r#"INSERT INTO opsdash.log_event (ts, level, service, host, message, trace_id, user_id, route, status, duration_ms, attrs, fingerprint)
           VALUES (now() - interval '3 seconds', 4, 'api', 'h1', 'comma, "quote" and
newline', 't1', '42', '/api/pay', 502, 12.345, '{"k": [1, "two", null], "esc": "\u001b[2J"}', 'fp'),
                  (now() - interval '2 seconds', 2, 'web', NULL, E'tab\there \x1b]0;title\x07 ünïcödé', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
                  (now() - interval '1 second', 3, 'api', '', '', 't2', '', '', 200, 0.1, '{}', NULL);
           INSERT INTO opsdash.log_event (ts, level, service, message)
           SELECT now() - interval '1 hour' + g * interval '1 ms', 1, 'bulk', 'bulk line ' || g
             FROM generate_series(1, 5000) g;"#,
    )
    .execute(pool)
    .await?;
    Ok(())
}

async fn stored(pool: &sqlx::PgPool, where_: &str) -> anyhow::Result<Vec<ExportRow>> {
    let rows: Vec<LogLine> = sqlx::query_as(&format!(
        "SELECT {LINE_COLUMNS} FROM opsdash.log_event WHERE {where_} ORDER BY ts, id"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(ExportRow::from).collect())
}

/// RFC 4180 reader, enough for the round trip.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

fn row_from_csv(f: &[String]) -> ExportRow {
    let opt = |s: &String| (!s.is_empty()).then(|| s.clone());
    ExportRow {
        id: f[0].parse().unwrap(),
        ts: f[1].parse().unwrap(),
        level: f[2].clone(),
        service: f[3].clone(),
        host: opt(&f[4]),
        message: f[5].clone(),
        trace_id: opt(&f[6]),
        span_id: opt(&f[7]),
        request_id: opt(&f[8]),
        user_id: opt(&f[9]),
        route: opt(&f[10]),
        method: opt(&f[11]),
        status: opt(&f[12]).map(|s| s.parse().unwrap()),
        duration_ms: opt(&f[13]).map(|s| s.parse().unwrap()),
        ip: opt(&f[14]),
        user_agent: opt(&f[15]),
        error_type: opt(&f[16]),
        attrs: opt(&f[17]).map(|s| serde_json::from_str(&s).unwrap()),
        fingerprint: opt(&f[18]),
        repeat_count: f[19].parse().unwrap(),
    }
}

/// CSV cannot tell NULL from '': compare with empty strings read as absent.
fn csv_view(mut r: ExportRow) -> ExportRow {
    for f in [&mut r.host, &mut r.trace_id, &mut r.user_id, &mut r.route] {
        if f.as_deref() == Some("") {
            *f = None;
        }
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_json_round_trip_to_the_stored_rows() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    seed(pool).await?;
    let dir = tempfile::tempdir()?;
    let all = filter::parse("")?;

    let csv_path = dir.path().join("all.csv");
    let mut progress = Vec::new();
    let n = export::export_to_file(pool, &all, Format::Csv, &csv_path, false, |n| {
        progress.push(n)
    })
    .await?;
    assert_eq!(n, 5003);
    assert_eq!(progress.last(), Some(&5003));
    assert!(
        progress.len() >= 3,
        "progress reported per batch: {progress:?}"
    );
    let text = std::fs::read_to_string(&csv_path)?;
    let rows = parse_csv(&text);
    assert_eq!(
        rows[0],
        CSV_COLUMNS
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    );
    let back: Vec<ExportRow> = rows[1..].iter().map(|r| row_from_csv(r)).collect();
    let want: Vec<ExportRow> = stored(pool, "TRUE")
        .await?
        .into_iter()
        .map(csv_view)
        .collect();
    assert_eq!(back, want);

    let json_path = dir.path().join("errors.json");
    let f = filter::parse("level:warn+ service:api")?;
    let n = export::export_to_file(pool, &f, Format::Json, &json_path, false, |_| {}).await?;
    assert_eq!(n, 2);
    let back: Vec<ExportRow> = serde_json::from_str(&std::fs::read_to_string(&json_path)?)?;
    assert_eq!(back, stored(pool, "level >= 3 AND service = 'api'").await?);
    // The JSON escape in attrs survives as data (it is only sanitized on screen).
    assert_eq!(back[0].attrs.as_ref().unwrap()["esc"], "\u{1b}[2J");

    // An empty selection is still a valid document.
    let none = dir.path().join("none.json");
    export::export_to_file(
        pool,
        &filter::parse("service:nope")?,
        Format::Json,
        &none,
        false,
        |_| {},
    )
    .await?;
    let back: Vec<ExportRow> = serde_json::from_str(&std::fs::read_to_string(&none)?)?;
    assert!(back.is_empty());

    // Never overwrite without force.
    let before = std::fs::read(&csv_path)?;
    let err = export::export_to_file(pool, &all, Format::Text, &csv_path, false, |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&csv_path)?, before);
    export::export_to_file(pool, &f, Format::Text, &csv_path, true, |_| {}).await?;
    let text = std::fs::read_to_string(&csv_path)?;
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(!text.contains('\x1b'));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exports_and_refuses_to_overwrite() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    seed(&t.db.write).await?;
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("x.log");
    let bin = env!("CARGO_BIN_EXE_opsdash");
    let url = t.url();
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(["--database-url", &url, "export"])
            .args(args)
            .output()
    };
    let o = run(&[
        "--filter",
        "service:web",
        "--format",
        "text",
        "-o",
        out.to_str().unwrap(),
    ])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out)?;
    assert_eq!(text.lines().count(), 1);
    assert!(text.contains("^[]0;title^G"), "{text}");
    let o = run(&["--format", "csv", "-o", out.to_str().unwrap()])?;
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    let o = run(&["--filter", "level:loud"])?;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("at column 7") && err.lines().count() == 1,
        "{err}"
    );
    let o = run(&["--filter", "service:web", "--format", "json"])?;
    assert!(o.status.success());
    let rows: Vec<ExportRow> = serde_json::from_slice(&o.stdout)?;
    assert_eq!(rows.len(), 1);
    Ok(())
}
