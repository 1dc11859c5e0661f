//! TLS to PostgreSQL against a real TLS-only cluster: a throwaway cluster with `ssl = on`, a CA,
//! server and client certificates made here with rcgen, and a pg_hba.conf of `hostssl` lines
//! only (one of them `cert`). Each sslmode, root certificate and client certificate is tried
//! through `Db::connect`, from the URL and from the `[database] tls_*` keys, and every refusal
//! must name the step that failed.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::OnceLock;

use opsdash::config::{Config, Secret};
use opsdash::db::testkit::{free_loopback_pair, TestCluster, TestDb};
use opsdash::db::Db;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use sqlx::Connection;

/// A role that may log in over TCP only with a client certificate (pg_hba `cert`).
const CERT_USER: &str = "tls_cert_user";

struct Server {
    /// Kept for the life of the test process (removed at exit by the test kit).
    _cluster: TestCluster,
    /// The certificate names `addrs[0]` only; `addrs[1]` reaches the same server.
    addrs: [Ipv4Addr; 2],
    ca: String,
    other_ca: String,
    client_cert: String,
    client_key: String,
    rogue_cert: String,
    rogue_key: String,
}

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    Ca {
        cert: p.self_signed(&key).unwrap(),
        key,
    }
}

/// A certificate for `names` (or the common name `cn`) signed by `ca`: (cert PEM, key PEM).
fn leaf(ca: &Ca, names: Vec<String>, cn: &str, usage: ExtendedKeyUsagePurpose) -> (String, String) {
    let mut p = CertificateParams::new(names).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        let cluster = TestCluster::start("tls").unwrap();
        let ca_main = ca("opsdash test CA");
        let ca_other = ca("someone else's CA");
        let addrs = free_loopback_pair().unwrap();
        let (srv_cert, srv_key) = leaf(
            &ca_main,
            vec![addrs[0].to_string()],
            "opsdash test server",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let hba = format!(
            "local all all trust\n\
             hostssl all {CERT_USER} 127.0.0.0/8 cert\n\
             hostssl all all 127.0.0.0/8 trust\n"
        );
        let conf = "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
                    ssl_ca_file = 'root.crt'\n";
        let ca_pem = ca_main.cert.pem();
        cluster
            .listen_tcp(
                &addrs,
                conf,
                &[
                    ("server.crt", srv_cert.as_bytes()),
                    ("server.key", srv_key.as_bytes()),
                    ("root.crt", ca_pem.as_bytes()),
                ],
                &hba,
            )
            .unwrap();
        let dir: PathBuf = cluster.cluster.root.join("client");
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        let (client_cert, client_key) = leaf(
            &ca_main,
            vec![],
            CERT_USER,
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let (rogue_cert, rogue_key) = leaf(
            &ca_other,
            vec![],
            CERT_USER,
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let opts = cluster.cluster.connect_options("opsdash");
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let mut c = sqlx::PgConnection::connect_with(&opts).await.unwrap();
                    sqlx::query(&format!("CREATE ROLE {CERT_USER} LOGIN"))
                        .execute(&mut c)
                        .await
                        .unwrap();
                })
        })
        .join()
        .unwrap();
        Server {
            addrs,
            ca: write("ca.pem", &ca_pem),
            other_ca: write("other-ca.pem", &ca_other.cert.pem()),
            client_cert: write("client.crt", &client_cert),
            client_key: write("client.key", &client_key),
            rogue_cert: write("rogue.crt", &rogue_cert),
            rogue_key: write("rogue.key", &rogue_key),
            _cluster: cluster,
        }
    })
}

fn config(url: String) -> Config {
    let mut cfg = Config::default();
    cfg.database.url = Secret::new(url);
    cfg.database.pool_size = 1;
    cfg
}

fn url(addr: Ipv4Addr, user: &str, query: &str) -> String {
    format!("postgres://{user}@{addr}:5432/opsdash{query}")
}

