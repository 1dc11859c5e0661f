//! Rule evaluation, state changes, silences, operator actions and delivery against a real
//! database and a real HTTP receiver on 127.0.0.1.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::receiver::{Receiver, Reply};
use opsdash::alerts::engine;
use opsdash::alerts::operator::{self, Operator};
use opsdash::alerts::{ChannelConfig, Matcher, RuleConfig};
use opsdash::config::{Config, Secret};
use opsdash::db::testkit::TestDb;
use opsdash::query::{outbox, rules};

fn op(user: &str) -> Operator {
    Operator {
        user: user.into(),
        ip: Some("198.51.100.7".into()),
        host: "ops1".into(),
    }
}

fn config(url: &str) -> Config {
    let mut cfg = Config::default();
    cfg.alert.group_wait = "0s".into();
    cfg.alert.retry_initial = "50ms".into();
    cfg.alert.channels = vec![ChannelConfig {
        name: "hook".into(),
        url: Secret::new(url),
        secret: Secret::new("s3cret"),
        timeout: "1s".into(),
        ..ChannelConfig::default()
    }];
    cfg.alert.rules = vec![RuleConfig {
        name: "api-errors".into(),
        severity: opsdash::model::Severity::Critical,
        measure: "error_rate".into(),
        threshold: 10.0,
        window: "5m".into(),
        interval: "1s".into(),
        resolve_after: "0s".into(),
        channels: vec!["hook".into()],
        runbook_url: "https://runbooks/api".into(),
        // A handful of requests: no minimum volume.
        min_count: Some(1),
        ..RuleConfig::default()
    }];
    cfg
}

async fn requests(t: &TestDb, service: &str, ok: i32, failed: i32) {
    sqlx::query(
        "INSERT INTO opsdash.request_log (ts, service, route, status, duration_ms)
         SELECT now() - interval '1 second', $1, '/x', CASE WHEN g <= $3 THEN 500 ELSE 200 END, 10
           FROM generate_series(1, $2 + $3) g",
    )
    .bind(service)
    .bind(ok)
    .bind(failed)
    .execute(&t.db.write)
    .await
    .unwrap();
}

async fn evaluate(t: &TestDb, cfg: &Config) {
    rules::sync_config_rules(&t.db.write, &engine::config_specs(cfg))
        .await
        .unwrap();
    let rule = rules::rule_by_name(&t.db.write, "api-errors")
        .await
        .unwrap()
        .unwrap();
    engine::evaluate_rule(&t.db, cfg, &rule, None)
        .await
        .unwrap();
}

