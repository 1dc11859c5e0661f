//! Redaction time on adversarial lines (digits and separators, long key-like text, near-miss
//! JWTs, repeated `Bearer`...) at 1 KB, 64 KB and 1 MiB, next to one full scan of the same line
//! by the regex crate (`find_iter` of one simple pattern, counted) measured in the same run; then
//! ordinary log lines per second next to the same baseline.
//!
//!     cargo bench --bench redact [-- --runs 5] [--ordinary-only]
//!
//! `--ordinary-only` skips the adversarial rows (so the same file can time an older redactor,
//! which does not finish them).

use std::hint::black_box;
use std::time::{Duration, Instant};

use opsdash::config::{IngestConfig, RedactRule};
use opsdash::ingest::redact::Redactor;

#[path = "common/report.rs"]
mod report;
use report::Aim;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Inputs built to make a detector rescan what it passed.
fn adversarial(len: usize) -> Vec<(&'static str, String)> {
    let fill = |unit: &str| unit.repeat(len / unit.len() + 1)[..len].to_string();
    vec![
        ("space-separated integers", fill("4111 ")),
        ("dash-separated integers", fill("5555-")),
        ("one run of digits", fill("4")),
        ("digits, mixed separators", fill("41 1-11 ")),
        ("long key-like text", fill("api_key_token_secret")),
        ("repeated password=\"", fill("password=\"x ")),
        ("near-miss JWTs (no dots)", fill("eyJhbGciOiJIUzI1NiJ9")),
        ("near-miss JWT parts", fill("eyJhbGciOi.")),
        ("repeated Bearer", fill("Bearer ")),
        (
            "repeated BEGIN PRIVATE KEY",
            fill("-----BEGIN RSA PRIVATE KEY-----"),
        ),
        ("repeated ://user:", fill("a://b:c")),
    ]
}

/// Best wall time of `runs` calls (at least one, and enough to fill ~50 ms for short inputs).
fn best(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut best = Duration::MAX;
    let started = Instant::now();
    let mut n = 0;
    while n < runs || (started.elapsed() < Duration::from_millis(50) && n < 10_000) {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
        n += 1;
    }
    best
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let runs: usize = arg("--runs").and_then(|s| s.parse().ok()).unwrap_or(5);
    let mut cfg = IngestConfig::default();
    let plain = Redactor::new(&cfg).expect("default redactor");
    // A custom rule of the config, bounded by the regex crate's linear search.
    cfg.redact.push(RedactRule {
        name: "internal ids".into(),
        pattern: r"\bACME-[0-9]{4,}\b".into(),
        replacement: "[ACME]".into(),
    });
    let with_rule = Redactor::new(&cfg).expect("redactor with a rule");
    let baseline = regex::Regex::new(r"[0-9]{13,19}|(?i)password").expect("baseline pattern");
    println!("redaction of one line, best of {runs} runs; baseline: regex find_iter of `[0-9]{{13,19}}|(?i)password` over the same line, counted");
    println!(
        "{:<30} {:>8} {:>12} {:>12} {:>12} {:>8}",
        "input", "size", "redact ms", "with rule ms", "baseline ms", "ratio"
    );
    let mut worst_1m: f64 = 0.0;
    let sizes: &[(&str, usize)] = if std::env::args().any(|a| a == "--ordinary-only") {
        &[]
    } else {
        &[("1 KB", 1 << 10), ("64 KB", 64 << 10), ("1 MiB", 1 << 20)]
    };
    for &(size_name, len) in sizes {
        for (name, line) in adversarial(len) {
            let ours = best(runs, || {
                black_box(plain.text(black_box(&line)));
            });
            let ruled = best(runs, || {
                black_box(with_rule.text(black_box(&line)));
            });
            let base = best(runs, || {
                black_box(baseline.find_iter(black_box(&line)).count());
            });
            println!(
                "{name:<30} {size_name:>8} {:>12.3} {:>12.3} {:>12.3} {:>8.2}",
                ms(ours),
                ms(ruled),
                ms(base),
                ms(ours) / ms(base).max(1e-9)
            );
            if len == 1 << 20 {
                worst_1m = worst_1m.max(ms(ours)).max(ms(ruled));
                report::figure(
                    "redact",
                    &format!("redact a 1 MiB line: {name}"),
                    ms(ours),
                    "ms",
                    Some(("regex find_iter of one simple pattern", ms(base))),
                    &[Aim::AtMost(50.0)],
                );
            }
        }
    }
    println!(
        "worst 1 MiB line (with or without the custom rule): {worst_1m:.2} ms (aim: under 50 ms)"
    );

    // Ordinary lines: what redaction costs ingest per line.
    let lines = [
        r#"{"level":"info","time":"2024-03-01T10:00:00.123Z","service":"api","msg":"request done","route":"/api/orders/:id","status":200,"duration_ms":12.5,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","user_id":"u-1234"}"#,
        "081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_-1608999687919862906 src: /10.250.19.102:54106 dest: /10.250.19.102:50010",
        "Dec 10 06:55:46 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2",
        r#"64.242.88.10 - - [07/Mar/2004:16:05:49 -0800] "GET /twiki/bin/edit/Main/Double_bounce_sender?topicparent=Main.ConfigurationVariables HTTP/1.1" 401 12846"#,
        "level=info ts=2024-03-01T10:00:00Z msg=\"login\" user=bob password=hunter2 token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
    ];
    let reps = 20_000;
    let per_line = |f: &dyn Fn(&str)| {
        best(runs, || {
            for _ in 0..reps {
                for l in &lines {
                    f(black_box(l));
                }
            }
        })
        .as_secs_f64()
            / (reps * lines.len()) as f64
    };
    let ours = per_line(&|l| {
        black_box(plain.text(l));
    });
    let base = per_line(&|l| {
        black_box(baseline.find_iter(l).count());
    });
    println!(
        "ordinary lines: redact {:.0} ns/line ({:.0} lines/s), baseline {:.0} ns/line",
        ours * 1e9,
        1.0 / ours,
        base * 1e9
    );
    report::figure(
        "redact",
        "redact ordinary log lines (5 shapes)",
        1.0 / ours,
        "lines/s",
        Some(("regex find_iter of one simple pattern", 1.0 / base)),
        &[],
    );
}
