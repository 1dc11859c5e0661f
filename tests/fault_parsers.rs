//! Fault: the parsers under property-based fuzzing, extending the unit proptests (which feed
//! arbitrary text to the line parsers and filter, and 400 generated filters to PostgreSQL):
//! - ingest: structured JSON trees, logfmt and access-log lines with hostile values (huge and
//!   negative numbers, timestamp-shaped strings, control characters) never panic, and every
//!   record they accept has a timestamp PostgreSQL can store (else one bad line would fail the
//!   whole batch);
//! - filter: any text is accepted or refused with a column inside the input, and filters built
//!   from keys with arbitrary values that parse give SQL PostgreSQL runs;
//! - config: arbitrary text and arbitrary TOML built from the real section and key names never
//!   panic, and every error names file:line:column inside the text.
//!
//! `fuzz/` holds cargo-fuzz targets for the same three parsers, for longer runs.

use std::path::Path;

use chrono::{DateTime, Datelike, Utc};
use opsdash::config::{Config, ConfigError};
use opsdash::db::testkit::TestDb;
use opsdash::filter;
use opsdash::ingest::detect::parse_line;
use opsdash::ingest::fields::LineContext;
use opsdash::ingest::Format;
use proptest::prelude::*;
use serde_json::{Map, Value};
use sqlx::{Postgres, QueryBuilder};

const FORMATS: [Format; 6] = [
    Format::Auto,
    Format::Json,
    Format::Logfmt,
    Format::Nginx,
    Format::Apache,
    Format::Postgres,
];

fn ctx() -> LineContext<'static> {
    LineContext {
        service: "fuzz",
        now: Utc::now(),
        level: None,
        zone: &opsdash::ingest::timestamp::UTC,
    }
}

/// PostgreSQL's timestamptz range: 4713 BC to 294276 AD.
fn storable(ts: &DateTime<Utc>) -> bool {
    (-4712..=294275).contains(&ts.year())
}

fn check_line(line: &str) -> Result<(), TestCaseError> {
    for f in FORMATS {
        if let Ok(p) = parse_line(f, line, &ctx()) {
            if let Some(l) = &p.log {
                prop_assert!(storable(&l.ts), "{f:?} {line:?} -> log ts {}", l.ts);
            }
            if let Some(r) = &p.request {
                prop_assert!(storable(&r.ts), "{f:?} {line:?} -> request ts {}", r.ts);
            }
        }
    }
    Ok(())
}

/// Field names the JSON parser gives meaning to, and some it does not.
fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "ts", "time", "timestamp", "@timestamp", "date", "level", "lvl", "severity", "msg",
            "message", "service", "host", "trace_id", "span_id", "request_id", "user", "user_id",
            "status", "duration_ms", "duration", "latency", "method", "route", "path", "url",
            "bytes", "ip", "error", "stack", "attrs", "fields",
        ])
        .prop_map(String::from),
        1 => "\\PC{0,8}",
    ]
}

fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "-4713-01-01T00:00:00Z",
            "+275760-09-13T00:00:00Z",
            "262143-12-31T23:59:59Z",
            "1970-01-01",
            "2026-02-30T25:61:61Z",
            "1e300",
            "-1e300",
            "NaN",
            "inf",
            "99999999999999999999",
            "-9223372036854775808",
            "error",
            "FATAL",
            "\u{1b}[2J",
            "",
        ])
        .prop_map(String::from),
        any::<String>(),
    ]
}

fn json_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN/inf", |f| f.is_finite())
            .prop_map(Value::from),
        prop::sample::select(vec![
            -2.2e11, -6.2e10, 2.5e11, 8.2e12, 1e15, -1e15, 1e18, 9.3e18, 1.7e19,
        ])
        .prop_map(Value::from),
        hostile_string().prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_scalar().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((json_key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn json_line() -> impl Strategy<Value = String> {
    prop::collection::vec((json_key(), json_value()), 0..10)
        .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>()).to_string())
}