async fn states(t: &TestDb) -> Vec<(i64, String, String)> {
    sqlx::query_as("SELECT id, label_key, state FROM opsdash.alert ORDER BY id")
        .fetch_all(&t.db.write)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firing_notifying_silencing_acknowledging_and_resolving() {
    let t = TestDb::new().await.unwrap();
    let rx = Receiver::start(vec![]).await;
    let cfg = config(&rx.url);
    requests(&t, "api", 5, 5).await; // 50% errors
    requests(&t, "web", 10, 0).await;
    evaluate(&t, &cfg).await;
    let s = states(&t).await;
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(
        (s[0].1.as_str(), s[0].2.as_str()),
        ("service=api", "firing")
    );
    let id = s[0].0;
    // Evaluating again changes nothing and sends nothing new (repeat interval 1h).
    evaluate(&t, &cfg).await;
    assert_eq!(states(&t).await.len(), 1);

    opsdash::notify::deliver_due(&t.db, &cfg).await.unwrap();
    let got = rx.delivered();
    assert_eq!(got.len(), 1);
    let body = &got[0].body;
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alerts"][0]["labels"]["service"], "api");
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "api-errors");
    assert_eq!(
        body["alerts"][0]["annotations"]["runbook_url"],
        "https://runbooks/api"
    );
    let hid = got[0].headers["webhook-id"].clone();
    let ts: i64 = got[0].headers["webhook-timestamp"].parse().unwrap();
    let raw = serde_json::to_vec(body).unwrap();
    assert_eq!(
        got[0].headers["webhook-signature"],
        opsdash::notify::webhook::signature("s3cret", &hid, ts, &raw)
    );
    // Nothing left to send.
    assert_eq!(opsdash::notify::deliver_due(&t.db, &cfg).await.unwrap(), 0);

    // A silence suppresses it; expiring the silence while it still fires notifies again.
    let sid = operator::silence(
        &t.db,
        &op("ana"),
        &[Matcher::parse("service=api").unwrap()],
        Duration::from_secs(600),
        "deploying",
    )
    .await
    .unwrap();
    evaluate(&t, &cfg).await;
    assert_eq!(states(&t).await[0].2, "suppressed");
    operator::expire_silence(&t.db, &op("ana"), sid)
        .await
        .unwrap();
    evaluate(&t, &cfg).await;
    assert_eq!(states(&t).await[0].2, "firing");
    opsdash::notify::deliver_due(&t.db, &cfg).await.unwrap();
    assert_eq!(rx.delivered().len(), 2);

    // Two operators acknowledge at once: one wins, the other is told who was first.
    let (ana, bob) = (op("ana"), op("bob"));
    let (a, b) = tokio::join!(
        operator::acknowledge(&t.db, &ana, id, Some("looking")),
        operator::acknowledge(&t.db, &bob, id, Some("me too")),
    );
    let (winner, loser) = match (&a, &b) {
        (Ok(_), Err(e)) => ("ana", e.to_string()),
        (Err(e), Ok(_)) => ("bob", e.to_string()),
        other => panic!("exactly one acknowledgement must succeed: {other:?}"),
    };
    assert!(
        loser.contains(&format!("already acknowledged by {winner}")),
        "{loser}"
    );
    let audits: Vec<(String, String, Option<String>, String, String)> = sqlx::query_as(
        "SELECT actor, action, ip, host, session_id FROM opsdash.audit_event
          WHERE source = 'opsdash' ORDER BY id",
    )
    .fetch_all(&t.db.write)
    .await
    .unwrap();
    let acks: Vec<_> = audits
        .iter()
        .filter(|a| a.1 == "alert.acknowledge")
        .collect();
    assert_eq!(acks.len(), 1);
    // The database role is the actor; who typed it (OS user@host) is the session context.
    let role: String = sqlx::query_scalar("SELECT session_user::text")
        .fetch_one(&t.db.write)
        .await
        .unwrap();
    assert_eq!(acks[0].0, role);
    assert_eq!(acks[0].4, format!("{winner}@{}", acks[0].3));
    assert_eq!(acks[0].2.as_deref(), Some("198.51.100.7"));
    assert!(audits.iter().any(|a| a.1 == "silence.create"));
    assert!(audits.iter().any(|a| a.1 == "silence.expire"));

    // The errors stop: with resolve_after 0 it resolves and a resolved message goes out.
    sqlx::query("DELETE FROM opsdash.request_log")
        .execute(&t.db.write)
        .await
        .unwrap();
    evaluate(&t, &cfg).await;
    assert_eq!(states(&t).await[0].2, "resolved");
    opsdash::notify::deliver_due(&t.db, &cfg).await.unwrap();
    let got = rx.delivered();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].body["status"], "resolved");
    assert!(got[2].body["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z");

    let hist: Vec<(Option<String>, String, String)> = sqlx::query_as(
        "SELECT from_state, to_state, actor FROM opsdash.alert_history WHERE alert_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&t.db.write)
    .await
    .unwrap();
    let path: Vec<&str> = hist.iter().map(|h| h.1.as_str()).collect();
    assert_eq!(
        path,
        ["firing", "suppressed", "firing", "acknowledged", "resolved"]
    );
    assert_eq!(hist[3].2, winner);

    // It fires again: a new alert, since the old one is resolved.
    requests(&t, "api", 0, 3).await;
    evaluate(&t, &cfg).await;
    let s = states(&t).await;
    assert_eq!(s.len(), 2);
    assert_eq!(s[1].2, "firing");
    let attempts = outbox::attempts_for_alert(&t.db.write, id).await.unwrap();
    assert_eq!(attempts.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_then_delivers_once_dead_letters_4xx_and_cuts_off_a_hanging_receiver() {
    let t = TestDb::new().await.unwrap();
    let flaky = Receiver::start(vec![
        Reply::Status(500),
        Reply::StatusRetryAfter(503, 0),
        Reply::Status(429),
    ])
    .await;
    let bad = Receiver::start(vec![Reply::Status(400)]).await;
    let hang = Receiver::start(vec![Reply::Hang]).await;
    let mut cfg = config(&flaky.url);
    cfg.alert.channels.push(ChannelConfig {
        name: "bad".into(),
        url: Secret::new(bad.url.clone()),
        ..ChannelConfig::default()
    });
    cfg.alert.channels.push(ChannelConfig {
        name: "hang".into(),
        url: Secret::new(hang.url.clone()),
        timeout: "300ms".into(),
        ..ChannelConfig::default()
    });
    cfg.alert.rules[0].channels = vec!["hook".into(), "bad".into(), "hang".into()];
    let cfg = Arc::new(cfg);
    requests(&t, "api", 0, 5).await;
    evaluate(&t, &cfg).await;
    for _ in 0..60 {
        opsdash::notify::deliver_due(&t.db, &cfg).await.unwrap();
        if flaky.delivered().len() == 1 && hang.received().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all = flaky.received();
    assert_eq!(all.len(), 4, "500, 503, 429, then 200");
    assert_eq!(flaky.delivered().len(), 1);
    let ids: std::collections::BTreeSet<_> = all
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    assert_eq!(ids.len(), 1, "every attempt carries the same id");
    assert_eq!(bad.received().len(), 1, "a 400 is not retried");
    assert!(
        hang.received().len() >= 2,
        "a hanging receiver is cut off and retried"
    );

    let rows: BTreeMap<String, (String, i32)> = sqlx::query_as::<_, (String, String, i32)>(
        "SELECT channel, status, attempts FROM opsdash.notification",
    )
    .fetch_all(&t.db.write)
    .await
    .unwrap()
    .into_iter()
    .map(|(c, s, a)| (c, (s, a)))
    .collect();
    assert_eq!(rows["hook"], ("delivered".to_string(), 4));
    assert_eq!(rows["bad"], ("dead".to_string(), 1));
    let hang_errors: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT a.error FROM opsdash.notification_attempt a JOIN opsdash.notification n ON n.id = a.notification_id
          WHERE n.channel = 'hang' ORDER BY a.id",
    )
    .fetch_all(&t.db.write)
    .await
    .unwrap();
    assert!(
        hang_errors[0]
            .as_deref()
            .unwrap_or("")
            .contains("timed out"),
        "{hang_errors:?}"
    );
    let attempts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM opsdash.notification_attempt a JOIN opsdash.notification n ON n.id = a.notification_id
          WHERE n.channel = 'hook'",
    )
    .fetch_one(&t.db.write)
    .await
    .unwrap();
    assert_eq!(attempts, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_goes_out_over_smtp_and_a_refused_recipient_is_dead_lettered() {
    let t = TestDb::new().await.unwrap();
    let good = common::smtp::SmtpServer::start(vec![]).await;
    let refusing = common::smtp::SmtpServer::start(vec!["550 no such user"]).await;
    let mut cfg = config("http://127.0.0.1:9/unused");
    for (name, port) in [("mail", good.port), ("badmail", refusing.port)] {
        cfg.alert.channels.push(ChannelConfig {
            name: name.into(),
            kind: "email".into(),
            smtp_host: "127.0.0.1".into(),
            smtp_port: port,
            from: "opsdash@example.com".into(),
            to: vec!["oncall@example.com".into()],
            ..ChannelConfig::default()
        });
    }
    cfg.alert.rules[0].channels = vec!["mail".into(), "badmail".into()];
    requests(&t, "api", 0, 4).await;
    evaluate(&t, &cfg).await;
    opsdash::notify::deliver_due(&t.db, &cfg).await.unwrap();
    let msgs = good.messages.lock().unwrap().clone();
    assert_eq!(msgs.len(), 1);
    assert!(
        msgs[0].contains("Subject: [FIRING:1] api-errors (critical)"),
        "{}",
        msgs[0]
    );
    assert!(msgs[0].contains("To: oncall@example.com"));
    let key: String = sqlx::query_scalar(
        "SELECT idempotency_key FROM opsdash.notification WHERE channel = 'mail'",
    )
    .fetch_one(&t.db.write)
    .await
    .unwrap();
    assert!(msgs[0].contains(&format!("Message-ID: <{key}@opsdash>")));
    assert!(refusing.messages.lock().unwrap().is_empty());
    let (status, last): (String, Option<i32>) = sqlx::query_as(
        "SELECT status, last_status FROM opsdash.notification WHERE channel = 'badmail'",
    )
    .fetch_one(&t.db.write)
    .await
    .unwrap();
    assert_eq!((status.as_str(), last), ("dead", Some(550)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_uses_starttls_or_implicit_tls_with_auth_and_never_sends_a_password_in_clear() {
    use common::smtp::{self_signed, Security, SmtpServer};
    let t = TestDb::new().await.unwrap();
    let (acceptor, pem) = self_signed();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let creds = |mechs| Some((mechs, "ops".to_string(), "s3cret".to_string()));
    let starttls = SmtpServer::start_with(
        vec![],
        Security {
            starttls: Some(acceptor.clone()),
            auth: creds("PLAIN LOGIN"),
            ..Security::default()
        },
    )
    .await;
    let implicit = SmtpServer::start_with(
        vec![],
        Security {
            implicit: Some(acceptor.clone()),
            auth: creds("LOGIN"),
            ..Security::default()
        },
    )
    .await;
    // Offers AUTH but no STARTTLS: the password must never be sent.
    let cleartext = SmtpServer::start_with(
        vec![],
        Security {
            auth: creds("PLAIN"),
            ..Security::default()
        },
    )
    .await;
    // A certificate we were not told to trust: the handshake fails, nothing is sent.
    let untrusted = SmtpServer::start_with(
        vec![],
        Security {
            starttls: Some(acceptor),
            ..Security::default()
        },
    )
    .await;
    let mut cfg = config("http://127.0.0.1:9/unused");
    let ca_file = ca.to_string_lossy().into_owned();
    let channels = [
        ("starttls", starttls.port, "starttls", true, true),
        ("implicit", implicit.port, "tls", true, true),
        ("cleartext", cleartext.port, "auto", true, false),
        ("untrusted", untrusted.port, "auto", false, false),
    ];
    for (name, port, tls, auth, trust) in channels {
        cfg.alert.channels.push(ChannelConfig {
            name: name.into(),
            kind: "email".into(),
            smtp_host: "localhost".into(),
            smtp_port: port,
            smtp_tls: tls.into(),
            smtp_username: if auth { "ops".into() } else { String::new() },
            smtp_password: opsdash::config::Secret::new(if auth { "s3cret" } else { "" }),
            smtp_ca_file: if trust {
                ca_file.clone()
            } else {
                String::new()
            },
            from: "opsdash@example.com".into(),
            to: vec!["oncall@example.com".into()],
            ..ChannelConfig::default()
        });
    }
    cfg.alert.rules[0].channels = channels.iter().map(|c| c.0.to_string()).collect();
    cfg.alert.validate().unwrap();
    requests(&t, "api", 0, 4).await;
    evaluate(&t, &cfg).await;
    opsdash::notify::deliver_due(&t.db, &cfg).await.unwrap();

    for server in [&starttls, &implicit] {
        let got = server.received.lock().unwrap().clone();
        assert_eq!(got.len(), 1);
        assert!(got[0].tls, "delivered without TLS");
        assert_eq!(got[0].user.as_deref(), Some("ops"));
        assert!(got[0]
            .data
            .contains("Subject: [FIRING:1] api-errors (critical)"));
    }
    assert!(cleartext.received.lock().unwrap().is_empty());
    assert!(untrusted.received.lock().unwrap().is_empty());
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT channel, status, last_error FROM opsdash.notification ORDER BY channel",
    )
    .fetch_all(&t.db.write)
    .await
    .unwrap();
    let of = |name: &str| rows.iter().find(|r| r.0 == name).unwrap().clone();
    assert_eq!(of("starttls").1, "delivered");
    assert_eq!(of("implicit").1, "delivered");
    let (_, status, error) = of("cleartext");
    assert_eq!(status, "dead");
    assert!(error.unwrap().contains("unencrypted"));
    let (_, status, error) = of("untrusted");
    assert_eq!(status, "pending", "a TLS failure is retried");
    let error = error.unwrap();
    assert!(error.contains("TLS handshake"), "{error}");
    assert!(!error.contains("s3cret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_count_counts_what_the_logs_filter_selects() {
    let t = TestDb::new().await.unwrap();
    // Two api error/fatal lines mention a timeout (the second folded twice: repeat_count 2), plus
    // an api error without it, an api warning and a web error that must not count: the filter
    // `service:api level:error+ timeout` counts 1 + 2 = 3 lines.
    sqlx::raw_sql(
        "INSERT INTO opsdash.log_event (ts, level, service, message, repeat_count) VALUES
           (now() - interval '5 seconds', 4, 'api', 'db timeout after 5s', 1),
           (now() - interval '4 seconds', 5, 'api', 'upstream timeout', 2),
           (now() - interval '3 seconds', 4, 'api', 'disk full', 1),
           (now() - interval '3 seconds', 3, 'api', 'slow timeout warning', 1),
           (now() - interval '2 seconds', 4, 'web', 'timeout', 1)",
    )
    .execute(&t.db.write)
    .await
    .unwrap();
    let mut cfg = Config::default();
    cfg.alert.rules = vec![RuleConfig {
        name: "api-timeouts".into(),
        measure: "log_count".into(),
        filter: "service:api level:error+ timeout".into(),
        threshold: 1.0,
        window: "5m".into(),
        ..RuleConfig::default()
    }];
    let spec = engine::config_specs(&cfg).remove(0);
    let samples =
        opsdash::query::alert_metrics::measure(&t.db.write, &spec, Duration::from_secs(5))
            .await
            .unwrap();
    assert_eq!(samples.len(), 1, "{samples:?}");
    assert_eq!(samples[0].value, 3.0);
    assert_eq!(
        samples[0].labels.get("service").map(String::as_str),
        Some("api")
    );

    // A filter the Logs tab would reject is refused when the rule is validated.
    cfg.alert.rules[0].filter = "level:loud".into();
    let err = opsdash::alerts::RuleSpec::from_config(&cfg.alert.rules[0]).unwrap_err();
    assert!(err.contains("filter"), "{err}");
}
