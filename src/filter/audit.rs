//! The filter line over the audit trail (`opsdash audit search`, the audit view): the same
//! language as the Logs filter (terms ANDed, `-` excludes, `a,b` lists, `*` globs, quotes,
//! `since:`/`until:`, `ip:` networks) with the audit trail's fields. Bare words and phrases
//! match the actor, the action or the resource (type or id), case-insensitively.

use sqlx::{Postgres, QueryBuilder};

use super::lexer::lex;
use super::parser::{list, networks, patterns, time_bound};
use super::sql::{contains, glob_to_like, push_time};
use super::{FilterError, Pattern, TimeBound};

/// The audit fields, for error messages and the help.
pub const AUDIT_KEYS: &str = "actor, role, action, type, id, outcome, source, session, request, trace, host, ip, since, until";

/// What `opsdash audit search --help` shows of the language.
pub const AUDIT_FILTER_HELP: &str = "\
Terms are separated by spaces and must all hold; a list a,b matches any.
actor:alice,bob           who acted (user: too); role:admin the role
action:user.delete        the action; action:*delete* any delete
type:public.orders        the resource type (table: too)
id:42                     the resource id (resource: too)
outcome:failure           success, failure, denied...
source:trigger            app, trigger (row audit) or opsdash
session:ID  request:ID    the session; the request (req:)
trace:ID  host:web-1      the trace id; the host
ip:10.1.0.0/16            the client address is in the network
since:1h  until:2026-11-21T10:00   the time (UTC, or RFC 3339)
payment                   actor, action or resource has the word
-actor:deploy-bot         exclude (any term but since:/until:)
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditColumn {
    Actor,
    Role,
    Action,
    ResourceType,
    ResourceId,
    Outcome,
    Source,
    Session,
    Request,
    Trace,
    Host,
}

