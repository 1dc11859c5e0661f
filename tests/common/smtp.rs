//! A minimal SMTP server on 127.0.0.1 for email channel tests: accepts every message (or
//! answers RCPT with a scripted code) and records the DATA of each.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Clone)]
pub struct SmtpServer {
    pub port: u16,
    pub messages: Arc<Mutex<Vec<String>>>,
    rcpt_reply: Arc<Mutex<Vec<&'static str>>>,
}

impl SmtpServer {
    /// `rcpt_replies`: replies to the first RCPT commands (then "250 ok").
    pub async fn start(rcpt_replies: Vec<&'static str>) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = SmtpServer {
            port: listener.local_addr().unwrap().port(),
            messages: Arc::default(),
            rcpt_reply: Arc::new(Mutex::new(rcpt_replies.into_iter().rev().collect())),
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
        let (rd, mut wr) = sock.into_split();
        let mut rd = BufReader::new(rd);
        wr.write_all(b"220 test ESMTP\r\n").await?;
        loop {
            let mut line = String::new();
            if rd.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let cmd = line.trim_end().to_ascii_uppercase();
            if cmd.starts_with("EHLO") {
                wr.write_all(b"250-test\r\n250 8BITMIME\r\n").await?;
            } else if cmd.starts_with("RCPT") {
                let r = self.rcpt_reply.lock().unwrap().pop().unwrap_or("250 ok");
                wr.write_all(format!("{r}\r\n").as_bytes()).await?;
            } else if cmd == "DATA" {
                wr.write_all(b"354 go\r\n").await?;
                let mut data = String::new();
                loop {
                    let mut l = String::new();
                    if rd.read_line(&mut l).await? == 0 {
                        return Ok(());
                    }
                    if l == ".\r\n" {
                        break;
                    }
                    data.push_str(&l);
                }
                self.messages.lock().unwrap().push(data);
                wr.write_all(b"250 queued\r\n").await?;
            } else if cmd == "QUIT" {
                wr.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else {
                wr.write_all(b"250 ok\r\n").await?;
            }
        }
    }
}
