//! One trust store for every outgoing TLS connection except PostgreSQL's (sqlx verifies those
//! itself, against the same system roots): webhooks, HTTP health checks and email. It holds the
//! system's root certificates (the bundled Mozilla roots when the system has none, as in a bare
//! container) plus the PEM files of extra CAs a channel or check names (`ca_file`, an internal
//! CA). `http_client` is the one way opsdash builds an HTTP client.

use std::sync::{Arc, OnceLock};

use tokio_rustls::rustls::{self, pki_types::pem::PemObject, pki_types::CertificateDer};

/// The system's roots, loaded once per process (reading the bundle costs a few milliseconds).
/// Empty when the system has none: callers then use the bundled Mozilla roots.
pub fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!("loading the system's root certificates: {e}");
        }
        // A certificate rustls cannot use as a root is skipped here, as every TLS library
        // does, so that one bad entry in the bundle does not break every connection.
        found
            .certs
            .into_iter()
            .filter(|c| rustls::RootCertStore::empty().add(c.clone()).is_ok())
            .collect()
    })
}

/// The certificates of a PEM file of extra CAs; the error names the file.
pub fn ca_file_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("ca_file {path}: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("ca_file {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("ca_file {path}: no certificate in it"));
    }
    Ok(certs)
}

/// The trust store: the system's roots plus the CAs of each non-empty path in `ca_files`.
pub fn root_store(ca_files: &[&str]) -> Result<rustls::RootCertStore, String> {
    let mut store = rustls::RootCertStore::empty();
    let system = system_roots();
    if system.is_empty() {
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    } else {
        store.add_parsable_certificates(system.iter().cloned());
    }
    for path in ca_files.iter().filter(|p| !p.is_empty()) {
        for cert in ca_file_certs(path)? {
            store
                .add(cert)
                .map_err(|e| format!("ca_file {path}: {e}"))?;
        }
    }
    Ok(store)
}

/// A rustls client configuration (ring provider) that trusts `root_store(ca_files)`.
pub fn client_config(ca_files: &[&str]) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(root_store(ca_files)?)
        .with_no_client_auth())
}

/// The HTTP client builder every part of opsdash starts from: the trust store above (with
/// `ca_file` when not empty) and opsdash's user agent. Callers add timeouts and redirects.
pub fn http_client(ca_file: &str) -> Result<reqwest::ClientBuilder, String> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("opsdash/", env!("CARGO_PKG_VERSION")))
        .use_preconfigured_tls(client_config(&[ca_file])?))
}

/// The rustls error behind `e`, wherever a library put it: in the chain of sources, or inside
/// an I/O error raised by a TLS stream (whose `source()` skips the wrapped error itself).
pub fn rustls_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(r) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return Some(r);
        }
        cur = err.source();
    }
    None
}

/// An error and its causes on one line (reqwest's own Display stops at "error sending request",
/// hiding the certificate problem underneath).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_adds_to_the_system_roots_and_a_bad_one_is_named() {
        let base = root_store(&[""]).unwrap().len();
        assert!(base > 0, "no roots at all");
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&ca, params.self_signed(&key).unwrap().pem()).unwrap();
        let path = ca.display().to_string();
        assert_eq!(root_store(&[&path]).unwrap().len(), base + 1);
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = root_store(&[&empty.display().to_string()]).unwrap_err();
        assert!(
            e.contains("empty.pem") && e.contains("no certificate"),
            "{e}"
        );
        let e = root_store(&["/nonexistent/ca.pem"]).unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
