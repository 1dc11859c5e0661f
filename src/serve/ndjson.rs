//! `POST /ingest`: newline-delimited JSON (or one JSON array) of log records, each read by the
//! same detector and parsers as `opsdash ingest`, for Vector's and Fluent Bit's `http` outputs
//! and applications' own batch loggers. A record that is a JSON string is taken as a raw line.

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use super::auth::Client;
use super::body;
use super::reply::Reject;
use super::State;

pub fn routes() -> Router<State> {
    Router::new().route("/ingest", post(ingest))
}

async fn ingest(
    AxState(state): AxState<State>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<(StatusCode, Json<Value>), Reject> {
    let text = body::decode(&headers, &raw, state.cfg.server.decompressed_limit)?;
    let lines = records(&text)?;
    let stored = state
        .sink
        .submit_lines(&client.source("ingest"), lines)
        .await?;
    Ok((
        StatusCode::OK,
        Json(json!({
            "accepted": stored.accepted,
            "rejected": stored.rejected,
            "errors": stored.rejects,
        })),
    ))
}

/// The body's records as lines: the elements of a JSON array (each re-encoded on one line, a
/// string element as itself), else the body's non-empty lines.
fn records(text: &[u8]) -> Result<Vec<Vec<u8>>, Reject> {
    let start = text.iter().position(|b| !b.is_ascii_whitespace());
    if start.is_some_and(|i| text[i] == b'[') {
        let items: Vec<Value> = serde_json::from_slice(text)
            .map_err(|e| Reject::BadRequest(format!("JSON array body: {e}")))?;
        return Ok(items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => s.into_bytes(),
                other => other.to_string().into_bytes(),
            })
            .collect());
    }
    Ok(text
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(<[u8]>::to_vec)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_and_lines() {
        let a = records(br#" [{"msg":"a"}, "plain line", {"b":1}]"#).unwrap();
        assert_eq!(
            a,
            vec![
                br#"{"msg":"a"}"#.to_vec(),
                b"plain line".to_vec(),
                br#"{"b":1}"#.to_vec()
            ]
        );
        let l = records(b"{\"a\":1}\r\n\n{\"b\":2}\n").unwrap();
        assert_eq!(l, vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]);
        assert!(matches!(records(b"[{]"), Err(Reject::BadRequest(_))));
    }
}
