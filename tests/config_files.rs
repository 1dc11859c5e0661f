//! Config files on disk, as a user writes them: a secret in a file others can read is refused
//! and named (key and line), whatever the key; errors point at the line and key of the
//! offending value, also inside the second entry of an array of tables.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use opsdash::config::Config;

fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn load_err(p: &Path) -> String {
    match Config::load(Some(p)) {
        Ok(_) => panic!(
            "{} was accepted:\n{}",
            p.display(),
            std::fs::read_to_string(p).unwrap()
        ),
        Err(e) => e.to_string(),
    }
}

const MAIL: &str = "[[alert.channel]]\nname = \"ops\"\nkind = \"email\"\nsmtp_host = \"mx\"\n\
                    from = \"a@b\"\nto = [\"c@d\"]\n";

/// (config text, the key the refusal must name, its line)
fn secret_cases() -> Vec<(String, &'static str, usize)> {
    vec![
        (
            // The second channel holds the password: named with its index and line.
            format!(
                "{MAIL}\n[[alert.channel]]\nname = \"mail2\"\nkind = \"email\"\nsmtp_host = \"mx\"\n\
                 from = \"a@b\"\nto = [\"c@d\"]\nsmtp_tls = \"tls\"\nsmtp_username = \"u\"\n\
                 smtp_password = \"hunter2\"\n"
            ),
            "alert.channel[1].smtp_password",
            16,
        ),
        (
            "[[service]]\nname = \"api\"\nkind = \"http\"\nurl = \"http://health:S3cret@127.0.0.1:8080/healthz\"\n"
                .into(),
            "service[0].url",
            4,
        ),
        (
            "[[service]]\nname = \"api\"\nkind = \"http\"\nurl = \"http://127.0.0.1/healthz?token=abc123\"\n"
                .into(),
            "service[0].url",
            4,
        ),
        (
            "[[service]]\nname = \"db\"\nkind = \"postgres\"\ntarget = \"host=db user=mon password=pw\"\n"
                .into(),
            "service[0].target",
            4,
        ),
        (
            "[[alert.channel]]\nname = \"hook\"\nkind = \"command\"\n\
             command = [\"curl\", \"-H\", \"Authorization: Bearer abc\", \"http://x\"]\n"
                .into(),
            "alert.channel[0].command[2]",
            4,
        ),
        (
            "[[alert.channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n\
             secret = \"k3y\"\n"
                .into(),
            "alert.channel[0].secret",
            5,
        ),
        (
            "[[alert.channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n\
             [alert.channel.headers]\nX-Api-Key = \"abc\"\nContent-Type = \"text/plain\"\n"
                .into(),
            "alert.channel[0].headers.X-Api-Key",
            6,
        ),
        (
            "[database]\npool_size = 4\nurl = \"postgres://admin:S3cret@db/ops\"\n".into(),
            "database.url",
            3,
        ),
        (
            "[database]\nread_url = \"postgres://ro:pw@replica/ops\"\n".into(),
            "database.read_url",
            2,
        ),
        (
            "[retention]\nanonymize_secret = \"0123456789abcdef\"\n".into(),
            "retention.anonymize_secret",
            2,
        ),
        (
            "[[alert.channel]]\nname = \"pd\"\nkind = \"pagerduty\"\nrouting_key = \"R0UT1NG\"\n".into(),
            "alert.channel[0].routing_key",
            4,
        ),
    ]
}

#[test]
fn every_secret_in_a_readable_file_is_refused_by_name_and_line() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (text, key, line)) in secret_cases().into_iter().enumerate() {
        // The text is a valid config: at 0600 it loads.
        let p = write(dir.path(), &format!("ok{i}.toml"), &text, 0o600);
        Config::load(Some(&p)).unwrap_or_else(|e| panic!("{e}\n{text}"));
        for mode in [0o644, 0o640, 0o604] {
            let p = write(dir.path(), &format!("c{i}-{mode:o}.toml"), &text, mode);
            let err = load_err(&p);
            let want = format!("{key} (line {line})");
            assert!(err.contains(&want), "{want:?} in {err:?}\n{text}");
            assert!(err.contains("chmod 600"), "{err}");
            assert!(
                !err.contains("database password") || key.starts_with("database"),
                "{err}"
            );
            for secret in [
                "hunter2",
                "S3cret",
                "abc123",
                "k3y",
                "R0UT1NG",
                "Bearer abc",
            ] {
                assert!(
                    !err.contains(secret),
                    "the secret itself is never shown: {err}"
                );
            }
        }
    }
}

