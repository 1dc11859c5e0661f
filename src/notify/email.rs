//! Email channel: an SMTP client over tokio with TLS (STARTTLS or implicit) and AUTH
//! (PLAIN, else LOGIN), enough for a local MTA, an internal relay and the usual providers.
//! Credentials only ever travel over TLS. The message id is the outbox idempotency key, so a
//! retried message is recognisable as the same one. SMTP 4xx replies, network and TLS errors
//! are retried; 5xx replies and a server that cannot meet the configured security are
//! dead-lettered.

use std::sync::Arc;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types::pem::PemObject, pki_types::CertificateDer};

use super::{payload, Attempt};
use crate::alerts::ChannelConfig;
use crate::query::alerts::Claimed;

/// Plain TCP before STARTTLS, TLS after: the conversation does not care which.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

type Conn = BufReader<Box<dyn Stream>>;

/// Why a conversation ended without the message being accepted.
enum Failed {
    /// The server answered with an unexpected reply code.
    Refused { code: i32, text: String },
    /// Network or TLS trouble: worth retrying.
    Transient(String),
    /// This server cannot be used as configured (no STARTTLS, no usable AUTH): retrying cannot
    /// help until the configuration changes.
    Permanent(String),
}

impl From<std::io::Error> for Failed {
    fn from(e: std::io::Error) -> Failed {
        Failed::Transient(e.to_string())
    }
}

fn header_safe(s: &str) -> String {
    // No CR/LF may reach a header (header injection), and no control characters.
    s.chars().filter(|c| !c.is_control()).collect()
}

/// The RFC 5322 message: headers, a text summary, and the webhook JSON for machines.
pub fn message(ch: &ChannelConfig, m: &Claimed, am: &serde_json::Value) -> String {
    let text = payload::text(am);
    let subject = header_safe(text.lines().next().unwrap_or("opsdash alert"));
    let mut body = String::new();
    body.push_str(&text);
    body.push_str("\n\n-- \nopsdash alert message ");
    body.push_str(&m.idempotency_key);
    body.push_str("\n\n");
    body.push_str(&serde_json::to_string_pretty(am).unwrap_or_default());
    let mut out = format!(
        "From: {}\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <{}@opsdash>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n",
        header_safe(&ch.from),
        header_safe(&ch.to.join(", ")),
        subject,
        chrono::Utc::now().to_rfc2822(),
        header_safe(&m.idempotency_key),
    );
    for line in body.lines() {
        // Dot-stuffing: a line starting with '.' would otherwise end or corrupt the DATA.
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

/// One reply: its code and its lines without the code ("250-AUTH PLAIN" -> "AUTH PLAIN").
async fn reply(conn: &mut Conn) -> Result<(i32, Vec<String>), Failed> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).await? == 0 {
            return Err(Failed::Transient("connection closed by the server".into()));
        }
        let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        lines.push(line.get(4..).unwrap_or("").trim_end().to_string());
        // "250-..." continues a multi-line reply, "250 ..." ends it.
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, lines));
        }
    }
}

async fn expect(conn: &mut Conn, ok: &[i32]) -> Result<Vec<String>, Failed> {
    let (code, lines) = reply(conn).await?;
    if ok.contains(&code) {
        Ok(lines)
    } else {
        Err(Failed::Refused {
            code,
            text: format!("{code} {}", lines.join(" ")),
        })
    }
}

/// Sends one command line and waits for one of the `ok` reply codes.
async fn command(conn: &mut Conn, line: &str, ok: &[i32]) -> Result<Vec<String>, Failed> {
    conn.get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .await?;
    expect(conn, ok).await
}

/// Whether an EHLO reply lists `ext` (case-insensitive), and its parameters.
fn extension<'a>(ehlo: &'a [String], ext: &str) -> Option<&'a str> {
    ehlo.iter().skip(1).find_map(|l| {
        let (name, params) = l.split_once(' ').unwrap_or((l.as_str(), ""));
        name.eq_ignore_ascii_case(ext).then_some(params)
    })
}

