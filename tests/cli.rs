//! The CLI as scripts use it, through the real binary on a real PostgreSQL: a closed stdout
//! ends any command quietly (a shell pipeline into `head`, and a pipe whose reader is gone);
//! every listing prints one JSON object per line with `--output json`; a bad enum value is a
//! clap error listing the valid ones; completions, man page and help text for every argument;
//! export keeps hostile text inert and one record per line; where the embedded data lives.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use clap::CommandFactory;
use opsdash::db::testkit::TestDb;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_opsdash")
}

/// The binary with a HOME of its own (no user config found) and no database from the
/// environment.
fn opsdash(home: &Path) -> Command {
    let mut c = Command::new(bin());
    c.env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("OPSDASH_DATA_DIR")
        .env_remove("OPSDASH_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null());
    c
}

struct Cli {
    t: TestDb,
    url: String,
    home: tempfile::TempDir,
}

impl Cli {
    async fn new() -> anyhow::Result<Cli> {
        let t = TestDb::new().await?;
        let url = t.url()?;
        Ok(Cli {
            t,
            url,
            home: tempfile::tempdir()?,
        })
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = opsdash(self.home.path());
        c.args(["--database-url", &self.url]).args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("running opsdash")
    }
}

/// Alerts with long label values, so a listing is far bigger than a pipe's buffer, and log
/// lines with hostile text.
async fn seed(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    sqlx::raw_sql(
        r#"INSERT INTO opsdash.alert_rule (name, metric, source) VALUES ('seeded', 'error_rate', 'cli');
           INSERT INTO opsdash.alert (rule_id, rule_name, severity, labels, label_key, state, value, threshold, fired_at)
           SELECT r.id, 'seeded', 'critical',
                  jsonb_build_object('service', 'svc' || g, 'note', repeat('x', 300)),
                  'service=svc' || g, 'firing', g, 5, now()
             FROM opsdash.alert_rule r, generate_series(1, 900) g WHERE r.name = 'seeded';
           INSERT INTO opsdash.log_event (ts, level, service, message)
           SELECT now() - interval '1 hour' + g * interval '1 ms', 3, 'bulk', 'bulk line ' || g || repeat(' y', 40)
             FROM generate_series(1, 20000) g;"#,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Runs `args` with stdout a pipe whose reading end is already closed: every write fails with
/// EPIPE, deterministically, whatever the output's size.
fn with_closed_stdout(mut cmd: Command) -> Output {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two new descriptors into the array; we own both.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: fds[0] is ours and closed once; fds[1] becomes the child's stdout.
    unsafe { libc::close(fds[0]) };
    let write_end = unsafe { std::os::fd::OwnedFd::from_raw_fd(fds[1]) };
    cmd.stdout(Stdio::from(write_end))
        .stderr(Stdio::piped())
        .output()
        .expect("running opsdash")
}

use std::os::fd::FromRawFd;

/// `ls | head` ends ls by SIGPIPE with nothing on stderr; so must every command.
fn assert_quiet_sigpipe(what: &str, o: &Output) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.signal(),
        Some(libc::SIGPIPE),
        "{what}: ended by SIGPIPE, got {:?}; stderr: {err}",
        o.status
    );
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{what}: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_ends_every_command_quietly() -> anyhow::Result<()> {
    let cli = Cli::new().await?;
    seed(&cli.t.db.write).await?;
    for args in [
        &["alerts", "list", "--all"][..],
        &["alerts", "list", "--output", "json"],
        &["alerts", "rules", "list"],
        &["alerts", "rules"],
        &["alerts", "silence", "list", "--all"],
        &["alerts", "dead"],
        &["retention", "status"],
        &["retention", "status", "--output", "json"],
        &["audit", "list"],
        &["export", "--format", "text"],
        &["export", "--format", "csv"],
        &["export", "--format", "json"],
        &["migrate"],
        &["completions", "bash"],
        &["man"],
    ] {
        let o = with_closed_stdout(cli.cmd(args));
        assert_quiet_sigpipe(&args.join(" "), &o);
    }

    // The same through a shell pipeline, as a person types it.
    for cmdline in [
        "alerts list --all",
        "alerts rules list",
        "retention status",
        "export --format text",
    ] {
        let err = cli.home.path().join("stderr");
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "\"$0\" --database-url \"$1\" {cmdline} 2>\"$2\" | head -1; echo \"${{PIPESTATUS[0]}}\""
            ))
            .args([bin(), &cli.url, err.to_str().unwrap()])
            .env("HOME", cli.home.path())
            .output()?;
        let out = String::from_utf8_lossy(&o.stdout);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines.len(),
            2,
            "{cmdline}: head's line and the status: {out}"
        );
        let status: i32 = lines[1].parse()?;
        // The big listings outgrow the pipe and meet the closed end (141 = 128 + SIGPIPE);
        // the small ones may have finished first (0). Never 101 (a panic) or 1.
        assert!(status == 141 || status == 0, "{cmdline}: status {status}");
        let err = std::fs::read_to_string(&err)?;
        assert!(
            err.is_empty() || !err.contains("panicked"),
            "{cmdline}: {err}"
        );
        assert!(
            !err.contains("Broken pipe") && !err.contains("failed"),
            "{cmdline}: {err}"
        );
        if cmdline.starts_with("alerts list") || cmdline.starts_with("export") {
            assert_eq!(status, 141, "{cmdline}: far more than a pipe holds");
        }
    }
    Ok(())
}

