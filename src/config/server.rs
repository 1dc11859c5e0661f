//! `[server]` and `[[server.token]]`: the network receiver of `opsdash serve`.

use serde::{Deserialize, Serialize};

/// `[server]`: the network receiver of `opsdash serve` (OTLP, Loki, NDJSON, Alertmanager API,
/// syslog).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Run the receiver inside `opsdash worker` and the dashboard too.
    pub enabled: bool,
    /// HTTP listen address. A non-loopback address needs TLS and tokens, or `insecure`.
    pub listen: String,
    /// Allow a non-loopback listener without TLS or without tokens.
    pub insecure: bool,
    /// PEM certificate chain and private key for HTTPS (and syslog over TLS).
    pub tls_cert: String,
    pub tls_key: String,
    /// Largest request body accepted as sent, in bytes.
    pub body_limit: usize,
    /// Largest request body after decompression, in bytes (a gzip or snappy bomb is refused).
    pub decompressed_limit: usize,
    /// Requests waiting for the database at most; more are answered 429 with Retry-After.
    pub queue: usize,
    /// A connection that sends no request for this long is closed (keep-alive connections
    /// hold one of the receiver's places; also the time a client has to send a request's
    /// headers).
    pub idle_timeout_ms: u64,
    /// Syslog listeners (RFC 3164/5424), off when empty: UDP, TCP (RFC 6587 framing), and TCP
    /// with TLS (RFC 5425).
    pub syslog_udp: String,
    pub syslog_tcp: String,
    pub syslog_tls: String,
    /// Bearer tokens (`[[server.token]]`); none: no token is asked for (loopback only).
    pub token: Vec<ServerToken>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            enabled: false,
            listen: "127.0.0.1:4318".into(),
            insecure: false,
            tls_cert: String::new(),
            tls_key: String::new(),
            body_limit: 16 << 20,
            decompressed_limit: 64 << 20,
            queue: 64,
            idle_timeout_ms: 30_000,
            syslog_udp: String::new(),
            syslog_tcp: String::new(),
            syslog_tls: String::new(),
            token: Vec::new(),
        }
    }
}

/// One client allowed to send: its name (stored as the rows' source), the SHA-256 of its token
/// (hex; the token itself is never written down), and the routes it may use.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerToken {
    pub name: String,
    pub sha256: String,
    /// Scopes: `logs`, `traces`, `alerts`, `ingest`, or `*` for all.
    #[serde(default = "all_scopes")]
    pub scopes: Vec<String>,
    /// Requests per second allowed (0: no limit).
    #[serde(default)]
    pub rate: u32,
}

fn all_scopes() -> Vec<String> {
    vec!["*".into()]
}