fn tls_connector(ch: &ChannelConfig) -> Result<tokio_rustls::TlsConnector, Failed> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if !ch.smtp_ca_file.is_empty() {
        let certs = CertificateDer::pem_file_iter(&ch.smtp_ca_file)
            .map_err(|e| Failed::Permanent(format!("smtp_ca_file {}: {e}", ch.smtp_ca_file)))?;
        for cert in certs {
            let cert = cert
                .map_err(|e| Failed::Permanent(format!("smtp_ca_file {}: {e}", ch.smtp_ca_file)))?;
            roots
                .add(cert)
                .map_err(|e| Failed::Permanent(format!("smtp_ca_file {}: {e}", ch.smtp_ca_file)))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Failed::Permanent(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Wraps `stream` in TLS, verifying the server's certificate for `smtp_host`.
async fn tls(ch: &ChannelConfig, stream: Box<dyn Stream>) -> Result<Box<dyn Stream>, Failed> {
    let name = rustls::pki_types::ServerName::try_from(ch.smtp_host.clone())
        .map_err(|e| Failed::Permanent(format!("smtp_host {:?}: {e}", ch.smtp_host)))?;
    let connector = tls_connector(ch)?;
    let tls = connector
        .connect(name, stream)
        .await
        .map_err(|e| Failed::Transient(format!("TLS handshake: {e}")))?;
    Ok(Box::new(tls))
}

async fn authenticate(conn: &mut Conn, ch: &ChannelConfig, ehlo: &[String]) -> Result<(), Failed> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mechanisms = extension(ehlo, "AUTH").unwrap_or("").to_ascii_uppercase();
    let offered = |m: &str| mechanisms.split_whitespace().any(|x| x == m);
    let password = ch.smtp_password.expose();
    if offered("PLAIN") {
        let token = b64(&format!("\0{}\0{password}", ch.smtp_username));
        command(conn, &format!("AUTH PLAIN {token}"), &[235]).await?;
    } else if offered("LOGIN") {
        command(conn, "AUTH LOGIN", &[334]).await?;
        command(conn, &b64(&ch.smtp_username), &[334]).await?;
        command(conn, &b64(password), &[235]).await?;
    } else {
        return Err(Failed::Permanent(format!(
            "the server offers no AUTH mechanism opsdash speaks (PLAIN, LOGIN): {:?}",
            mechanisms
        )));
    }
    Ok(())
}

async fn converse(ch: &ChannelConfig, data: &str) -> Result<(), Failed> {
    let tcp = TcpStream::connect((ch.smtp_host.as_str(), ch.smtp_port)).await?;
    let implicit = ch.smtp_tls == "tls";
    let stream: Box<dyn Stream> = if implicit {
        tls(ch, Box::new(tcp)).await?
    } else {
        Box::new(tcp)
    };
    let mut conn: Conn = BufReader::new(stream);
    expect(&mut conn, &[220]).await?;
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| header_safe(h.trim()))
        .unwrap_or_else(|_| "localhost".into());
    let mut ehlo = command(&mut conn, &format!("EHLO {host}"), &[250]).await?;
    let mut secure = implicit;
    if !secure && ch.smtp_tls != "none" {
        if extension(&ehlo, "STARTTLS").is_some() {
            command(&mut conn, "STARTTLS", &[220]).await?;
            // Nothing may be buffered past the 220: a server that pipelines plain text after
            // it would be injecting it into the encrypted session.
            if !conn.buffer().is_empty() {
                return Err(Failed::Permanent(
                    "the server sent data after 220 to STARTTLS".into(),
                ));
            }
            conn = BufReader::new(tls(ch, conn.into_inner()).await?);
            secure = true;
            // The capabilities before TLS mean nothing after it (RFC 3207).
            ehlo = command(&mut conn, &format!("EHLO {host}"), &[250]).await?;
        } else if ch.smtp_tls == "starttls" {
            return Err(Failed::Permanent(
                "the server does not offer STARTTLS and smtp_tls = \"starttls\" requires it".into(),
            ));
        }
    }
    if !ch.smtp_username.is_empty() {
        if !secure {
            return Err(Failed::Permanent(
                "refusing to send the SMTP password over an unencrypted connection (the server \
                 offers no STARTTLS)"
                    .into(),
            ));
        }
        authenticate(&mut conn, ch, &ehlo).await?;
    }
    command(
        &mut conn,
        &format!("MAIL FROM:<{}>", header_safe(&ch.from)),
        &[250],
    )
    .await?;
    for to in &ch.to {
        command(
            &mut conn,
            &format!("RCPT TO:<{}>", header_safe(to)),
            &[250, 251],
        )
        .await?;
    }
    command(&mut conn, "DATA", &[354]).await?;
    conn.get_mut().write_all(data.as_bytes()).await?;
    command(&mut conn, ".", &[250]).await?;
    // The message is accepted; how the server says goodbye does not matter.
    let _ = command(&mut conn, "QUIT", &[221]).await;
    let _ = conn.get_mut().shutdown().await;
    Ok(())
}

pub async fn send(ch: &ChannelConfig, m: &Claimed) -> Attempt {
    let am = payload::alertmanager(m, &ch.name);
    let data = message(ch, m, &am);
    let at = format!("SMTP {}:{}", ch.smtp_host, ch.smtp_port);
    match converse(ch, &data).await {
        Ok(()) => Attempt::Delivered { status: Some(250) },
        Err(Failed::Refused { code, text }) => {
            let error = format!("{at}: {}", crate::sanitize::clean(&text));
            if (400..500).contains(&code) {
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
            }
        }
        Err(Failed::Transient(e)) => Attempt::Transient {
            status: None,
            error: format!("{at}: {}", crate::sanitize::clean(&e)),
            retry_after: None,
        },
        Err(Failed::Permanent(e)) => Attempt::Permanent {
            status: None,
            error: format!("{at}: {}", crate::sanitize::clean(&e)),
        },
    }
}