fn logfmt_line() -> impl Strategy<Value = String> {
    prop::collection::vec((json_key(), hostile_string(), any::<bool>()), 0..8).prop_map(|kv| {
        kv.into_iter()
            .map(|(k, v, quote)| {
                if quote {
                    format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
                } else {
                    format!("{k}={}", v.replace(' ', "_"))
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    })
}

fn access_line() -> impl Strategy<Value = String> {
    (
        "[0-9a-f.:]{1,20}",
        prop_oneof![
            Just("10/Oct/2023:13:55:36 +0000".to_string()),
            Just("31/Dec/9999:23:59:59 +2359".to_string()),
            Just("01/Jan/0001:00:00:00 -2359".to_string()),
            "[0-9]{1,2}/[A-Za-z]{3}/[0-9]{1,6}:[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2} [+-][0-9]{4}",
        ],
        "[A-Z]{0,8}",
        "\\PC{0,30}",
        prop_oneof![any::<u64>().prop_map(|v| v.to_string()), "[0-9-]{0,6}"],
        prop_oneof![any::<u64>().prop_map(|v| v.to_string()), "-".prop_map(String::from)],
        prop_oneof![any::<f64>().prop_map(|v| v.to_string()), "[0-9.e+-]{0,8}"],
    )
        .prop_map(|(ip, ts, method, path, status, bytes, dur)| {
            format!(
                "{ip} - - [{ts}] \"{method} {path} HTTP/1.1\" {status} {bytes} \"-\" \"agent\" {dur}"
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn ingest_json_trees_never_panic_and_give_storable_timestamps(line in json_line()) {
        check_line(&line)?;
    }

    #[test]
    fn ingest_logfmt_never_panics_and_gives_storable_timestamps(line in logfmt_line()) {
        check_line(&line)?;
    }

    #[test]
    fn ingest_access_lines_never_panic_and_give_storable_timestamps(line in access_line()) {
        check_line(&line)?;
    }

    #[test]
    fn filter_errors_point_inside_the_input(text in prop_oneof![
        any::<String>(),
        "[ a-z:\"'\\-*+,0-9/\u{e9}\u{1b}\u{202e}]{0,60}",
    ]) {
        if let Err(e) = filter::parse(&text) {
            prop_assert!(e.pos <= text.chars().count(), "{text:?}: {e}");
            let shown = e.to_string();
            prop_assert_eq!(shown.lines().count(), 1, "{}", shown);
            prop_assert!(shown.starts_with("at column "), "{}", shown);
        }
    }
}

/// A filter key with an arbitrary value: the values are where dates, durations, numbers and
/// wildcards are parsed.
fn keyed_filter() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "level", "service", "route", "status", "trace", "user", "since", "until", "host",
    ]);
    let value = prop_oneof![
        "[0-9]{1,20}[smhdw]?",
        "-?[0-9]{1,6}-[0-9]{1,3}-[0-9]{1,3}(T[0-9]{1,2}:[0-9]{1,2})?",
        "[0-9x*,+]{1,10}",
        "\\PC{1,12}",
    ];
    prop::collection::vec((any::<bool>(), key, value), 1..4).prop_map(|v| {
        v.into_iter()
            .map(|(neg, k, val)| {
                let val = if val.contains(' ') || val.contains('"') {
                    format!("\"{}\"", val.replace('"', ""))
                } else {
                    val
                };
                format!("{}{k}:{val}", if neg { "-" } else { "" })
            })
            .collect::<Vec<_>>()
            .join(" ")
    })
}

#[test]
fn accepted_filters_with_arbitrary_values_run_on_postgres() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let t = rt.block_on(TestDb::new()).expect("test database");
    let accepted = std::sync::atomic::AtomicUsize::new(0);
    let config = ProptestConfig {
        cases: 300,
        ..ProptestConfig::default()
    };
    proptest!(config, |(text in keyed_filter())| {
        if let Ok(f) = filter::parse(&text) {
            accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // The Logs tab's query and the alert rule's (log_count) condition form.
            let mut qb = QueryBuilder::<Postgres>::new(
                "SELECT count(*) FROM (SELECT 1 FROM opsdash.log_event",
            );
            f.push_where(&mut qb);
            qb.push(" LIMIT 10) s");
            let res: Result<i64, _> = rt.block_on(qb.build_query_scalar().fetch_one(&t.db.read));
            prop_assert!(res.is_ok(), "{text:?} -> {}: {:?}", qb.sql(), res.err());
            let mut qb = QueryBuilder::<Postgres>::new(
                "SELECT count(*) FROM opsdash.log_event WHERE ts >= now() - interval '1 day' AND ",
            );
            f.push_conditions(&mut qb);
            let res: Result<i64, _> = rt.block_on(qb.build_query_scalar().fetch_one(&t.db.read));
            prop_assert!(res.is_ok(), "{text:?} -> {}: {:?}", qb.sql(), res.err());
        }
    });
    assert!(
        accepted.into_inner() > 30,
        "the generator should give valid filters too"
    );
}

/// The real sections and keys of config.toml, with values of every TOML type.
fn toml_doc() -> impl Strategy<Value = String> {
    let section = prop::sample::select(vec![
        "database",
        "embedded",
        "ui",
        "keys",
        "ingest",
        "worker",
        "retention",
        "retention.log_event",
        "retention.audit_event",
        "kpi",
        "logs",
        "logs.saved_filters",
        "alert",
        "[alert.channel]",
        "[alert.rule]",
        "[kpi.widget]",
        "[service]",
        "nonsense",
    ]);
    let key = prop::sample::select(vec![
        "url",
        "read_url",
        "pool_size",
        "connect_timeout_ms",
        "query_timeout_ms",
        "data_dir",
        "theme",
        "clock",
        "range",
        "tail_buffer",
        "max_fps",
        "quit",
        "dedup_window",
        "batch_size",
        "flush_interval_ms",
        "redact_keys",
        "enabled",
        "lease_ttl_ms",
        "job_timeout_ms",
        "keep_days",
        "archive",
        "archive_dir",
        "anonymize_secret",
        "anonymize_ip",
        "tick_ms",
        "group_wait",
        "retry_initial",
        "retry_max",
        "max_attempts",
        "name",
        "kind",
        "measure",
        "threshold",
        "operator",
        "window",
        "for",
        "interval",
        "filter",
        "query",
        "channels",
        "severity",
        "scope",
        "target",
        "timeout",
        "errors",
        "tail_floor_hours",
        "title",
        "bogus",
    ]);
    let value = prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        Just("18446744073709551615".to_string()),
        any::<f64>().prop_map(|v| format!("{v:?}")),
        Just("nan".to_string()),
        Just("-inf".to_string()),
        any::<bool>().prop_map(|v| v.to_string()),
        prop::sample::select(vec![
            "\"\"",
            "\"1h\"",
            "\"0s\"",
            "\"99999999999999999999h\"",
            "\"-5m\"",
            "\"dark\"",
            "\"nope\"",
            "\"level:error+ timeout\"",
            "\"level:\"",
            "\"error_rate\"",
            "\"log_count\"",
            "\"webhook\"",
            "\"ctrl-q\"",
            "\"ctrl-\"",
            "\"F99\"",
            "\"postgres://u:p@h/db\"",
            "[]",
            "[\"a\", 1]",
            "{}",
            "{ service = \"api\" }",
            "1979-05-27T07:32:00Z",
        ])
        .prop_map(String::from),
        "\"\\PC{0,12}\"".prop_map(|s| s.replace('\\', "")),
    ];
    prop::collection::vec((section, prop::collection::vec((key, value), 0..5)), 0..5).prop_map(
        |sections| {
            let mut out = String::new();
            for (s, kv) in sections {
                // "[alert.rule]" becomes the array-of-tables header "[[alert.rule]]".
                out.push_str(&format!("[{s}]\n"));
                for (k, v) in kv {
                    out.push_str(&format!("{k} = {v}\n"));
                }
            }
            out
        },
    )
}

fn check_config(text: &str) -> Result<(), TestCaseError> {
    let path = Path::new("/etc/opsdash/fuzz.toml");
    match Config::parse(text, path) {
        Ok(_) => {}
        Err(ConfigError::Invalid {
            path: p,
            line,
            column,
            message,
        }) => {
            prop_assert_eq!(p, path.display().to_string());
            let lines = text.lines().count().max(1);
            prop_assert!(
                line >= 1 && line <= lines + 1,
                "line {} of {}: {}",
                line,
                lines,
                message
            );
            prop_assert!(column >= 1, "{}", message);
            prop_assert!(!message.trim().is_empty(), "{:?}", text);
            prop_assert!(!message.contains('\n'), "one line: {:?}", message);
        }
        Err(other) => {
            let shown = other.to_string();
            prop_assert!(shown.starts_with(&path.display().to_string()), "{}", shown);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn config_from_arbitrary_text_never_panics(text in any::<String>()) {
        check_config(&text)?;
    }

    #[test]
    fn config_from_arbitrary_toml_never_panics_and_errors_have_positions(text in toml_doc()) {
        check_config(&text)?;
    }
}

#[test]
fn config_errors_are_one_line_with_a_reason() {
    let path = Path::new("c.toml");
    for (text, line, column) in [("A=", 1, 3), ("[x", 1, 3), ("a = 1\nb = ", 2, 5)] {
        let e = Config::parse(text, path).expect_err(text).to_string();
        let prefix = format!("c.toml:{line}:{column}: ");
        assert!(e.starts_with(&prefix), "{text:?}: {e}");
        assert!(e.len() > prefix.len() + 5, "{text:?}: a reason: {e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}
