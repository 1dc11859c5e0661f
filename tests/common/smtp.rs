//! A small SMTP server on 127.0.0.1 for email channel tests: accepts every message (or answers
//! RCPT with a scripted code) and records the DATA of each, optionally with STARTTLS or
//! implicit TLS (a self-signed certificate made for the test) and AUTH PLAIN/LOGIN.

use std::sync::{Arc, Mutex};

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::rustls;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
type Conn = BufReader<Box<dyn Stream>>;

/// How the server secures and authenticates sessions.
#[derive(Clone, Default)]
pub struct Security {
    /// Offer STARTTLS with this acceptor.
    pub starttls: Option<tokio_rustls::TlsAcceptor>,
    /// Speak TLS from the first byte (port 465 style) with this acceptor.
    pub implicit: Option<tokio_rustls::TlsAcceptor>,
    /// Offer AUTH with these mechanisms (e.g. "PLAIN LOGIN") and accept these credentials.
    pub auth: Option<(&'static str, String, String)>,
}

/// A message as received: whether the session was encrypted, who authenticated, the envelope
/// (the MAIL and RCPT command lines as sent) and the DATA.
#[derive(Clone, Debug)]
pub struct Received {
    pub tls: bool,
    pub user: Option<String>,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: String,
}

#[derive(Clone)]
pub struct SmtpServer {
    pub port: u16,
    pub messages: Arc<Mutex<Vec<String>>>,
    pub received: Arc<Mutex<Vec<Received>>>,
    rcpt_reply: Arc<Mutex<Vec<&'static str>>>,
    security: Security,
}

/// A self-signed certificate for "localhost": the acceptor, and the certificate's PEM for the
/// client's `smtp_ca_file`.
pub fn self_signed() -> (tokio_rustls::TlsAcceptor, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pem = cert.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), pem)
}

impl SmtpServer {
    /// `rcpt_replies`: replies to the first RCPT commands (then "250 ok").
    pub async fn start(rcpt_replies: Vec<&'static str>) -> SmtpServer {
        Self::start_with(rcpt_replies, Security::default()).await
    }

    pub async fn start_with(rcpt_replies: Vec<&'static str>, security: Security) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = SmtpServer {
            port: listener.local_addr().unwrap().port(),
            messages: Arc::default(),
            received: Arc::default(),
            rcpt_reply: Arc::new(Mutex::new(rcpt_replies.into_iter().rev().collect())),
            security,
        };
        let me = s.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let me = me.clone();
                tokio::spawn(async move {
                    let _ = me.serve(sock).await;
                });
            }
        });
        s
    }

    async fn serve(&self, sock: tokio::net::TcpStream) -> std::io::Result<()> {
        let mut tls = false;
        let stream: Box<dyn Stream> = match &self.security.implicit {
            Some(acceptor) => {
                tls = true;
                Box::new(acceptor.accept(sock).await?)
            }
            None => Box::new(sock),
        };
        let mut conn: Conn = BufReader::new(stream);
        let mut user = None;
        let (mut mail_from, mut rcpt_to) = (String::new(), Vec::new());
        send(&mut conn, "220 test ESMTP").await?;
        loop {
            let line = read(&mut conn).await?;
            let Some(line) = line else { return Ok(()) };
            let cmd = line.to_ascii_uppercase();
            if cmd.starts_with("EHLO") {
                let mut caps = vec!["test".to_string(), "8BITMIME".to_string()];
                if self.security.starttls.is_some() && !tls {
                    caps.push("STARTTLS".into());
                }
                if let Some((mechs, _, _)) = &self.security.auth {
                    caps.push(format!("AUTH {mechs}"));
                }
                let n = caps.len();
                for (i, c) in caps.iter().enumerate() {
                    let sep = if i + 1 == n { ' ' } else { '-' };
                    send(&mut conn, &format!("250{sep}{c}")).await?;
                }
            } else if cmd == "STARTTLS" {
                let Some(acceptor) = self.security.starttls.clone() else {
                    send(&mut conn, "502 not offered").await?;
                    continue;
                };
                send(&mut conn, "220 go ahead").await?;
                let inner = conn.into_inner();
                conn = BufReader::new(Box::new(acceptor.accept(inner).await?));
                tls = true;
            } else if cmd.starts_with("AUTH PLAIN ") {
                let token = decode(&line[11..]);
                let mut parts = token.split('\0').skip(1);
                let (u, p) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                user = self.check(&mut conn, u, p).await?;
            } else if cmd == "AUTH LOGIN" {
                send(&mut conn, "334 VXNlcm5hbWU6").await?;
                let u = decode(&read(&mut conn).await?.unwrap_or_default());
                send(&mut conn, "334 UGFzc3dvcmQ6").await?;
                let p = decode(&read(&mut conn).await?.unwrap_or_default());
                user = self.check(&mut conn, &u, &p).await?;
            } else if cmd.starts_with("MAIL") && self.security.auth.is_some() && user.is_none() {
                send(&mut conn, "530 authentication required").await?;
            } else if cmd.starts_with("MAIL") {
                mail_from = line.clone();
                send(&mut conn, "250 ok").await?;
            } else if cmd.starts_with("RCPT") {
                rcpt_to.push(line.clone());
                let r = self.rcpt_reply.lock().unwrap().pop().unwrap_or("250 ok");
                send(&mut conn, r).await?;
            } else if cmd == "DATA" {
                send(&mut conn, "354 go").await?;
                let mut data = String::new();
                loop {
                    let mut l = String::new();
                    if conn.read_line(&mut l).await? == 0 {
                        return Ok(());
                    }
                    if l == ".\r\n" {
                        break;
                    }
                    data.push_str(&l);
                }
                self.messages.lock().unwrap().push(data.clone());
                self.received.lock().unwrap().push(Received {
                    tls,
                    user: user.clone(),
                    mail_from: std::mem::take(&mut mail_from),
                    rcpt_to: std::mem::take(&mut rcpt_to),
                    data,
                });
                send(&mut conn, "250 queued").await?;
            } else if cmd == "QUIT" {
                send(&mut conn, "221 bye").await?;
                return Ok(());
            } else {
                send(&mut conn, "250 ok").await?;
            }
        }
    }

    async fn check(&self, conn: &mut Conn, u: &str, p: &str) -> std::io::Result<Option<String>> {
        let ok = matches!(&self.security.auth, Some((_, eu, ep)) if eu == u && ep == p);
        if ok {
            send(conn, "235 authenticated").await?;
            Ok(Some(u.to_string()))
        } else {
            send(conn, "535 bad credentials").await?;
            Ok(None)
        }
    }
}

fn decode(s: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn send(conn: &mut Conn, line: &str) -> std::io::Result<()> {
    conn.get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .await
}

async fn read(conn: &mut Conn) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if conn.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end().to_string()))
}
