//! Email channel: a minimal SMTP client over tokio TCP for a relay that needs neither TLS nor
//! authentication (the local MTA, a relay inside the ops network). The message id is the
//! outbox idempotency key, so a retried message is recognisable as the same one. SMTP 4xx
//! replies and network errors are retried; 5xx replies are dead-lettered.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{payload, Attempt};
use crate::alerts::ChannelConfig;
use crate::query::alerts::Claimed;

/// A reply that ended the conversation.
struct Refused {
    code: i32,
    text: String,
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

async fn reply(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<(i32, String)> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        text.push_str(line.trim_end());
        // "250-..." continues a multi-line reply, "250 ..." ends it.
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, text));
        }
        text.push(' ');
    }
}

async fn converse(ch: &ChannelConfig, data: &str) -> std::io::Result<Result<(), Refused>> {
    let sock = TcpStream::connect((ch.smtp_host.as_str(), ch.smtp_port)).await?;
    let (rd, mut wr) = sock.into_split();
    let mut rd = BufReader::new(rd);
    let expect = |got: (i32, String), ok: &[i32]| {
        if ok.contains(&got.0) {
            Ok(())
        } else {
            Err(Refused {
                code: got.0,
                text: got.1,
            })
        }
    };
    if let Err(r) = expect(reply(&mut rd).await?, &[220]) {
        return Ok(Err(r));
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| header_safe(h.trim()))
        .unwrap_or_else(|_| "localhost".into());
    let mut commands = vec![
        format!("EHLO {host}"),
        format!("MAIL FROM:<{}>", header_safe(&ch.from)),
    ];
    commands.extend(
        ch.to
            .iter()
            .map(|t| format!("RCPT TO:<{}>", header_safe(t))),
    );
    for cmd in commands {
        wr.write_all(format!("{cmd}\r\n").as_bytes()).await?;
        if let Err(r) = expect(reply(&mut rd).await?, &[250, 251]) {
            return Ok(Err(r));
        }
    }
    wr.write_all(b"DATA\r\n").await?;
    if let Err(r) = expect(reply(&mut rd).await?, &[354]) {
        return Ok(Err(r));
    }
    wr.write_all(data.as_bytes()).await?;
    wr.write_all(b".\r\n").await?;
    if let Err(r) = expect(reply(&mut rd).await?, &[250]) {
        return Ok(Err(r));
    }
    wr.write_all(b"QUIT\r\n").await?;
    // The message is accepted; how the server says goodbye does not matter.
    let _ = reply(&mut rd).await;
    Ok(Ok(()))
}

pub async fn send(ch: &ChannelConfig, m: &Claimed) -> Attempt {
    let am = payload::alertmanager(m, &ch.name);
    let data = message(ch, m, &am);
    match converse(ch, &data).await {
        Ok(Ok(())) => Attempt::Delivered { status: Some(250) },
        Ok(Err(r)) => {
            let error = format!("SMTP {}", crate::sanitize::clean(&r.text));
            if (400..500).contains(&r.code) {
                Attempt::Transient {
                    status: Some(r.code),
                    error,
                    retry_after: None,
                }
            } else {
                Attempt::Permanent {
                    status: Some(r.code),
                    error,
                }
            }
        }
        Err(e) => Attempt::Transient {
            status: None,
            error: format!("SMTP {}:{}: {e}", ch.smtp_host, ch.smtp_port),
            retry_after: None,
        },
    }
}
