//! The real `opsdash serve` binary for receiver tests: started on a free port (it prints the
//! address it bound), stopped on drop, its stderr kept for failure messages.

use std::path::Path;
use std::time::Duration;

use super::procs::{opsdash, write_config, Children};

pub struct Server {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub children: Children,
}

impl Server {
    /// Starts `opsdash serve` against `url` with `config` (TOML; its `[server]` section may set
    /// tokens and limits, but not `listen`: a free port is taken) in `dir`.
    pub fn start(url: &str, dir: &Path, config: &str, extra_args: &[&str]) -> Server {
        let cfg = write_config(dir, config);
        let mut children = Children::new(dir);
        let mut cmd = opsdash(url, &cfg);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra_args);
        children.spawn("serve", cmd);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let base = loop {
            let log = children.log("serve");
            if let Some(rest) = log.split("listening on ").nth(1) {
                break rest.lines().next().unwrap_or("").trim().to_string();
            }
            if !children.exited().is_empty() || std::time::Instant::now() > deadline {
                break String::new();
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            base.starts_with("http"),
            "opsdash serve did not start:\n{}",
            children.log("serve")
        );
        Server { base, children }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        self.children.log("serve")
    }
}