impl AuditColumn {
    fn sql(self) -> &'static str {
        match self {
            AuditColumn::Actor => "actor",
            AuditColumn::Role => "actor_role",
            AuditColumn::Action => "action",
            AuditColumn::ResourceType => "resource_type",
            AuditColumn::ResourceId => "resource_id",
            AuditColumn::Outcome => "outcome",
            AuditColumn::Source => "source",
            AuditColumn::Session => "session_id",
            AuditColumn::Request => "request_id",
            AuditColumn::Trace => "trace_id",
            AuditColumn::Host => "host",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum AuditCond {
    Field {
        column: AuditColumn,
        patterns: Vec<Pattern>,
    },
    Since(TimeBound),
    Until(TimeBound),
    IpIn(Vec<String>),
    /// A word or phrase in the actor, action or resource.
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditTerm {
    pub negated: bool,
    pub cond: AuditCond,
}

/// An understood audit filter; `push_conditions` writes it as SQL over `opsdash.audit_event`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuditFilter {
    source: String,
    terms: Vec<AuditTerm>,
}

/// Parses an audit filter; errors carry the character offset of the mistake, as the Logs
/// filter's do.
pub fn parse_audit(input: &str) -> Result<AuditFilter, FilterError> {
    let mut terms = Vec::new();
    for raw in lex(input)? {
        if raw.op.is_some() {
            return Err(FilterError::new(
                raw.pos,
                "the audit trail has no numbers to compare: use field:value",
            ));
        }
        let cond = match &raw.key {
            None => AuditCond::Text(raw.value.clone()),
            Some((key, key_pos)) => {
                let column = match key.as_str() {
                    "actor" | "user" | "who" => AuditColumn::Actor,
                    "role" | "actor_role" => AuditColumn::Role,
                    "action" => AuditColumn::Action,
                    "type" | "resource_type" | "table" => AuditColumn::ResourceType,
                    "id" | "resource_id" | "resource" => AuditColumn::ResourceId,
                    "outcome" => AuditColumn::Outcome,
                    "source" => AuditColumn::Source,
                    "session" | "session_id" => AuditColumn::Session,
                    "request" | "request_id" | "req" => AuditColumn::Request,
                    "trace" | "trace_id" => AuditColumn::Trace,
                    "host" => AuditColumn::Host,
                    "since" | "from" => {
                        if raw.negated {
                            return Err(negated_time(raw.pos));
                        }
                        terms.push(AuditTerm {
                            negated: false,
                            cond: AuditCond::Since(time_bound(&raw)?),
                        });
                        continue;
                    }
                    "until" | "to" => {
                        if raw.negated {
                            return Err(negated_time(raw.pos));
                        }
                        terms.push(AuditTerm {
                            negated: false,
                            cond: AuditCond::Until(time_bound(&raw)?),
                        });
                        continue;
                    }
                    "ip" => {
                        terms.push(AuditTerm {
                            negated: raw.negated,
                            cond: AuditCond::IpIn(networks(&raw)?),
                        });
                        continue;
                    }
                    other => {
                        return Err(FilterError::new(
                            *key_pos,
                            format!(
                                "unknown audit field '{other}' (known: {AUDIT_KEYS}); put text \
                                 with ':' in quotes to search for it"
                            ),
                        ))
                    }
                };
                // `list` checks empty items even when `patterns` takes a quoted value whole.
                if !raw.quoted {
                    list(&raw)?;
                }
                AuditCond::Field {
                    column,
                    patterns: patterns(&raw)?,
                }
            }
        };
        terms.push(AuditTerm {
            negated: raw.negated,
            cond,
        });
    }
    Ok(AuditFilter {
        source: input.trim().to_string(),
        terms,
    })
}

fn negated_time(pos: usize) -> FilterError {
    FilterError::new(pos, "since:/until: cannot be negated (use the other one)")
}

impl AuditFilter {
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn terms(&self) -> &[AuditTerm] {
        &self.terms
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Appends the conditions (`TRUE` for the empty filter) over `opsdash.audit_event`'s
    /// unqualified columns; user text only as bind parameters.
    pub fn push_conditions(&self, qb: &mut QueryBuilder<'_, Postgres>) {
        if self.terms.is_empty() {
            qb.push("TRUE");
            return;
        }
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                qb.push(" AND ");
            }
            qb.push(if t.negated { "NOT coalesce((" } else { "((" });
            push_cond(&t.cond, qb);
            qb.push(if t.negated { "), false)" } else { "))" });
        }
    }
}

fn push_cond(c: &AuditCond, qb: &mut QueryBuilder<'_, Postgres>) {
    match c {
        AuditCond::Field { column, patterns } => {
            for (i, p) in patterns.iter().enumerate() {
                if i > 0 {
                    qb.push(" OR ");
                }
                // One exact value is an equality, so the (actor, ts), (action, ts) and
                // (resource_type, resource_id, ts) indexes serve it.
                qb.push(column.sql());
                match p {
                    Pattern::Exact(v) => qb.push(" = ").push_bind(v.clone()),
                    Pattern::Glob(g) => qb.push(" LIKE ").push_bind(glob_to_like(g)),
                };
            }
        }
        AuditCond::Since(b) => {
            qb.push("ts >= ");
            push_time(b, qb);
        }
        AuditCond::Until(b) => {
            qb.push("ts < ");
            push_time(b, qb);
        }
        AuditCond::IpIn(nets) => {
            qb.push("opsdash.try_inet(ip) <<= ANY(")
                .push_bind(nets.clone())
                .push("::cidr[])");
        }
        AuditCond::Text(w) => {
            let pat = contains(w);
            qb.push("actor ILIKE ")
                .push_bind(pat.clone())
                .push(" OR action ILIKE ")
                .push_bind(pat.clone())
                .push(" OR resource_type ILIKE ")
                .push_bind(pat.clone())
                .push(" OR resource_id ILIKE ")
                .push_bind(pat);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_of_the_audit_help_parses() {
        for line in AUDIT_FILTER_HELP.lines().skip(1) {
            let e = line.split("   ").next().unwrap_or("").trim();
            let f = parse_audit(e).unwrap_or_else(|err| panic!("{e}: {err}"));
            assert!(!f.is_empty(), "{e}");
        }
    }

    #[test]
    fn fields_lists_globs_and_errors_with_positions() {
        let f = parse_audit("actor:alice,bob -action:*delete* type:\"a b\"").unwrap();
        assert_eq!(
            f.terms()[0].cond,
            AuditCond::Field {
                column: AuditColumn::Actor,
                patterns: vec![Pattern::Exact("alice".into()), Pattern::Exact("bob".into())]
            }
        );
        assert!(f.terms()[1].negated);
        let e = parse_audit("actor:a level:error").unwrap_err();
        assert_eq!(e.pos, 8);
        assert!(e.message.contains("unknown audit field 'level'"), "{e}");
        assert_eq!(parse_audit("ip:10.0.0.0/33").unwrap_err().pos, 3);
        assert_eq!(parse_audit("x -since:1h").unwrap_err().pos, 2);
        assert_eq!(parse_audit("actor:a,").unwrap_err().pos, 8);
        assert!(parse_audit("status>=5").is_err());
        let mut qb = QueryBuilder::<Postgres>::new("");
        parse_audit("evil'); DROP actor:\"x'y\"")
            .unwrap()
            .push_conditions(&mut qb);
        assert!(!qb.sql().contains("DROP") && !qb.sql().contains("x'y"));
    }
}