fn json_lines(what: &str, o: &Output) -> Vec<serde_json::Map<String, serde_json::Value>> {
    assert!(
        o.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| match serde_json::from_str(l) {
            Ok(serde_json::Value::Object(m)) => m,
            other => panic!("{what}: not one JSON object per line: {l:?} ({other:?})"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listing_prints_one_json_object_per_line() -> anyhow::Result<()> {
    let cli = Cli::new().await?;
    seed(&cli.t.db.write).await?;
    sqlx::raw_sql(
        "UPDATE opsdash.alert SET summary = E'two\\nlines \\x1b]0;title\\x07' WHERE label_key = 'service=svc1'",
    )
    .execute(&cli.t.db.write)
    .await?;
    let o = cli.run(&[
        "alerts",
        "silence",
        "add",
        "-m",
        "service=svc1",
        "-c",
        "maintenance",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let alerts = json_lines(
        "alerts list",
        &cli.run(&["alerts", "list", "--output", "json"]),
    );
    assert_eq!(alerts.len(), 900);
    let a = alerts
        .iter()
        .find(|a| a["labels"]["service"] == "svc1")
        .unwrap();
    assert_eq!(a["state"], "firing");
    assert_eq!(a["rule"], "seeded");
    // Exact data, control characters JSON-escaped (the line stayed one line).
    assert_eq!(a["summary"], "two\nlines \u{1b}]0;title\u{7}");
    let firing = json_lines(
        "alerts list --state",
        &cli.run(&["alerts", "list", "--state", "resolved", "--output", "json"]),
    );
    assert!(firing.is_empty());

    let rules = json_lines(
        "rules list",
        &cli.run(&["alerts", "rules", "list", "--output", "json"]),
    );
    assert!(rules
        .iter()
        .any(|r| r["name"] == "high-error-rate" && r["source"] == "config"));
    assert!(rules
        .iter()
        .any(|r| r["name"] == "seeded" && r["source"] == "cli"));

    let silences = json_lines(
        "silence list",
        &cli.run(&["alerts", "silence", "list", "--output", "json"]),
    );
    assert_eq!(silences.len(), 1);
    assert_eq!(silences[0]["comment"], "maintenance");
    assert_eq!(silences[0]["matchers"][0], "service=svc1");

    let retention = json_lines(
        "retention status",
        &cli.run(&["retention", "status", "--output", "json"]),
    );
    assert!(retention
        .iter()
        .any(|r| r["table"] == "log_event" && r["keep_days"].is_u64()));

    json_lines("dead", &cli.run(&["alerts", "dead", "--output", "json"]));
    sqlx::raw_sql("CREATE TABLE public.orders (id int PRIMARY KEY)")
        .execute(&cli.t.db.write)
        .await?;
    assert!(cli
        .run(&["audit", "install", "public.orders"])
        .status
        .success());
    let audited = json_lines(
        "audit list",
        &cli.run(&["audit", "list", "--output", "json"]),
    );
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert!(audited[0]["table"].as_str().unwrap().contains("orders"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_enum_value_is_a_clap_error_listing_the_valid_ones() -> anyhow::Result<()> {
    let cli = Cli::new().await?;
    seed(&cli.t.db.write).await?;
    for (args, valid) in [
        (
            &["alerts", "list", "--state", "bogus"][..],
            "pending, firing, acknowledged, suppressed, resolved",
        ),
        (&["alerts", "list", "--output", "yaml"], "table, json"),
        (
            &[
                "alerts",
                "rules",
                "add",
                "--name",
                "x",
                "--measure",
                "error_rate",
                "--threshold",
                "1",
                "--operator",
                "above",
            ],
            "gt, gte, lt, lte, eq, ne",
        ),
        (
            &[
                "alerts",
                "rules",
                "add",
                "--name",
                "x",
                "--measure",
                "error_rate",
                "--threshold",
                "1",
                "--severity",
                "urgent",
            ],
            "info, warning, error, critical",
        ),
        (&["completions", "tcsh"], "bash"),
    ] {
        let o = cli.run(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("invalid value") && err.contains(valid),
            "{args:?}: {err}"
        );
        assert!(o.stdout.is_empty(), "{args:?}: no table at all");
    }
    // A valid state still lists.
    let o = cli.run(&["alerts", "list", "--state", "firing"]);
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 901);
    Ok(())
}

/// Every argument, option and subcommand says what it is for (in --help, completions and the
/// man page).
#[test]
fn every_argument_and_subcommand_has_help() {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            if a.get_help().is_none() && a.get_long_help().is_none() {
                missing.push(format!("{path} <{id}>"));
            }
        }
        for sub in cmd.get_subcommands() {
            let p = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() && sub.get_long_about().is_none() {
                missing.push(p.clone());
            }
            walk(sub, &p, missing);
        }
    }
    let mut missing = Vec::new();
    let cmd = opsdash::cli::Args::command();
    cmd.clone().debug_assert();
    walk(&cmd, "opsdash", &mut missing);
    assert!(missing.is_empty(), "no help text: {missing:#?}");
}

#[test]
fn completions_and_man_page() {
    let home = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let o = opsdash(home.path())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(o.status.success(), "{shell}");
        let text = String::from_utf8(o.stdout).unwrap();
        for word in ["opsdash", "alerts", "retention", "output", "json"] {
            assert!(text.contains(word), "{shell}: {word}");
        }
    }
    let o = opsdash(home.path())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let script = home.path().join("opsdash.bash");
    std::fs::write(&script, &o.stdout).unwrap();
    let check = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let o = opsdash(home.path()).arg("man").output().unwrap();
    assert!(o.status.success());
    let man = String::from_utf8(o.stdout).unwrap();
    assert!(
        man.starts_with(".ie") || man.starts_with(".TH"),
        "{}",
        &man[..80]
    );
    assert!(man.contains(".TH opsdash 1"));
    assert!(
        man.contains("OPSDASH_DATA_DIR"),
        "the environment is documented"
    );

    let o = opsdash(home.path()).arg("--help").output().unwrap();
    let help = String::from_utf8(o.stdout).unwrap();
    assert!(
        help.contains("OPSDASH_DATA_DIR") && help.contains("XDG_DATA_HOME"),
        "{help}"
    );
    let o = opsdash(home.path())
        .args(["export", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(o.stdout).unwrap();
    assert!(
        help.contains("--raw") && help.contains("leading '"),
        "{help}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_keeps_hostile_text_inert_and_one_record_per_line() -> anyhow::Result<()> {
    let cli = Cli::new().await?;
    let hostile = [
        "osc52 \x1b]52;c;ZXZpbCBjbGlwYm9hcmQ=\x07 end",
        "title \x1b]0;pwned\x07 end",
        "clear \x1b[2J\x1b[H end",
        "csi \x1b[31mred\x1b[0m \u{9b}1m end",
        "bidi \u{202e}gnp.exe\u{202c} \u{2066}x\u{2069} end",
        "forged\n2026-01-01T00:00:00.000Z fatal auth root login\r\nend",
        "=HYPERLINK(\"http://evil/\",\"click\")",
        "+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1+1)",
    ];
    for (i, m) in hostile.iter().enumerate() {
        sqlx::query(
            "INSERT INTO opsdash.log_event (ts, level, service, message) VALUES (now() - make_interval(secs => 100 - $1), 4, 'evil', $2)",
        )
        .bind(i as f64)
        .bind(m)
        .execute(&cli.t.db.write)
        .await?;
    }
    let n = hostile.len();
    let unsafe_char = |c: char| opsdash::sanitize::is_unsafe(c) && c != '\n';

    // Text to a pipe: escaped as on screen, one line per record.
    let o = cli.run(&["export", "--format", "text"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout)?;
    assert_eq!(text.lines().count(), n, "{text}");
    assert!(!text.chars().any(unsafe_char), "{text:?}");
    assert!(
        text.contains("^[]52;c;") && text.contains("forged^J2026"),
        "{text}"
    );

    // --raw to a pipe: the bytes as stored, line breaks spelled out, still one line each.
    let o = cli.run(&["export", "--format", "text", "--raw"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let raw = String::from_utf8(o.stdout)?;
    assert_eq!(raw.lines().count(), n, "{raw:?}");
    assert!(
        raw.contains("\x1b]52;c;ZXZpbCBjbGlwYm9hcmQ=\x07"),
        "{raw:?}"
    );
    assert!(
        raw.contains("forged\\n2026") && raw.contains("login\\r\\nend"),
        "{raw:?}"
    );

    // CSV: formula cells guarded, with and without quoting.
    let o = cli.run(&["export", "--format", "csv"]);
    let csv = String::from_utf8(o.stdout)?;
    for guarded in [
        ",\"'=HYPERLINK(\"\"http://evil/\"\",\"\"click\"\")\",",
        ",'+cmd|' /C calc'!A0,",
        ",'-2+3,",
        ",'@SUM(1+1),",
    ] {
        assert!(csv.contains(guarded), "{guarded} in {csv}");
    }
    let o = cli.run(&["export", "--format", "csv", "--raw"]);
    let csv = String::from_utf8(o.stdout)?;
    assert!(
        csv.contains(",-2+3,") && csv.contains(",@SUM(1+1),"),
        "{csv}"
    );

    // To a terminal (a pty made by script(1)): escaped, and --raw refused.
    let pty = |extra: &str| {
        Command::new("script")
            .args(["-qec"])
            .arg(format!(
                "\"{}\" --database-url \"{}\" export --format text {extra}",
                bin(),
                cli.url
            ))
            .arg("/dev/null")
            .env("HOME", cli.home.path())
            .stdin(Stdio::null())
            .output()
    };
    let o = pty("")?;
    assert!(o.status.success(), "{o:?}");
    let screen = String::from_utf8_lossy(&o.stdout);
    assert!(screen.contains("osc52 ^[]52;c;"), "{screen:?}");
    assert!(
        !screen.contains(['\x1b', '\x07', '\u{9b}', '\u{202e}']),
        "{screen:?}"
    );
    // One line per record (stderr's progress and summary lines share the terminal); the
    // forged line inside a message never starts a line of its own.
    let lines: Vec<&str> = screen.lines().collect();
    assert_eq!(
        lines.iter().filter(|l| l.contains(" evil ")).count(),
        n,
        "{screen:?}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("2026-01-01")),
        "{screen:?}"
    );
    let o = pty("--raw")?;
    let screen = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{screen}");
    assert!(
        screen.contains("--raw") && screen.contains("terminal"),
        "{screen}"
    );
    assert!(!screen.contains('\x1b'), "{screen:?}");
    Ok(())
}

/// The embedded cluster's place follows HOME and XDG_DATA_HOME, and `db status` prints it.
#[test]
fn the_data_dir_follows_xdg_and_home_and_db_status_prints_it() {
    let base = tempfile::tempdir().unwrap();
    let home = base.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let status = |cmd: &mut Command| {
        let o = cmd
            .args(["db", "status", "--output", "json"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v
    };
    let v = status(&mut opsdash(&home));
    assert_eq!(
        v["root"].as_str().unwrap(),
        home.join(".local/share/opsdash").to_str().unwrap(),
        "{v}"
    );
    assert_eq!(v["initialized"], false);
    let xdg = base.path().join("xdg");
    let v = status(opsdash(&home).env("XDG_DATA_HOME", &xdg));
    assert_eq!(
        v["root"].as_str().unwrap(),
        xdg.join("opsdash").to_str().unwrap()
    );
    let explicit = base.path().join("explicit");
    let v = status(opsdash(&home).env("OPSDASH_DATA_DIR", &explicit));
    assert_eq!(v["root"].as_str().unwrap(), explicit.to_str().unwrap());
    assert_eq!(v["root_source"], "OPSDASH_DATA_DIR");

    // The table form says it too.
    let o = opsdash(&home).args(["db", "status"]).output().unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains(home.join(".local/share/opsdash/pgdata").to_str().unwrap()),
        "{text}"
    );
    assert!(
        text.contains("chosen by:  $HOME/.local/share/opsdash"),
        "{text}"
    );

    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // As root the server runs as `postgres`, which cannot enter a 0700 home: the cluster
        // goes to a per-user place instead, never into the unreachable home.
        use std::os::unix::fs::PermissionsExt;
        let private = base.path().join("private");
        std::fs::create_dir_all(&private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let v = status(&mut opsdash(&private));
        let root = v["root"].as_str().unwrap();
        assert!(root.starts_with("/var/lib/opsdash"), "{v}");
        assert!(!root.starts_with(private.to_str().unwrap()), "{v}");
        assert!(
            v["root_source"].as_str().unwrap().contains("per-user") || root == "/var/lib/opsdash",
            "{v}"
        );
    }
}
