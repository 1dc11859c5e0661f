//! How a request is refused: one status code per kind of failure, a one-line reason in the body,
//! and `Retry-After` where the client should come back (the database away, the queue full).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    /// The body cannot be read as the protocol says (400).
    BadRequest(String),
    /// A content type or encoding this route does not take (415).
    Unsupported(String),
    /// The body, as sent or decompressed, is over its limit (413).
    TooLarge(String),
    /// No token, or a token that is not known or not allowed here (401).
    Unauthorized,
    /// The token's rate limit is used up (429).
    RateLimited { retry_after: u64 },
    /// The database cannot take the rows now: nothing was stored (503).
    Unavailable { retry_after: u64, why: String },
    /// Too many requests wait for the database (429).
    Busy { retry_after: u64 },
}

impl Reject {
    pub fn status(&self) -> StatusCode {
        match self {
            Reject::BadRequest(_) => StatusCode::BAD_REQUEST,
            Reject::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Reject::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Reject::Unauthorized => StatusCode::UNAUTHORIZED,
            Reject::RateLimited { .. } | Reject::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
            Reject::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Reject::BadRequest(m) | Reject::Unsupported(m) | Reject::TooLarge(m) => m.clone(),
            Reject::Unauthorized => "missing or unknown bearer token".into(),
            Reject::RateLimited { .. } => "rate limit of this token reached".into(),
            Reject::Unavailable { why, .. } => format!("database unavailable: {why}"),
            Reject::Busy { .. } => "too many requests waiting for the database".into(),
        }
    }

    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Reject::RateLimited { retry_after }
            | Reject::Busy { retry_after }
            | Reject::Unavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        let mut resp = (self.status(), format!("{}\n", self.message())).into_response();
        if let Some(secs) = self.retry_after() {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self == Reject::Unauthorized {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"opsdash\""),
            );
        }
        resp
    }
}
