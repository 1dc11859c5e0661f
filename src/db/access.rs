//! Capabilities of the connection, decided once at connect time and carried in `Db`: who we
//! are connected as, whether we own the schema (and so migrate it), and what the role may do.
//! The CLI and the tabs ask this before writing, so a reader is told "read-only: ..." in one
//! line instead of meeting "permission denied" from the server.

use anyhow::{bail, Result};

use crate::query::access::{self as q, Privileges};

/// The opsdash role an operator action needs (see migrations/0021_roles.sql).
pub const OPERATOR_ROLE: &str = "opsdash_operator";

/// What this connection may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The login role (`session_user`); empty when nothing was asked (`Access::unchecked`).
    pub role: String,
    pub owner: bool,
    /// `--read-only` or `database.read_only`: no writes whatever the role may do.
    pub forced_read_only: bool,
    pub privileges: Privileges,
}

impl Access {
    /// Everything allowed: for pools made by hand (tests, tools) that never asked the server.
    pub fn unchecked() -> Access {
        Access {
            role: String::new(),
            owner: true,
            forced_read_only: false,
            privileges: Privileges {
                operate: true,
                ingest: true,
                read_logs: true,
                work: true,
                all_stats: true,
                groups: Vec::new(),
            },
        }
    }

    /// Asks the server what the connected role may do.
    pub async fn detect(pool: &sqlx::PgPool, forced_read_only: bool) -> Result<Access> {
        let who = q::ownership(pool).await?;
        let privileges = q::privileges(pool).await?;
        Ok(Access {
            role: who.role,
            owner: who.owner,
            forced_read_only,
            privileges,
        })
    }

    /// Operator actions (acknowledge, resolve, silence, triage, rule changes) are allowed.
    pub fn can_operate(&self) -> bool {
        !self.forced_read_only && self.privileges.operate
    }

    /// The background jobs may run in this process.
    pub fn can_work(&self) -> bool {
        !self.forced_read_only && self.privileges.work
    }

    /// Why `doing` (an -ing phrase: "acknowledging") is refused, or None when it is allowed.
    pub fn refusal(&self, doing: &str) -> Option<String> {
        if self.forced_read_only {
            return Some(format!(
                "read-only: started with --read-only (or database.read_only), {doing} is off"
            ));
        }
        if self.privileges.operate {
            return None;
        }
        let has = if self.privileges.groups.is_empty() {
            "no opsdash role".to_string()
        } else {
            self.privileges.groups.join(", ")
        };
        Some(format!(
            "read-only: role {} has {has}, {doing} needs {OPERATOR_ROLE}",
            self.role
        ))
    }

    /// `Err` with the refusal line when `doing` is not allowed.
    pub fn check_operate(&self, doing: &str) -> Result<()> {
        match self.refusal(doing) {
            Some(why) => bail!(why),
            None => Ok(()),
        }
    }

    /// `Err` when this process may not run the background jobs (`opsdash worker`).
    pub fn check_work(&self) -> Result<()> {
        if self.forced_read_only {
            bail!("read-only: started with --read-only (or database.read_only), the worker writes");
        }
        if !self.privileges.work {
            bail!(
                "role {} may not run the worker jobs: they need opsdash_worker (opsdash db grant \
                 opsdash_worker {})",
                self.role,
                self.role
            );
        }
        Ok(())
    }

    /// `Err` when this process may not store log lines (`opsdash ingest`).
    pub fn check_ingest(&self) -> Result<()> {
        if self.forced_read_only {
            bail!("read-only: started with --read-only (or database.read_only), ingest writes");
        }
        if !self.privileges.ingest {
            bail!(
                "role {} may not store log lines: that needs opsdash_ingest (opsdash db grant \
                 opsdash_ingest {})",
                self.role,
                self.role
            );
        }
        Ok(())
    }

    /// A short badge for the header ("read-only"), None when the role may operate.
    pub fn badge(&self) -> Option<&'static str> {
        (!self.can_operate()).then_some("read-only")
    }
}

/// The message a non-owner gets when the schema is older than this build.
pub fn behind_message(at: Option<i64>, needs: i64) -> String {
    let at = at.map(|v| v.to_string()).unwrap_or_else(|| "none".into());
    format!("schema at {at}, this build needs {needs}: run `opsdash migrate` as the owner")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> Access {
        Access {
            role: "alice".into(),
            owner: false,
            forced_read_only: false,
            privileges: Privileges {
                read_logs: true,
                groups: vec!["opsdash_reader".into()],
                ..Privileges::default()
            },
        }
    }

    #[test]
    fn a_reader_is_told_which_role_it_lacks() {
        assert_eq!(
            reader().refusal("acknowledging").as_deref(),
            Some("read-only: role alice has opsdash_reader, acknowledging needs opsdash_operator")
        );
        let mut none = reader();
        none.privileges.groups.clear();
        assert!(none
            .check_operate("silencing")
            .unwrap_err()
            .to_string()
            .contains("role alice has no opsdash role, silencing needs opsdash_operator"));
    }

    #[test]
    fn read_only_flag_wins_over_the_role() {
        let mut a = Access::unchecked();
        assert!(a.can_operate() && a.refusal("resolving").is_none());
        a.forced_read_only = true;
        assert!(!a.can_operate() && !a.can_work());
        assert!(a.refusal("resolving").unwrap().contains("--read-only"));
        assert_eq!(a.badge(), Some("read-only"));
        assert!(a.check_work().is_err() && a.check_ingest().is_err());
        let mut r = reader();
        assert!(r
            .check_ingest()
            .unwrap_err()
            .to_string()
            .contains("opsdash_ingest"));
        r.privileges.ingest = true;
        assert!(r.check_ingest().is_ok() && r.check_work().is_err());
    }

    #[test]
    fn behind_message_names_both_versions() {
        assert_eq!(
            behind_message(Some(18), 19),
            "schema at 18, this build needs 19: run `opsdash migrate` as the owner"
        );
    }
}
