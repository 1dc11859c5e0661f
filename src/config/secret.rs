//! Secrets in the configuration: the `Secret` wrapper that never prints its value, URL
//! passwords masked for messages, and the check that refuses a config file others can read
//! when it holds a password or token.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::locate::{line_col, steps, Node, Step};
use super::ConfigError;

/// A string that must never be printed: database URLs and secrets. Debug and Display redact it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("\"<redacted>\"")
        }
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Removes the password from a postgres URL so it can be shown to a user.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{}://{}@{}", &url[..scheme_end], masked, &rest[at + 1..])
        }
        None => url.to_string(),
    }
}

fn url_has_password(url: &str) -> bool {
    redact_url(url) != url || url.contains("password=")
}

/// Words of a key (`smtp_password`, `X-Api-Key`, `anonymizeSecret` is not split), lowercased.
fn key_words(key: &str) -> Vec<String> {
    key.split(['_', '-', '.', ' '])
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Whether a key's name says its value is a secret: whole words, so `secret_key`, `X-Api-Key`,
/// `smtp_password`, `Authorization` do and `keys`, `tokenizer`, `redact_keys` do not.
fn secret_key_name(key: &str) -> bool {
    const WORDS: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "token",
        "authorization",
        "auth",
        "credential",
        "credentials",
        "cookie",
        "apikey",
    ];
    const BEFORE_KEY: &[&str] = &[
        "api",
        "routing",
        "private",
        "access",
        "integration",
        "signing",
        "encryption",
    ];
    let w = key_words(key);
    w.iter().any(|x| WORDS.contains(&x.as_str()))
        || w.windows(2)
            .any(|p| p[1] == "key" && BEFORE_KEY.contains(&p[0].as_str()))
}

/// Whether a value carries a credential whatever its key: a URL with a password, a libpq
/// `password=`, an HTTP authorization, or a token in a query string.
fn secret_value(v: &str) -> bool {
    if url_has_password(v) {
        return true;
    }
    let l = v.to_ascii_lowercase();
    if l.contains("bearer ") || l.contains("basic ") || l.contains("authorization:") {
        return true;
    }
    // `?token=abc`, `&api_key=abc`, `sig=...`: a name=value pair whose name is a secret's.
    l.split(['?', '&', ';', ' ', ','])
        .filter_map(|kv| kv.split_once('='))
        .any(|(k, val)| !val.is_empty() && (secret_key_name(k) || matches!(k, "key" | "sig")))
}

/// The secrets a config file holds: the key path and line of each non-empty value that is a
/// secret by its key's name (`smtp_password`, `secret`, a header named `Authorization`, a
/// channel `url`, which for Slack and Discord is the credential), or by its content anywhere
/// (a URL with a password, `password=`, a bearer token, `?token=`). `[ingest]` describes what
/// to redact and holds no secrets of its own.
pub fn secrets_in(text: &str) -> Vec<(String, usize)> {
    let Ok(doc) = toml_edit::ImDocument::parse(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    Node::Table(doc.as_table()).walk("", None, &mut |path, span, node| {
        let Some(v) = node.as_str().filter(|v| !v.trim().is_empty()) else {
            return;
        };
        if path.starts_with("ingest.") {
            return;
        }
        let steps = steps(path);
        let last_key = steps.iter().rev().find_map(|s| match s {
            Step::Key(k) => Some(*k),
            Step::Index(_) => None,
        });
        let is_channel_url = path.starts_with("alert.channel[") && path.ends_with("].url");
        let by_name =
            last_key.is_some_and(secret_key_name) && !matches!(steps.last(), Some(Step::Index(_)));
        if by_name || is_channel_url || secret_value(v) {
            let line = span.map(|s| line_col(text, s.start).0).unwrap_or(1);
            out.push((path.to_string(), line));
        }
    });
    out
}

/// Refuses a config file that holds a secret and can be read by group or others, as ssh
/// refuses an unprotected key; the message names each secret's key and line.
pub fn check_permissions(path: &Path, text: &str) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| ConfigError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let mode = meta.permissions().mode();
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let secrets = secrets_in(text);
    if secrets.is_empty() {
        return Ok(());
    }
    let named: Vec<String> = secrets
        .iter()
        .map(|(k, line)| format!("{k} (line {line})"))
        .collect();
    Err(ConfigError::Unsafe {
        path: path.display().to_string(),
        message: format!(
            "{} {} a secret but the file is readable by {} (mode {:o}); run: chmod 600 {}",
            named.join(", "),
            if secrets.len() == 1 { "holds" } else { "hold" },
            match (mode & 0o070 != 0, mode & 0o007 != 0) {
                (true, true) => "group and others",
                (true, false) => "its group",
                _ => "others",
            },
            mode & 0o777,
            path.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_match_whole_words() {
        for k in [
            "smtp_password",
            "secret",
            "secret_key",
            "private-key",
            "X-Api-Key",
            "Authorization",
            "X-Auth-Token",
            "routing_key",
            "anonymize_secret",
        ] {
            assert!(secret_key_name(k), "{k}");
        }
        for k in [
            "wtoken",
            "tokenizer",
            "keys",
            "redact_keys",
            "key",
            "monkey",
            "name",
        ] {
            assert!(!secret_key_name(k), "{k}");
        }
        assert!(secret_value("https://u:p@h/x"));
        assert!(secret_value("http://h/x?a=1&token=abc"));
        assert!(secret_value("Authorization: Bearer abc"));
        assert!(!secret_value("http://u@h/x?token="));
        assert!(!secret_value("http://127.0.0.1/healthz?verbose=1"));
    }
}
