//! HTTP channels (generic webhook, Slack, Discord, PagerDuty). Every request carries the
//! message's stable id in `webhook-id` (the same on every retry, so receivers drop duplicates)
//! and, when the channel has a secret, a Standard Webhooks `webhook-signature`:
//! `v1,` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{payload, Attempt};
use crate::alerts::ChannelConfig;
use crate::query::outbox::Claimed;

const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// The client for a channel's `ca_file` (empty: the system's roots alone). One per file for the
/// life of the process, so connections are reused across messages.
fn client(ca_file: &str) -> Result<reqwest::Client, String> {
    static CLIENTS: OnceLock<Mutex<HashMap<String, reqwest::Client>>> = OnceLock::new();
    let mut clients = CLIENTS
        .get_or_init(Mutex::default)
        .lock()
        .map_err(|_| "webhook client cache poisoned".to_string())?;
    if let Some(c) = clients.get(ca_file) {
        return Ok(c.clone());
    }
    let c = crate::trust::http_client(ca_file)?
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    clients.insert(ca_file.to_string(), c.clone());
    Ok(c)
}

/// `v1,<base64 signature>` of a body.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        // HMAC accepts keys of any length; this branch cannot be taken.
        Err(_) => return String::new(),
    };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// Seconds of a Retry-After header (delta-seconds or an HTTP date).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let t = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    (t.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
}

pub async fn send(ch: &ChannelConfig, m: &Claimed) -> Attempt {
    let am = payload::alertmanager(m, &ch.name);
    let body = payload::body(&ch.kind, &am, ch.routing_key.expose());
    let bytes = match serde_json::to_vec(&body) {
        Ok(b) => b,
        Err(e) => {
            return Attempt::Permanent {
                status: None,
                error: format!("encoding the message: {e}"),
            }
        }
    };
    let url = match (ch.kind.as_str(), ch.url.is_empty()) {
        ("pagerduty", true) => PAGERDUTY_URL,
        _ => ch.url.expose(),
    };
    let client = match client(&ch.ca_file) {
        Ok(c) => c,
        // An unreadable ca_file will not fix itself by retrying.
        Err(error) => {
            return Attempt::Permanent {
                status: None,
                error,
            }
        }
    };
    let ts = chrono::Utc::now().timestamp();
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &m.idempotency_key)
        .header("webhook-timestamp", ts.to_string())
        .header("idempotency-key", &m.idempotency_key);
    if !ch.secret.is_empty() {
        req = req.header(
            "webhook-signature",
            signature(ch.secret.expose(), &m.idempotency_key, ts, &bytes),
        );
    }
    for (k, v) in &ch.headers {
        req = req.header(k, v);
    }
    match req.body(bytes).send().await {
        Ok(resp) => {
            let status = resp.status();
            let code = Some(status.as_u16() as i32);
            if status.is_success() {
                return Attempt::Delivered { status: code };
            }
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            // A little of the answer helps the operator see why; never the whole body.
            let text = resp.text().await.unwrap_or_default();
            let snippet: String = text.chars().take(200).collect();
            let error = format!("HTTP {status}: {}", crate::sanitize::clean(snippet.trim()));
            if status.as_u16() == 429 || status.is_server_error() {
                Attempt::Transient {
                    status: code,
                    error,
                    retry_after,
                }
            } else {
                Attempt::Permanent {
                    status: code,
                    error,
                }
            }
        }
        Err(e) => Attempt::Transient {
            status: None,
            // reqwest errors carry the URL, which may hold a token (Slack, Discord): drop it.
            // The causes name the TLS problem (an untrusted certificate) when there is one.
            error: format!(
                "request failed: {}",
                crate::sanitize::clean(&crate::trust::error_chain(&e.without_url()))
            ),
            retry_after: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_follows_standard_webhooks() {
        // Expected value from: printf '%s' 'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}'
        //   | openssl dgst -sha256 -hmac 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' -binary | base64
        let sig = signature(
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,ELhqG0Ku1gwOc1f4jyKdp3SFGFLAOdJ9bvpWLciCakI=");
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("soon"), None);
        let later = (chrono::Utc::now() + chrono::Duration::seconds(100)).to_rfc2822();
        let d = parse_retry_after(&later).unwrap();
        assert!(d > Duration::from_secs(90) && d <= Duration::from_secs(100));
    }
}
