//! Email through lettre and HTTPS through the one trust store, against real servers on
//! 127.0.0.1 whose certificates an internal CA (made here with rcgen) signed: the test SMTP
//! server over STARTTLS and implicit TLS (display-name sender, UTF-8 subject, a long line), and an
//! HTTPS receiver for webhooks and health checks, trusted with `ca_file` and refused without it.

mod common;

use std::sync::{Arc, Mutex};

use common::smtp::{Security, SmtpServer};
use opsdash::alerts::ChannelConfig;
use opsdash::config::{Secret, ServiceCheck};
use opsdash::notify::Attempt;
use opsdash::query::outbox::Claimed;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

/// An internal CA and a "localhost" server certificate it signed: the acceptor and the CA's
/// PEM file (in `dir`).
fn internal_ca(dir: &std::path::Path) -> (tokio_rustls::TlsAcceptor, String) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, "opsdash internal test CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca = p.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    let path = dir.join("internal-ca.pem");
    std::fs::write(&path, ca.pem()).unwrap();
    (
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        path.display().to_string(),
    )
}

fn claimed(alertname: &str, summary: &str) -> Claimed {
    Claimed {
        id: 1,
        channel: "mail".into(),
        kind: "firing".into(),
        group_key: Some("g".into()),
        idempotency_key: "notify-tls-1".into(),
        payload: sqlx::types::Json(serde_json::json!({
            "alerts": [{
                "status": "firing",
                "labels": { "alertname": alertname, "severity": "critical" },
                "annotations": { "summary": summary },
            }]
        })),
        attempts: 1,
    }
}

#[tokio::test]
async fn email_goes_through_lettre_over_starttls_and_implicit_tls_with_an_internal_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, ca_file) = internal_ca(dir.path());
    let starttls = SmtpServer::start_with(
        vec![],
        Security {
            starttls: Some(acceptor.clone()),
            auth: Some(("PLAIN LOGIN", "ops".into(), "s3cret".into())),
            ..Security::default()
        },
    )
    .await;
    let implicit = SmtpServer::start_with(
        vec![],
        Security {
            implicit: Some(acceptor),
            ..Security::default()
        },
    )
    .await;
    let subject_name = "Zahlung fehlgeschlagen – Köln 支付";
    let long: String = "Umsatz über Grenze; ".repeat(60);
    let m = claimed(subject_name, &long);
    let channel = |port: u16, tls: &str| ChannelConfig {
        name: "mail".into(),
        kind: "email".into(),
        smtp_host: "localhost".into(),
        smtp_port: port,
        smtp_tls: tls.into(),
        from: "Ops Team <ops@example.com>".into(),
        to: vec![
            "On Call <oncall@example.com>".into(),
            "b@example.com".into(),
        ],
        ..ChannelConfig::default()
    };
    // STARTTLS with credentials, trusting the CA through the one trust store's `ca_file`.
    let mut ch = channel(starttls.port, "starttls");
    ch.smtp_username = "ops".into();
    ch.smtp_password = Secret::new("s3cret");
    ch.ca_file = ca_file.clone();
    let a = opsdash::notify::email::send(&ch, &m).await;
    assert_eq!(a, Attempt::Delivered { status: Some(250) });
    // Implicit TLS, trusting it through the older `smtp_ca_file`.
    let mut ch = channel(implicit.port, "tls");
    ch.smtp_ca_file = ca_file.clone();
    let a = opsdash::notify::email::send(&ch, &m).await;
    assert_eq!(a, Attempt::Delivered { status: Some(250) });

    for (server, user) in [(&starttls, Some("ops")), (&implicit, None)] {
        let got = server.received.lock().unwrap().clone();
        assert_eq!(got.len(), 1);
        let r = &got[0];
        assert!(r.tls, "delivered without TLS");
        assert_eq!(r.user.as_deref(), user);
        // The envelope carries bare addresses, never the display names.
        assert!(
            r.mail_from.starts_with("MAIL FROM:<ops@example.com>"),
            "{}",
            r.mail_from
        );
        assert!(r.rcpt_to[0].starts_with("RCPT TO:<oncall@example.com>"));
        assert!(r.rcpt_to[1].starts_with("RCPT TO:<b@example.com>"));
        // 7-bit, no line over 78 characters: the subject is RFC 2047 encoded and the body
        // encoded and folded, whatever the alert's text.
        assert!(r.data.is_ascii(), "8-bit data in the message");
        for line in r.data.lines() {
            assert!(line.len() <= 78, "line of {} chars: {line}", line.len());
        }
        // And a mail reader gets the original text back.
        let msg = mail_parser::MessageParser::default()
            .parse(r.data.as_bytes())
            .unwrap();
        assert_eq!(
            msg.subject(),
            Some(format!("[FIRING:1] {subject_name} (critical)").as_str())
        );
        let from = msg.from().and_then(|f| f.first()).unwrap();
        assert_eq!(from.name(), Some("Ops Team"));
        assert_eq!(from.address(), Some("ops@example.com"));
        let body = msg.body_text(0).unwrap();
        assert!(
            body.contains(long.as_str()),
            "the long line did not survive"
        );
        assert!(body.contains("opsdash alert message notify-tls-1"));
    }
}

