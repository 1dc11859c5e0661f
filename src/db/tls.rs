//! TLS to PostgreSQL: the `[database] tls_*` keys applied to a URL's connect options (a
//! parameter the URL names itself wins), and a failed TLS connection turned into one line that
//! names the step that failed: the server offers no TLS, its certificate is not trusted, the host
//! name does not match, or the server refused our client certificate.
//!
//! sqlx does the TLS itself (rustls with the ring provider, system roots plus `sslrootcert`).

use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Result};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tokio_rustls::rustls::{self, AlertDescription, CertificateError};

use crate::config::DatabaseConfig;

/// Values of `[database] tls_mode` (empty: the URL's `sslmode`, else `PGSSLMODE`, else prefer).
/// `allow` is left out: sqlx treats it as `disable`, which would surprise a libpq user.
pub const MODES: &[&str] = &["disable", "prefer", "require", "verify-ca", "verify-full"];

/// URL query keys sqlx accepts for each setting (libpq's name first).
const MODE_KEYS: &[&str] = &["sslmode", "ssl-mode"];
const ROOT_KEYS: &[&str] = &["sslrootcert", "ssl-root-cert", "ssl-ca"];
const CERT_KEYS: &[&str] = &["sslcert", "ssl-cert"];
const KEY_KEYS: &[&str] = &["sslkey", "ssl-key"];

/// Checks the `tls_*` keys of a config: the key path and the reason of the first bad one.
pub fn check_config(db: &DatabaseConfig) -> Result<(), (String, String)> {
    if !db.tls_mode.is_empty() && !MODES.contains(&db.tls_mode.as_str()) {
        return Err((
            "database.tls_mode".into(),
            format!(
                "expected one of {}, found {:?}",
                MODES.join(", "),
                db.tls_mode
            ),
        ));
    }
    if db.tls_cert.is_empty() != db.tls_key.is_empty() {
        let missing = if db.tls_cert.is_empty() {
            "database.tls_cert"
        } else {
            "database.tls_key"
        };
        return Err((
            missing.into(),
            "tls_cert and tls_key go together (the client certificate and its private key)".into(),
        ));
    }
    Ok(())
}

/// The query parameters of a URL, as (key, value) pairs, keys lower-cased, values decoded.
fn query_params(url: &str) -> Vec<(String, String)> {
    let Some((_, query)) = url.split_once('?') else {
        return Vec::new();
    };
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
        .collect()
}

fn url_value<'a>(params: &'a [(String, String)], keys: &[&str]) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| keys.contains(&k.as_str()))
        .map(|(_, v)| v.as_str())
}

/// The file a setting names must be readable now: sqlx reads it only during the handshake, where
/// a missing file would look like a network failure.
fn check_file(what: &str, path: &str) -> Result<()> {
    if let Err(e) = std::fs::metadata(Path::new(path)) {
        bail!("{what} {path}: {e}");
    }
    Ok(())
}

/// Applies the config's `tls_*` keys to the options parsed from `url`. A setting the URL names
/// itself (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) wins over the config's. As libpq
/// does, `require` with a root certificate verifies the chain (behaves as `verify-ca`).
pub fn apply(opts: PgConnectOptions, url: &str, db: &DatabaseConfig) -> Result<PgConnectOptions> {
    let params = query_params(url);
    let mut opts = opts;
    let mut root = url_value(&params, ROOT_KEYS).map(str::to_string);
    if let Some(r) = &root {
        check_file("sslrootcert", r)?;
    } else if !db.tls_root_cert.is_empty() {
        check_file("database.tls_root_cert", &db.tls_root_cert)?;
        opts = opts.ssl_root_cert(&db.tls_root_cert);
        root = Some(db.tls_root_cert.clone());
    } else if let Ok(env) = std::env::var("PGSSLROOTCERT") {
        root = Some(env).filter(|r| !r.is_empty());
    }
    match (url_value(&params, CERT_KEYS), url_value(&params, KEY_KEYS)) {
        (Some(cert), Some(key)) => {
            check_file("sslcert", cert)?;
            check_file("sslkey", key)?;
        }
        (None, None) if !db.tls_cert.is_empty() => {
            check_file("database.tls_cert", &db.tls_cert)?;
            check_file("database.tls_key", &db.tls_key)?;
            opts = opts
                .ssl_client_cert(&db.tls_cert)
                .ssl_client_key(&db.tls_key);
        }
        (None, None) => {}
        _ => bail!("the database URL names only one of sslcert and sslkey: give both"),
    }
    let mode = match url_value(&params, MODE_KEYS) {
        Some(m) => PgSslMode::from_str(m).map_err(|e| anyhow::anyhow!("sslmode {m:?}: {e}"))?,
        None if !db.tls_mode.is_empty() => PgSslMode::from_str(&db.tls_mode)
            .map_err(|e| anyhow::anyhow!("database.tls_mode {:?}: {e}", db.tls_mode))?,
        None => opts.get_ssl_mode(),
    };
    let mode = match mode {
        PgSslMode::Require if root.is_some() => PgSslMode::VerifyCa,
        m => m,
    };
    Ok(opts.ssl_mode(mode))
}

