//! Who is sending: bearer tokens from `[[server.token]]`, stored as their SHA-256 and compared
//! in constant time, each allowed a set of scopes. The token's name becomes the source of the
//! rows it sends. With no token configured nothing is asked (the listener is then loopback
//! only, or `insecure` said so).

use axum::extract::{Request, State as AxState};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::reply::Reject;
use super::State;
use crate::config::ServerToken;

/// The sender of a request, put in its extensions by [`layer`].
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The token's name; None when no tokens are configured.
    pub name: Option<String>,
}

impl Client {
    /// The source recorded for the rows: the token's name, else the protocol's.
    pub fn source(&self, protocol: &str) -> String {
        self.name.clone().unwrap_or_else(|| protocol.to_string())
    }
}

/// The scope a path needs, None for the routes anyone may call (health, metrics).
pub fn scope_of(path: &str) -> Option<&'static str> {
    if path.starts_with("/v1/logs") || path.starts_with("/loki/") {
        Some("logs")
    } else if path.starts_with("/v1/traces") {
        Some("traces")
    } else if path.starts_with("/api/v2/") {
        Some("alerts")
    } else if path.starts_with("/ingest") {
        Some("ingest")
    } else {
        None
    }
}

/// The token a bearer presents, if it is one of `tokens` and allowed `scope`.
pub fn find<'a>(tokens: &'a [ServerToken], bearer: &str, scope: &str) -> Option<&'a ServerToken> {
    let digest = Sha256::digest(bearer.as_bytes());
    let mut found = None;
    // Every token is compared (no early exit), so timing says nothing about which matched.
    for t in tokens {
        let Ok(want) = hex::decode(t.sha256.trim()) else {
            continue;
        };
        if want.len() == digest.len() && bool::from(want.as_slice().ct_eq(digest.as_slice())) {
            found = Some(t);
        }
    }
    found.filter(|t| t.scopes.iter().any(|s| s == "*" || s == scope))
}

/// Middleware: refuses a request without an allowed token (when tokens are configured) and
/// tells the route who sent it.
pub async fn layer(AxState(state): AxState<State>, mut req: Request, next: Next) -> Response {
    let tokens = &state.cfg.server.token;
    let mut client = Client::default();
    if let Some(scope) = scope_of(req.uri().path()) {
        if !tokens.is_empty() {
            let bearer = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim);
            match bearer.and_then(|b| find(tokens, b, scope)) {
                Some(t) => client.name = Some(t.name.clone()),
                None => return Reject::Unauthorized.into_response(),
            }
        }
    }
    req.extensions_mut().insert(client);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, secret: &str, scopes: &[&str]) -> ServerToken {
        ServerToken {
            name: name.into(),
            sha256: hex::encode(Sha256::digest(secret.as_bytes())),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            rate: 0,
        }
    }

    #[test]
    fn token_and_scope() {
        let tokens = vec![
            token("web1", "s3cret", &["logs"]),
            token("prom", "p", &["*"]),
        ];
        assert_eq!(find(&tokens, "s3cret", "logs").unwrap().name, "web1");
        assert!(find(&tokens, "s3cret", "alerts").is_none());
        assert!(find(&tokens, "wrong", "logs").is_none());
        assert_eq!(find(&tokens, "p", "alerts").unwrap().name, "prom");
        assert_eq!(scope_of("/loki/api/v1/push"), Some("logs"));
        assert_eq!(scope_of("/healthz"), None);
    }
}
