//! `embedded.listen` and `opsdash db url --tcp`, through the real binary: the embedded cluster
//! reachable on loopback TCP with a read-only password role, and nothing of it when off.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// An embedded cluster in a temp dir with its own config file; stopped and removed on drop.
struct Embedded {
    root: PathBuf,
    config: PathBuf,
}

impl Embedded {
    fn new(tag: &str) -> Embedded {
        let root = std::env::temp_dir().join(format!(
            "opsdash-test-{}-embedded-{tag}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        // Lets the test kit's sweeper remove it if this process dies.
        std::fs::write(root.join("owner.pid"), std::process::id().to_string()).unwrap();
        let config = root.join("config.toml");
        let e = Embedded { root, config };
        e.set_listen("");
        e
    }

    fn set_listen(&self, listen: &str) {
        std::fs::write(&self.config, format!("[embedded]\nlisten = {listen:?}\n")).unwrap();
        std::fs::set_permissions(&self.config, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn opsdash(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_opsdash"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("OPSDASH_DATA_DIR", &self.root)
            .env_remove("DATABASE_URL")
            .env_remove("OPSDASH_DATABASE_URL")
            .env("HOME", &self.root)
            .output()
            .unwrap()
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        let _ = self.opsdash(&["db", "stop"]);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", text(&o.stderr));
    text(&o.stdout)
}

/// psql with a URL; Err(stderr) when it fails.
fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env_remove("PGPASSWORD")
        .env("PGPASSFILE", "/nonexistent")
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn db_url_tcp_gives_a_read_only_password_url_and_nothing_when_off() {
    let e = Embedded::new("tcp");

    // Off by default: one clear line saying how to turn it on.
    let off = e.opsdash(&["db", "url", "--tcp"]);
    assert!(!off.status.success());
    let err = text(&off.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("embedded.listen"), "{err}");

    // The socket-only cluster keeps port 5432 and no TCP.
    let socket_url = ok(&e.opsdash(&["db", "url"]));
    assert!(socket_url.contains(":5432/"), "{socket_url}");
    assert!(ok(&e.opsdash(&["db", "status"])).contains("(no TCP)"));

    // Turned on: the running cluster restarts on the new port and address.
    let port = free_port();
    e.set_listen(&format!("127.0.0.1:{port}"));
    let url = ok(&e.opsdash(&["db", "url", "--tcp"]));
    let prefix = "postgresql://opsdash_grafana:";
    assert!(url.starts_with(prefix), "{url}");
    assert!(
        url.ends_with(&format!("@127.0.0.1:{port}/opsdash")),
        "{url}"
    );
    let password = url[prefix.len()..].split('@').next().unwrap().to_string();
    assert_eq!(password.len(), 32, "{url}");

    // Stored 0600 in the data dir and reused by later calls.
    let pw_file = Path::new(&e.root).join("grafana.password");
    let mode = std::fs::metadata(&pw_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(ok(&e.opsdash(&["db", "url", "--tcp"])), url);

    // Over TCP with the password: a Grafana view reads, and the role is only a reader.
    assert_eq!(
        psql(&url, "SELECT count(*) >= 0 FROM opsdash.error_trend"),
        Ok("t".to_string())
    );
    assert_eq!(
        psql(&url, "SELECT current_user, inet_server_port()"),
        Ok(format!("opsdash_grafana|{port}"))
    );
    let write = psql(&url, "DELETE FROM opsdash.alert_rule").unwrap_err();
    assert!(write.contains("permission denied"), "{write}");

    // A wrong password is refused.
    let wrong = url.replace(&password, "not-the-password");
    let refused = psql(&wrong, "SELECT 1").unwrap_err();
    assert!(
        refused.contains("password authentication failed"),
        "{refused}"
    );

    // The local socket keeps working (trust, owner only) on the configured port.
    let socket_url = ok(&e.opsdash(&["db", "url"]));
    assert!(socket_url.contains(&format!(":{port}/")), "{socket_url}");
    assert_eq!(
        psql(&socket_url, "SELECT current_user"),
        Ok("postgres".to_string())
    );

    // Turned off again: back to the socket only, TCP closed.
    e.set_listen("");
    let socket_url = ok(&e.opsdash(&["db", "url"]));
    assert!(socket_url.contains(":5432/"), "{socket_url}");
    assert!(psql(&url, "SELECT 1").is_err());
}

#[test]
fn a_non_loopback_listen_address_is_refused_in_one_line() {
    let e = Embedded::new("tcp-refused");
    e.set_listen("0.0.0.0:5433");
    let out = e.opsdash(&["db", "url", "--tcp"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("embedded.listen") && err.contains("loopback"),
        "{err}"
    );
    assert!(!e.root.join("pgdata").exists(), "nothing started: {err}");
}