/// One line naming the TLS step that failed, when `e` is a TLS failure (or the server's refusal
/// of a connection for want of TLS or of a valid client certificate); None otherwise.
pub fn explain(e: &sqlx::Error, opts: &PgConnectOptions) -> Option<String> {
    let host = opts.get_host();
    if let sqlx::Error::Tls(inner) = e {
        if inner.to_string().contains("server does not support TLS") {
            return Some(
                "TLS: the server offers no TLS (its ssl setting is off), and sslmode requires it"
                    .into(),
            );
        }
    }
    if let sqlx::Error::Database(db) = e {
        let msg = db.message();
        if db.code().as_deref() == Some("28000") {
            if msg.contains("no encryption") {
                return Some(format!(
                    "TLS: the server accepts only encrypted connections and this one was not \
                     (sslmode=disable, or prefer against a server without TLS): {msg}"
                ));
            }
            if msg.contains("certificate") {
                return Some(format!("TLS: client certificate refused: {msg}"));
            }
        }
        return None;
    }
    let r = crate::trust::rustls_cause(e)?;
    Some(match r {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "TLS: certificate not trusted: the server's certificate is signed by an unknown CA \
             (name the CA that signed it with sslrootcert or database.tls_root_cert)"
                .to_string()
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => match opts.get_ssl_mode() {
            // sqlx 0.8.6 misses rustls' newer name-mismatch variant (launchbadge/sqlx#3793,
            // fixed after 0.8.6), so verify-ca checks the name as verify-full does.
            PgSslMode::VerifyCa => format!(
                "TLS: host name mismatch: the server's certificate is not valid for {host:?} \
                 (this build checks the name under verify-ca too: connect by a name the \
                 certificate lists)"
            ),
            _ => format!(
                "TLS: host name mismatch: the server's certificate is not valid for {host:?} \
                 (connect by a name the certificate lists)"
            ),
        },
        rustls::Error::InvalidCertificate(c) => {
            format!("TLS: certificate not trusted: {c:?}")
        }
        rustls::Error::AlertReceived(
            a @ (AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::AccessDenied),
        ) => format!("TLS: client certificate refused by the server (alert: {a:?})"),
        other => format!("TLS: handshake failed: {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> DatabaseConfig {
        DatabaseConfig::default()
    }

    #[test]
    fn the_urls_parameters_win_over_the_config() {
        let mut db = cfg();
        db.tls_mode = "verify-full".into();
        let url = "postgres://u@h/d?sslmode=require";
        let o = apply(crate::db::pool::parse_url(url).unwrap(), url, &db).unwrap();
        assert!(matches!(o.get_ssl_mode(), PgSslMode::Require));
        let url = "postgres://u@h/d";
        let o = apply(crate::db::pool::parse_url(url).unwrap(), url, &db).unwrap();
        assert!(matches!(o.get_ssl_mode(), PgSslMode::VerifyFull));
    }

    #[test]
    fn require_with_a_root_certificate_verifies_the_chain_as_libpq_does() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "").unwrap();
        let mut db = cfg();
        db.tls_mode = "require".into();
        db.tls_root_cert = ca.display().to_string();
        let url = "postgres://u@h/d";
        let o = apply(crate::db::pool::parse_url(url).unwrap(), url, &db).unwrap();
        assert!(matches!(o.get_ssl_mode(), PgSslMode::VerifyCa));
    }

    #[test]
    fn missing_files_and_half_a_client_identity_are_refused_up_front() {
        let mut db = cfg();
        db.tls_root_cert = "/nonexistent/ca.pem".into();
        let url = "postgres://u@h/d";
        let e = apply(crate::db::pool::parse_url(url).unwrap(), url, &cfg())
            .and_then(|o| apply(o, url, &db))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("database.tls_root_cert /nonexistent/ca.pem"),
            "{e}"
        );
        let url = "postgres://u@h/d?sslcert=%2Ftmp%2Fc.pem";
        let e = apply(crate::db::pool::parse_url(url).unwrap(), url, &cfg()).unwrap_err();
        assert!(
            e.to_string().contains("only one of sslcert and sslkey"),
            "{e}"
        );
        db = cfg();
        db.tls_mode = "allow".into();
        assert_eq!(check_config(&db).unwrap_err().0, "database.tls_mode");
        db = cfg();
        db.tls_key = "/k.pem".into();
        assert_eq!(check_config(&db).unwrap_err().0, "database.tls_cert");
    }

    #[test]
    fn query_values_are_percent_decoded() {
        let p = query_params("postgres://h/d?sslrootcert=%2Fetc%2Fca%20x.pem&SSLMODE=require");
        assert_eq!(url_value(&p, ROOT_KEYS), Some("/etc/ca x.pem"));
        assert_eq!(url_value(&p, MODE_KEYS), Some("require"));
    }
}