#[test]
fn a_readable_file_without_secrets_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[database]\nurl = \"postgres://ops@db/ops\"\n\n\
                [ingest]\nredact_keys = [\"password\", \"token\", \"secret_key\"]\n\
                [[ingest.redact]]\nname = \"pw\"\npattern = 'password=\\S+'\n\n\
                [[service]]\nname = \"api\"\nkind = \"http\"\nurl = \"http://monitor@127.0.0.1/healthz?verbose=1\"\n\n\
                [[alert.channel]]\nname = \"ops\"\nkind = \"email\"\nsmtp_host = \"mx\"\n\
                from = \"a@b\"\nto = [\"c@d\"]\nsmtp_tls = \"tls\"\n\
                [keys]\nquit = \"ctrl-q\"\n";
    let p = write(dir.path(), "c.toml", text, 0o644);
    Config::load(Some(&p)).unwrap_or_else(|e| panic!("{e}"));
}

/// (config, expected line:column prefix, words the message must hold)
fn located_cases() -> Vec<(String, &'static str, &'static str)> {
    let second_mail = |extra: &str| {
        format!(
            "{MAIL}smtp_tls = \"auto\"\n\n[[alert.channel]]\nname = \"mail2\"\nkind = \"email\"\n\
             smtp_host = \"mx\"\nfrom = \"a@b\"\nto = [\"c@d\"]\n{extra}"
        )
    };
    vec![
        // smtp_tls is written in both channels; the second one's is wrong.
        (
            second_mail("smtp_tls = \"ssl\"\n"),
            "c.toml:15:1:",
            "alert.channel[1].smtp_tls",
        ),
        // A key the second channel lacks: its header.
        (
            second_mail("smtp_username = \"u\"\n"),
            "c.toml:15:1:",
            "alert.channel[1].smtp_username",
        ),
        (
            "[[alert.channel]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n\n\
             [[alert.channel]]\nname = \"b\"\nkind = \"webhook\"\n"
                .into(),
            "c.toml:8:1:",
            "alert.channel[1].kind: channel \"b\" (webhook) needs url",
        ),
        // A value of the wrong type in the second entry (serde's own span).
        (
            second_mail("smtp_port = \"x\"\n"),
            "c.toml:15:13:",
            "invalid type",
        ),
        (
            "[[service]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://127.0.0.1/\"\n\n\
             [[service]]\nname = \"b\"\n  kind = \"smtp\"\nurl = \"http://127.0.0.1/\"\n"
                .into(),
            "c.toml:8:3:",
            "service[1].kind",
        ),
        (
            "[[alert.rule]]\nname = \"a\"\nmeasure = \"error_rate\"\n\n\
             [[alert.rule]]\nname = \"b\"\nmeasure = \"error_rate\"\nchannels = [\"nowhere\"]\n"
                .into(),
            "c.toml:8:1:",
            "alert.rule[1].channels",
        ),
        (
            "[[kpi.widget]]\ntitle = \"a\"\nkind = \"alerts\"\n[[kpi.widget]]\ntitle = \"b\"\nkind = \"pie\"\nquery = \"SELECT 1\"\n"
                .into(),
            "c.toml:6:1:",
            "kpi.widget[1].kind",
        ),
        (
            "[retention.log_event]\nkeep_days = 30\n\n[retention.request_log]\nkeep_days = 0\n".into(),
            "c.toml:5:1:",
            "retention.request_log.keep_days",
        ),
        // Inline tables are documents too.
        (
            "alert.channel = [{ name = \"a\", kind = \"webhook\", url = \"http://127.0.0.1:9/\" },\n\
             { name = \"b\", kind = \"webhook\", url = \"http://127.0.0.1:9/\", timeout = \"soon\" }]\n"
                .into(),
            "c.toml:2:",
            "alert.channel[1].timeout",
        ),
    ]
}

#[test]
fn errors_point_at_the_line_and_key_of_the_offending_value() {
    let dir = tempfile::tempdir().unwrap();
    for (text, at, words) in located_cases() {
        let p = write(dir.path(), "c.toml", &text, 0o600);
        let err = load_err(&p);
        let shown = err.replace(&format!("{}/", dir.path().display()), "");
        assert!(shown.starts_with(at), "want {at} in {shown:?}\n{text}");
        assert!(shown.contains(words), "want {words:?} in {shown:?}\n{text}");
    }
}

/// The real binary says it the same way, on one line, before touching any database.
#[test]
fn the_binary_names_the_key_of_a_readable_secret() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        format!("{MAIL}smtp_tls = \"tls\"\nsmtp_username = \"u\"\nsmtp_password = \"hunter2\"\n");
    let p = write(dir.path(), "c.toml", &text, 0o644);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_opsdash"))
        .args(["--config", p.to_str().unwrap(), "retention", "status"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("alert.channel[0].smtp_password (line 9)") && err.contains("mode 644"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