/// Connects and answers (encrypted?, who am I).
async fn connect(cfg: &Config) -> anyhow::Result<(bool, String)> {
    let db = Db::connect(cfg).await?;
    let row: (bool, String) = sqlx::query_as(
        "SELECT ssl, current_user::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .fetch_one(&db.write)
    .await?;
    db.write.close().await;
    Ok(row)
}

async fn refused(cfg: &Config) -> String {
    match connect(cfg).await {
        Ok(r) => panic!("connected ({r:?}) where a refusal was expected"),
        Err(e) => {
            let text = format!("{e:#}");
            assert!(!text.contains('\n'), "the error is not one line: {text}");
            text
        }
    }
}

#[tokio::test]
async fn require_encrypts_without_checking_the_certificate() {
    let s = server();
    let got = connect(&config(url(s.addrs[0], "postgres", "?sslmode=require")))
        .await
        .unwrap();
    assert_eq!(got, (true, "postgres".into()));
    // From the config instead of the URL; the unnamed address too (nothing is verified).
    let mut cfg = config(url(s.addrs[1], "postgres", ""));
    cfg.database.tls_mode = "require".into();
    assert!(connect(&cfg).await.unwrap().0);
}

#[tokio::test]
async fn verify_full_with_the_right_ca_connects_from_the_url_or_the_config() {
    let s = server();
    let q = format!("?sslmode=verify-full&sslrootcert={}", s.ca);
    let got = connect(&config(url(s.addrs[0], "postgres", &q)))
        .await
        .unwrap();
    assert_eq!(got, (true, "postgres".into()));
    let mut cfg = config(url(s.addrs[0], "postgres", ""));
    cfg.database.tls_mode = "verify-full".into();
    cfg.database.tls_root_cert = s.ca.clone();
    assert!(connect(&cfg).await.unwrap().0);
    // verify-ca checks the chain.
    cfg.database.url = Secret::new(url(s.addrs[0], "postgres", "?sslmode=verify-ca"));
    assert!(connect(&cfg).await.unwrap().0);
    // libpq's verify-ca would not check the name; sqlx 0.8.6 does (launchbadge/sqlx#3793): the
    // error says so. When sqlx is upgraded past the fix this connects and the test must change.
    cfg.database.url = Secret::new(url(s.addrs[1], "postgres", "?sslmode=verify-ca"));
    let e = refused(&cfg).await;
    assert!(e.contains("checks the name under verify-ca too"), "{e}");
}

#[tokio::test]
async fn a_wrong_host_name_is_refused_as_a_name_mismatch() {
    let s = server();
    let mut cfg = config(url(s.addrs[1], "postgres", ""));
    cfg.database.tls_mode = "verify-full".into();
    cfg.database.tls_root_cert = s.ca.clone();
    let e = refused(&cfg).await;
    assert!(e.contains("TLS: host name mismatch"), "{e}");
    assert!(e.contains(&s.addrs[1].to_string()), "{e}");
}

#[tokio::test]
async fn an_unknown_ca_is_refused_as_an_untrusted_certificate() {
    let s = server();
    let q = format!("?sslmode=verify-full&sslrootcert={}", s.other_ca);
    let e = refused(&config(url(s.addrs[0], "postgres", &q))).await;
    assert!(e.contains("TLS: certificate not trusted"), "{e}");
    assert!(e.contains("unknown CA"), "{e}");
    // Without any root certificate only the system's roots are trusted: refused the same way.
    let e = refused(&config(url(s.addrs[0], "postgres", "?sslmode=verify-full"))).await;
    assert!(e.contains("TLS: certificate not trusted"), "{e}");
}

#[tokio::test]
async fn a_client_certificate_authenticates_and_a_foreign_one_is_refused() {
    let s = server();
    let mut cfg = config(url(s.addrs[0], CERT_USER, ""));
    cfg.database.tls_mode = "verify-full".into();
    cfg.database.tls_root_cert = s.ca.clone();
    cfg.database.tls_cert = s.client_cert.clone();
    cfg.database.tls_key = s.client_key.clone();
    assert_eq!(connect(&cfg).await.unwrap(), (true, CERT_USER.to_string()));
    // The same from the URL's sslcert and sslkey.
    let q = format!(
        "?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
        s.ca, s.client_cert, s.client_key
    );
    let got = connect(&config(url(s.addrs[0], CERT_USER, &q)))
        .await
        .unwrap();
    assert_eq!(got.1, CERT_USER);
    // No certificate at all: the server's pg_hba `cert` line refuses the login.
    let mut none = cfg.clone();
    none.database.tls_cert.clear();
    none.database.tls_key.clear();
    let e = refused(&none).await;
    assert!(e.contains("TLS: client certificate refused"), "{e}");
    // A certificate signed by a CA the server does not trust: refused during the handshake.
    let mut rogue = cfg.clone();
    rogue.database.tls_cert = s.rogue_cert.clone();
    rogue.database.tls_key = s.rogue_key.clone();
    let e = refused(&rogue).await;
    assert!(e.contains("TLS: client certificate refused"), "{e}");
}

#[tokio::test]
async fn disable_against_a_tls_only_server_and_require_against_no_tls_fail_clearly() {
    let s = server();
    let e = refused(&config(url(s.addrs[0], "postgres", "?sslmode=disable"))).await;
    assert!(
        e.contains("TLS: the server accepts only encrypted connections"),
        "{e}"
    );
    // The shared test server speaks no TLS (a Unix socket never does): require is refused.
    let t = TestDb::new().await.unwrap();
    let e = refused(&config(format!("{}?sslmode=require", t.url().unwrap()))).await;
    assert!(e.contains("TLS: the server offers no TLS"), "{e}");
}

#[tokio::test]
async fn read_url_gets_the_same_tls_settings() {
    let s = server();
    let mut cfg = config(url(s.addrs[0], "postgres", ""));
    cfg.database.tls_mode = "verify-full".into();
    cfg.database.tls_root_cert = s.ca.clone();
    cfg.database.read_url = Secret::new(url(s.addrs[0], "postgres", ""));
    let db = Db::connect(&cfg).await.unwrap();
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&db.read)
        .await
        .unwrap();
    assert!(ssl, "the read pool is not encrypted");
    db.read.close().await;
    // The config's verify-full reaches read_url too: the unnamed address is refused there.
    // (The read pool itself falls back to the primary while the replica cannot be reached, so
    // connect with the replica's own options.)
    cfg.database.read_url = Secret::new(url(s.addrs[1], "postgres", ""));
    let db = Db::connect(&cfg).await.unwrap();
    let replica = db
        .topology
        .replica
        .as_ref()
        .expect("a read_url is a replica");
    let e = sqlx::PgConnection::connect_with(&replica.options)
        .await
        .unwrap_err();
    let text = opsdash::db::tls::explain(&e, &replica.options).unwrap_or_default();
    assert!(text.contains("TLS: host name mismatch"), "{e}");
}
