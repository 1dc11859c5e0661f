//! Email channel, sent with lettre over tokio: TLS by STARTTLS or implicitly (rustls, trusting
//! `trust::root_store`: the system's roots plus the channel's `ca_file` and `smtp_ca_file`) and
//! AUTH PLAIN or LOGIN. lettre writes the message: a display-name sender gives the bare address
//! in `MAIL FROM`, a non-ASCII subject is RFC 2047 encoded, long or 8-bit body lines are
//! quoted-printable or base64 encoded. Credentials only ever travel over TLS. The message id is
//! the outbox idempotency key, so a retried message is recognisable as the same one. SMTP 4xx
//! replies, network and TLS errors are retried; 5xx replies and a server that cannot meet the
//! configured security are dead-lettered.

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{payload, Attempt};
use crate::alerts::ChannelConfig;
use crate::query::outbox::Claimed;

fn header_safe(s: &str) -> String {
    // No CR/LF may reach a header (header injection), and no control characters.
    s.chars().filter(|c| !c.is_control()).collect()
}

fn mailbox(what: &str, s: &str) -> Result<Mailbox, String> {
    s.trim()
        .parse::<Mailbox>()
        .map_err(|e| format!("{what} {:?}: {e}", header_safe(s)))
}

/// The message: headers, a text summary, and the webhook JSON for machines.
pub fn message(ch: &ChannelConfig, m: &Claimed, am: &serde_json::Value) -> Result<Message, String> {
    let text = payload::text(am);
    let subject = header_safe(text.lines().next().unwrap_or("opsdash alert"));
    let mut body = text.clone();
    body.push_str("\n\n-- \nopsdash alert message ");
    body.push_str(&m.idempotency_key);
    body.push_str("\n\n");
    body.push_str(&serde_json::to_string_pretty(am).unwrap_or_default());
    body.push('\n');
    let mut builder = Message::builder()
        .from(mailbox("from", &ch.from)?)
        .subject(subject)
        .date_now()
        .message_id(Some(format!(
            "<{}@opsdash>",
            header_safe(&m.idempotency_key)
        )));
    for to in &ch.to {
        builder = builder.to(mailbox("to", to)?);
    }
    builder
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| format!("building the message: {e}"))
}

/// lettre's TLS parameters for the channel: exactly `trust::root_store`'s certificates.
fn tls_parameters(ch: &ChannelConfig) -> Result<TlsParameters, String> {
    let system = crate::trust::system_roots();
    let store = if system.is_empty() {
        CertificateStore::WebpkiRoots
    } else {
        CertificateStore::None
    };
    let mut builder = TlsParameters::builder(ch.smtp_host.clone()).certificate_store(store);
    let extra = [ch.ca_file.as_str(), ch.smtp_ca_file.as_str()];
    let mut certs = system.to_vec();
    for path in extra.iter().filter(|p| !p.is_empty()) {
        certs.extend(crate::trust::ca_file_certs(path)?);
    }
    for cert in certs {
        let cert = Certificate::from_der(cert.to_vec()).map_err(|e| format!("TLS setup: {e}"))?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build_rustls()
        .map_err(|e| format!("TLS setup: {e}"))
}

fn transport(ch: &ChannelConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let has_credentials = !ch.smtp_username.is_empty();
    let tls = match ch.smtp_tls.as_str() {
        "none" if has_credentials => {
            return Err(
                "refusing to send the SMTP password over an unencrypted connection \
                 (smtp_tls = \"none\")"
                    .into(),
            )
        }
        "none" => Tls::None,
        "tls" => Tls::Wrapper(tls_parameters(ch)?),
        "starttls" => Tls::Required(tls_parameters(ch)?),
        // With credentials, "auto" still never sends them in clear: STARTTLS becomes required.
        _ if has_credentials => Tls::Required(tls_parameters(ch)?),
        _ => Tls::Opportunistic(tls_parameters(ch)?),
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(ch.smtp_host.as_str())
        .port(ch.smtp_port)
        .tls(tls);
    if has_credentials {
        b = b.credentials(Credentials::new(
            ch.smtp_username.clone(),
            ch.smtp_password.expose().to_string(),
        ));
    }
    Ok(b.build())
}

/// The attempt a lettre error comes to.
fn failed(ch: &ChannelConfig, e: &lettre::transport::smtp::Error) -> Attempt {
    let at = format!("SMTP {}:{}", ch.smtp_host, ch.smtp_port);
    let clean = |s: &str| format!("{at}: {}", crate::sanitize::clean(s));
    if let Some(code) = e.status() {
        let code = u16::from(code) as i32;
        let error = clean(&e.to_string());
        return if (400..500).contains(&code) {
            Attempt::Transient {
                status: Some(code),
                error,
                retry_after: None,
            }
        } else {
            Attempt::Permanent {
                status: Some(code),
                error,
            }
        };
    }
    if let Some(tls) = crate::trust::rustls_cause(e) {
        // Worth retrying: the server's certificate may be renewed, or the CA file fixed.
        return Attempt::Transient {
            status: None,
            error: clean(&format!("TLS handshake: {tls}")),
            retry_after: None,
        };
    }
    let text = e.to_string();
    if e.is_client() && text.contains("STARTTLS") {
        let why = if ch.smtp_username.is_empty() {
            "the server does not offer STARTTLS and smtp_tls = \"starttls\" requires it"
        } else {
            "refusing to send the SMTP password over an unencrypted connection (the server \
             offers no STARTTLS)"
        };
        return Attempt::Permanent {
            status: None,
            error: clean(why),
        };
    }
    if e.is_client() {
        // No AUTH mechanism in common and the like: the configuration must change first.
        return Attempt::Permanent {
            status: None,
            error: clean(&crate::trust::error_chain(e)),
        };
    }
    Attempt::Transient {
        status: None,
        error: clean(&crate::trust::error_chain(e)),
        retry_after: None,
    }
}

pub async fn send(ch: &ChannelConfig, m: &Claimed) -> Attempt {
    let am = payload::alertmanager(m, &ch.name);
    let prepared = message(ch, m, &am).and_then(|msg| Ok((msg, transport(ch)?)));
    let (msg, transport) = match prepared {
        Ok(p) => p,
        Err(e) => {
            return Attempt::Permanent {
                status: None,
                error: format!(
                    "SMTP {}:{}: {}",
                    ch.smtp_host,
                    ch.smtp_port,
                    crate::sanitize::clean(&e)
                ),
            }
        }
    };
    match transport.send(msg).await {
        Ok(resp) => Attempt::Delivered {
            status: Some(u16::from(resp.code()) as i32),
        },
        Err(e) => failed(ch, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_address_is_named_and_a_display_name_is_kept_apart() {
        let e = mailbox("from", "not an address").unwrap_err();
        assert!(e.starts_with("from \"not an address\""), "{e}");
        let m = mailbox("from", "Ops <ops@example.com>").unwrap();
        assert_eq!(m.email.to_string(), "ops@example.com");
        assert_eq!(m.name.as_deref(), Some("Ops"));
    }
}