#[tokio::test]
async fn email_refuses_an_untrusted_certificate_and_a_password_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, _ca_file) = internal_ca(dir.path());
    let untrusted = SmtpServer::start_with(
        vec![],
        Security {
            starttls: Some(acceptor),
            ..Security::default()
        },
    )
    .await;
    let cleartext = SmtpServer::start_with(
        vec![],
        Security {
            auth: Some(("PLAIN", "ops".into(), "s3cret".into())),
            ..Security::default()
        },
    )
    .await;
    let m = claimed("disk-full", "disk full");
    let base = ChannelConfig {
        name: "mail".into(),
        kind: "email".into(),
        smtp_host: "localhost".into(),
        from: "ops@example.com".into(),
        to: vec!["oncall@example.com".into()],
        ..ChannelConfig::default()
    };
    let ch = ChannelConfig {
        smtp_port: untrusted.port,
        smtp_tls: "starttls".into(),
        ..base.clone()
    };
    match opsdash::notify::email::send(&ch, &m).await {
        Attempt::Transient { error, .. } => {
            assert!(error.contains("TLS handshake"), "{error}");
            assert!(error.contains("UnknownIssuer"), "{error}");
        }
        other => panic!("expected a retryable TLS failure, got {other:?}"),
    }
    let ch = ChannelConfig {
        smtp_port: cleartext.port,
        smtp_username: "ops".into(),
        smtp_password: Secret::new("s3cret"),
        ..base
    };
    match opsdash::notify::email::send(&ch, &m).await {
        Attempt::Permanent { error, .. } => {
            assert!(error.contains("unencrypted"), "{error}");
            assert!(!error.contains("s3cret"));
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
    assert!(untrusted.received.lock().unwrap().is_empty());
    assert!(cleartext.received.lock().unwrap().is_empty());
}

/// An HTTPS server on 127.0.0.1 answering every request 200 and keeping the request bodies.
async fn https_receiver(acceptor: tokio_rustls::TlsAcceptor) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let keep = got.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (acceptor, keep) = (acceptor.clone(), keep.clone());
            tokio::spawn(async move {
                // A client that distrusts us ends the handshake: nothing to answer.
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Ok(n) = tls.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        keep.lock().unwrap().push(text[end + 4..].to_string());
                        let _ = tls
                            .write_all(
                                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                            )
                            .await;
                        let _ = tls.shutdown().await;
                        return;
                    }
                }
            });
        }
    });
    (port, got)
}

#[tokio::test]
async fn webhooks_and_health_checks_trust_an_internal_ca_given_as_ca_file_and_only_then() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, ca_file) = internal_ca(dir.path());
    let (port, got) = https_receiver(acceptor).await;
    let url = format!("https://localhost:{port}/hook");
    let m = claimed("api-errors", "errors above 5%");
    let hook = ChannelConfig {
        name: "hook".into(),
        kind: "webhook".into(),
        url: Secret::new(url.clone()),
        ..ChannelConfig::default()
    };
    match opsdash::notify::webhook::send(&hook, &m).await {
        Attempt::Transient { error, .. } => {
            assert!(error.contains("UnknownIssuer"), "{error}");
        }
        other => panic!("an untrusted receiver was accepted: {other:?}"),
    }
    assert!(got.lock().unwrap().is_empty());
    let trusted = ChannelConfig {
        ca_file: ca_file.clone(),
        ..hook
    };
    let a = opsdash::notify::webhook::send(&trusted, &m).await;
    assert_eq!(a, Attempt::Delivered { status: Some(200) });
    let bodies = got.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(body["commonLabels"]["alertname"], "api-errors");

    let check = |ca_file: String| ServiceCheck {
        name: "internal".into(),
        kind: "http".into(),
        target: url.clone(),
        expected_status: 200,
        interval_s: 30,
        timeout_ms: 5000,
        retries: 0,
        degraded_ms: 5000,
        query: String::new(),
        ca_file,
    };
    let down = opsdash::worker::health::check_with_retries(&check(String::new())).await;
    assert_eq!(down.status, "down");
    assert!(down.detail.contains("UnknownIssuer"), "{}", down.detail);
    let up = opsdash::worker::health::check_with_retries(&check(ca_file)).await;
    assert_eq!((up.status, up.detail.as_str()), ("healthy", "HTTP 200"));
}
