//! Turns the catalog and the incident schedule into rows for a time window. Backfill and live
//! traffic both call `Generator::generate`, so history and live data look alike.
//!
//! Each request carries a trace id shared by everything it causes: its log lines, its queries,
//! its outbound calls and its audit events, all timestamped inside the request's duration
//! (`request_log.ts` is the request's start).
//!
//! One generator: a request's rows (logs, queries, calls, audit) are made together so they share
//! its trace id and its times.

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::catalog::{self, Audit, ErrorKind, Route, QUERIES, ROUTES, SERVICES};
use super::fingerprint::{error_fingerprint, query_fingerprint};
use super::incidents::{self, IncidentKind, Occurrence, Schedule};
use super::rows::{AuditRow, Batch, HealthRow, LogRow, QueryRow, RequestRow};
use crate::model::Level;

/// Seconds between two health checks of a service.
pub const HEALTH_INTERVAL_S: i64 = 15;

/// Share of requests whose successful completion is logged at info level, and share of
/// queries kept by the (sampling) query log; slow queries are always kept.
const INFO_SAMPLE: f64 = 0.08;
const QUERY_SAMPLE: f64 = 0.2;
const SLOW_QUERY_MS: f64 = 100.0;

/// Requests per second over time.
#[derive(Debug, Clone, Copy)]
pub struct RateProfile {
    /// Mean requests per second.
    pub base: f64,
    /// Follow a daily curve (quiet at night UTC, busy in the afternoon) around `base`.
    pub diurnal: bool,
}

impl RateProfile {
    pub fn at(&self, t: DateTime<Utc>) -> f64 {
        if !self.diurnal {
            return self.base;
        }
        let day_frac = f64::from(t.num_seconds_from_midnight()) / 86_400.0;
        self.base * (1.0 + 0.45 * (std::f64::consts::TAU * (day_frac - 0.375)).sin())
    }

    /// Expected requests in `[from, to)`.
    pub fn expected(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
        let mut t = from;
        let mut sum = 0.0;
        while t < to {
            let next = (t + TimeDelta::seconds(60)).min(to);
            sum += self.at(t) * (next - t).as_seconds_f64();
            t = next;
        }
        sum
    }
}

/// Incident state for a short stretch of time.
#[derive(Default, Clone, Copy)]
struct Active {
    error_spike: bool,
    regression: bool,
    slow_queries: bool,
    down: bool,
}

impl Active {
    fn at(schedule: &Schedule, t: DateTime<Utc>) -> Active {
        let mut a = Active::default();
        for kind in schedule.active_kinds(t) {
            match kind {
                IncidentKind::ErrorSpike => a.error_spike = true,
                IncidentKind::LatencyRegression => a.regression = true,
                IncidentKind::SlowQueryBurst => a.slow_queries = true,
                IncidentKind::ServiceDown => a.down = true,
                IncidentKind::MassDelete | IncidentKind::FailedLoginBurst => {}
            }
        }
        a
    }
}

/// Overrides for the scripted requests of an incident.
struct Forced<'a> {
    route: usize,
    user: Option<u32>,
    /// Login name tried (failed logins of unknown accounts have no user id).
    actor: Option<&'a str>,
    ip: &'a str,
    user_agent: &'a str,
    status: u16,
    resource_id: Option<u64>,
}

pub struct Generator {
    schedule: Schedule,
    cumulative_weights: Vec<u32>,
    query_fingerprints: Vec<String>,
    spike_route: usize,
    regression_route: usize,
    down_service: usize,
    login_route: usize,
    delete_product_route: usize,
}

impl Generator {
    pub fn new(schedule: Schedule) -> Generator {
        let mut acc = 0;
        let cumulative_weights = ROUTES
            .iter()
            .map(|r| {
                acc += r.weight;
                acc
            })
            .collect();
        let find = |(m, p): (&str, &str)| catalog::route_index(m, p).unwrap_or(0);
        Generator {
            schedule,
            cumulative_weights,
            query_fingerprints: QUERIES.iter().map(|q| query_fingerprint(q.sql)).collect(),
            spike_route: find(incidents::SPIKE_ROUTE),
            regression_route: find(incidents::REGRESSION_ROUTE),
            down_service: catalog::service_index(incidents::DOWN_SERVICE).unwrap_or(0),
            login_route: find(("POST", "/api/auth/login")),
            delete_product_route: find(("DELETE", "/api/products/{id}")),
        }
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Rows for `[from, to)`: requests at `rate` (plus the incidents' scripted requests), their
    /// logs, queries, outbound calls and audit events, and the health checks due in the window.
    pub fn generate(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        rate: RateProfile,
        seed: u64,
    ) -> Batch {
        let mut rng = StdRng::seed_from_u64(seed);
        let expected = rate.expected(from, to).max(0.0) as usize;
        let mut batch = Batch::new(from, to, expected + 16);
        let mut t = from;
        while t < to {
            let next = (t + TimeDelta::seconds(1)).min(to);
            let span = (next - t).as_seconds_f64();
            let want = rate.at(t) * span * rng.gen_range(0.85..1.15);
            let n = want.floor() as u64 + u64::from(rng.gen_bool((want.fract()).clamp(0.0, 1.0)));
            for _ in 0..n {
                let end = t + TimeDelta::microseconds((rng.gen::<f64>() * span * 1e6) as i64);
                let route = self.pick_route(&mut rng);
                self.request(&mut rng, &mut batch, end, route, None);
            }
            t = next;
        }
        self.scripted(&mut rng, &mut batch, from, to);
        self.health_checks(&mut rng, &mut batch, from, to);
        batch
    }

    fn pick_route(&self, rng: &mut StdRng) -> usize {
        let total = self.cumulative_weights.last().copied().unwrap_or(1);
        let x = rng.gen_range(0..total);
        self.cumulative_weights.partition_point(|&c| c <= x)
    }

    /// The incidents' scripted events: a fixed number per occurrence, spread evenly over it, so
    /// each event belongs to exactly one window however the time is sliced.
    fn scripted(
        &self,
        rng: &mut StdRng,
        batch: &mut Batch,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) {
        for occ in self.schedule.occurrences(from, to) {
            let (count, kind) = match occ.kind {
                IncidentKind::MassDelete => (incidents::MASS_DELETES, occ.kind),
                IncidentKind::FailedLoginBurst => (incidents::FAILED_LOGINS, occ.kind),
                _ => continue,
            };
            for k in 0..count {
                let at = event_time(&occ, k, count);
                if at < from || at >= to {
                    continue;
                }
                let forced = if kind == IncidentKind::MassDelete {
                    Forced {
                        route: self.delete_product_route,
                        user: Some(catalog::MASS_DELETE_USER),
                        actor: None,
                        ip: catalog::MASS_DELETE_IP,
                        user_agent: catalog::USER_AGENTS[0],
                        status: 204,
                        // Distinct products per occurrence: the occurrence's minute plus k.
                        resource_id: Some(
                            (occ.start.timestamp() as u64 / 60 % 100_000) * 100 + u64::from(k),
                        ),
                    }
                } else {
                    let names = catalog::BRUTE_FORCE_NAMES;
                    Forced {
                        route: self.login_route,
                        user: None,
                        actor: Some(names[k as usize % names.len()]),
                        ip: catalog::BRUTE_FORCE_IP,
                        user_agent: catalog::BRUTE_FORCE_UA,
                        status: 401,
                        resource_id: None,
                    }
                };
                self.request(rng, batch, at, forced.route, Some(&forced));
            }
        }
    }

    fn health_checks(
        &self,
        rng: &mut StdRng,
        batch: &mut Batch,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) {
        let first = from.timestamp().div_euclid(HEALTH_INTERVAL_S) * HEALTH_INTERVAL_S;
        let mut s = first;
        while s < to.timestamp() + 1 {
            let Some(ts) = DateTime::<Utc>::from_timestamp(s, 0) else {
                break;
            };
            s += HEALTH_INTERVAL_S;
            if ts < from || ts >= to {
                continue;
            }
            let active = Active::at(&self.schedule, ts);
            for (i, svc) in SERVICES.iter().enumerate() {
                let (status, ms, detail) = if active.down && i == self.down_service {
                    (
                        "down",
                        None,
                        Some(
                            "GET http://recommendations:8080/healthz: connect: connection refused",
                        ),
                    )
                } else if active.regression && i == catalog::SEARCH {
                    let ms = lognormal(rng, svc.check_ms * 40.0, 0.4);
                    (
                        "degraded",
                        Some(ms),
                        Some("healthz slow: opensearch query latency high"),
                    )
                } else if rng.gen_bool(0.003) {
                    (
                        "degraded",
                        Some(lognormal(rng, 900.0, 0.3)),
                        Some("healthz answered slowly"),
                    )
                } else {
                    ("healthy", Some(lognormal(rng, svc.check_ms, 0.35)), None)
                };
                batch.push_health(&HealthRow {
                    ts,
                    service: svc.name,
                    status,
                    response_ms: ms,
                    detail,
                });
            }
        }
    }

    /// One inbound request ending at `end`, with everything it causes.
    fn request(
        &self,
        rng: &mut StdRng,
        batch: &mut Batch,
        end: DateTime<Utc>,
        route_ix: usize,
        forced: Option<&Forced>,
    ) {
        // Incidents apply by the time the request ends (when its status is known).
        let active = Active::at(&self.schedule, end);
        let route: &Route = &ROUTES[route_ix];
        let svc = &SERVICES[route.service];
        let host = svc.hosts[rng.gen_range(0..svc.hosts.len())];

        // Who is calling.
        let user: Option<u32> = match forced {
            Some(f) => f.user,
            None if route.signed_in || route.audit == Audit::Login || rng.gen_bool(0.55) => {
                // Popular users come back often: a skewed pick.
                Some(((rng.gen::<f64>().powf(2.2)) * f64::from(catalog::USERS)) as u32)
            }
            None => None,
        };
        let user_id = user.map(catalog::user_id);
        let (ip, ua): (String, &str) = match (forced, user) {
            (Some(f), _) => (f.ip.to_string(), f.user_agent),
            (None, Some(u)) => (catalog::user_ip(u), catalog::user_agent(u)),
            (None, None) => {
                let anon = rng.gen_range(catalog::USERS..catalog::USERS * 20);
                (catalog::user_ip(anon), catalog::user_agent(anon))
            }
        };
        let trace_id = format!("{:032x}", rng.gen::<u128>());
        let request_id = format!("{:016x}", rng.gen::<u64>());

        // Outcome.
        let down = active.down && route.service == self.down_service;
        let mut status: u16 = match forced {
            Some(f) => f.status,
            None if down => 503,
            None => {
                let p5 = if active.error_spike && route_ix == self.spike_route {
                    incidents::SPIKE_ERROR_RATE
                } else {
                    route.p5xx
                };
                let x = rng.gen::<f64>();
                if x < p5 {
                    500
                } else if x < p5 + route.p4xx && !route.client_errors.is_empty() {
                    route.client_errors[rng.gen_range(0..route.client_errors.len())]
                } else {
                    match route.method {
                        "POST" if matches!(route.audit, Audit::Create(_)) => 201,
                        "DELETE" => 204,
                        _ => 200,
                    }
                }
            }
        };

        // Latency: log-normal around the route's median, with a rare long tail (GC pauses,
        // lock waits), and the incidents' effects.
        let mut duration = lognormal(rng, route.median_ms, route.sigma);
        if rng.gen_bool(0.01) {
            duration *= rng.gen_range(3.0..15.0);
        }
        if active.regression && route_ix == self.regression_route {
            duration *= incidents::REGRESSION_FACTOR;
        }
        if down {
            duration = lognormal(rng, 2.5, 0.4);
        } else if status == 401 || status == 400 || status == 404 {
            duration *= 0.4;
        }

        // Children: queries and the outbound call, laid out one after another inside the
        // request, starting shortly after it begins.
        let mut children_ms = 0.0;
        let mut queries: Vec<(usize, f64)> = Vec::new();
        if !down && status != 401 {
            for &q in route.queries {
                let spec = &QUERIES[q];
                let mut d = lognormal(rng, spec.median_ms, spec.sigma);
                if active.slow_queries && q == catalog::SLOW_QUERY {
                    d = rng.gen_range(1_500.0..6_000.0);
                }
                queries.push((q, d));
                children_ms += d + 0.3;
            }
        }
        let outbound = if down || (400..500).contains(&status) {
            None
        } else {
            route.outbound.as_ref().map(|o| {
                let failed = rng.gen_bool(o.fail);
                let d = if failed {
                    lognormal(rng, o.median_ms * 3.0, 0.3)
                } else {
                    lognormal(rng, o.median_ms, o.sigma)
                };
                children_ms += d + 0.5;
                (o, d, failed)
            })
        };
        if let Some((_, _, true)) = outbound {
            if forced.is_none() {
                status = 502;
            }
        }
        let lead_ms = rng.gen_range(0.2..1.5_f64).min(duration * 0.1);
        duration = duration.max(children_ms + lead_ms + 0.5);
        let start = end - ms(duration);

        let error_kind: Option<&ErrorKind> = if status >= 500 {
            Some(if down {
                &catalog::DOWN_ERROR
            } else if status == 502 {
                // the upstream integration failed
                &svc.errors[svc.errors.len() - 1]
            } else if active.error_spike && route_ix == self.spike_route {
                &SERVICES[catalog::CHECKOUT].errors[catalog::SPIKE_ERROR]
            } else {
                &svc.errors[rng.gen_range(0..svc.errors.len())]
            })
        } else {
            None
        };

        let bytes = if status >= 400 {
            rng.gen_range(90..400)
        } else {
            lognormal(rng, f64::from(route.bytes), 0.5) as i64
        };
        batch.push_request(&RequestRow {
            ts: start,
            service: svc.name,
            method: route.method,
            route: route.path,
            status,
            duration_ms: duration,
            bytes: Some(bytes),
            user_id: user_id.as_deref(),
            trace_id: &trace_id,
            request_id: Some(&request_id),
            ip: Some(&ip),
            user_agent: Some(ua),
            error_code: error_kind.map(|e| e.code),
            integration: None,
        });

        let mut cursor = start + ms(lead_ms);
        for (q, d) in &queries {
            let spec = &QUERIES[*q];
            if *d >= SLOW_QUERY_MS || rng.gen_bool(QUERY_SAMPLE) {
                let rows = rng.gen_range(spec.rows.0..=spec.rows.1);
                batch.push_query(&QueryRow {
                    ts: cursor,
                    service: SERVICES[spec.service].name,
                    database: SERVICES[spec.service].database,
                    query: spec.sql,
                    fingerprint: &self.query_fingerprints[*q],
                    duration_ms: *d,
                    rows: i64::from(rows),
                    trace_id: &trace_id,
                });
                if *d >= 1_000.0 {
                    let message =
                        format!("slow query took {:.0} ms: {}", d, truncate(spec.sql, 80));
                    batch.push_log(&LogRow {
                        ts: cursor + ms(*d),
                        level: Level::Warn,
                        service: svc.name,
                        host,
                        message: &message,
                        trace_id: Some(&trace_id),
                        span_id: Some(&span(rng)),
                        request_id: Some(&request_id),
                        user_id: user_id.as_deref(),
                        route: Some(route.path),
                        method: Some(route.method),
                        status: None,
                        duration_ms: Some(*d),
                        ip: None,
                        user_agent: None,
                        error_type: None,
                        attrs: Some(&json!({"db.system": "postgresql", "db.name": SERVICES[spec.service].database})),
                        fingerprint: None,
                    });
                }
            }
            cursor += ms(d + 0.3);
        }
        if let Some((o, d, failed)) = outbound {
            let call_status: u16 = if failed { 503 } else { 200 };
            batch.push_request(&RequestRow {
                ts: cursor,
                service: svc.name,
                method: o.method,
                route: o.route,
                status: call_status,
                duration_ms: d,
                bytes: Some(rng.gen_range(300..4_000)),
                user_id: user_id.as_deref(),
                trace_id: &trace_id,
                request_id: Some(&request_id),
                ip: None,
                user_agent: None,
                error_code: failed.then_some("INTEGRATION_UNAVAILABLE"),
                integration: Some(o.integration),
            });
        }

        // Logs, all inside the request.
        let log_ts = end - ms(rng.gen_range(0.0..0.2_f64).min(duration * 0.01));
        // What every log line of the request says about it; each line sets its level and text.
        let request_line = LogRow {
            ts: log_ts,
            level: Level::Info,
            service: svc.name,
            host,
            message: "",
            trace_id: Some(&trace_id),
            span_id: None,
            request_id: Some(&request_id),
            user_id: user_id.as_deref(),
            route: Some(route.path),
            method: Some(route.method),
            status: Some(status),
            duration_ms: Some(duration),
            ip: Some(&ip),
            user_agent: Some(ua),
            error_type: None,
            attrs: None,
            fingerprint: None,
        };
        if let Some(kind) = error_kind {
            let message = kind
                .message
                .replace("{id}", &rng.gen_range(1_000..999_999).to_string())
                .replace("{n}", &rng.gen_range(2..5_000).to_string());
            let service = svc.name;
            let fp = error_fingerprint(service, kind.error_type, &message);
            let attrs = if kind.stack.is_empty() {
                json!({"exception": kind.error_type, "upstream": svc.name})
            } else {
                json!({"exception": kind.error_type, "stack": format!("{}: {}\n{}", kind.error_type, message, kind.stack)})
            };
            batch.push_log(&LogRow {
                level: Level::Error,
                host: if down { "ingress-1" } else { host },
                message: &message,
                span_id: Some(&span(rng)),
                error_type: Some(kind.error_type),
                attrs: Some(&attrs),
                fingerprint: Some(&fp),
                ..request_line
            });
        } else if status >= 400 {
            let always = status == 401 || status == 403;
            if always || rng.gen_bool(0.3) {
                let message = match (status, forced.and_then(|f| f.actor).or(user_id.as_deref())) {
                    (401, Some(name)) => format!("invalid credentials for {name:?} from {ip}"),
                    (403, _) => format!("permission denied: {} {}", route.method, route.path),
                    (429, _) => format!("rate limited: {ip}"),
                    _ => format!(
                        "request rejected with {status}: {} {}",
                        route.method, route.path
                    ),
                };
                batch.push_log(&LogRow {
                    level: Level::Warn,
                    message: &message,
                    ..request_line
                });
            }
        } else if duration >= 1_000.0 || rng.gen_bool(INFO_SAMPLE) {
            let slow = duration >= 1_000.0;
            let message = if slow {
                format!(
                    "slow request: {} {} took {:.0} ms",
                    route.method, route.path, duration
                )
            } else {
                format!(
                    "{} {} {} {:.1}ms",
                    route.method, route.path, status, duration
                )
            };
            batch.push_log(&LogRow {
                level: if slow { Level::Warn } else { Level::Info },
                message: &message,
                ..request_line
            });
        }

        self.audit(
            rng,
            batch,
            route,
            status,
            start,
            duration,
            user,
            forced,
            &ip,
            &trace_id,
            &request_id,
            host,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn audit(
        &self,
        rng: &mut StdRng,
        batch: &mut Batch,
        route: &Route,
        status: u16,
        start: DateTime<Utc>,
        duration: f64,
        user: Option<u32>,
        forced: Option<&Forced>,
        ip: &str,
        trace_id: &str,
        request_id: &str,
        host: &str,
    ) {
        if route.audit == Audit::None || status >= 500 {
            return;
        }
        let actor = match (forced.and_then(|f| f.actor), user) {
            (Some(name), _) => name.to_string(),
            (None, Some(u)) => catalog::user_id(u),
            (None, None) => return,
        };
        let role = user.map(catalog::user_role);
        let ts = start + ms(duration * 0.7);
        let outcome = match status {
            401 => "failure",
            403 => "denied",
            400..=499 => "failure",
            _ => "success",
        };
        // A session per user and day, so one sign-in's actions group together.
        let session =
            user.map(|u| format!("s_{:08x}{:04x}", u, (start.timestamp() / 86_400) as u16));
        let resource_id = forced
            .and_then(|f| f.resource_id)
            .unwrap_or_else(|| rng.gen_range(1_000..90_000))
            .to_string();
        let (action, rtype, before, after, changes) = match route.audit {
            Audit::None => return,
            Audit::Login if outcome == "success" => ("login", Some("session"), None, None, None),
            Audit::Login => ("login_failed", Some("session"), None, None, None),
            Audit::Logout => ("logout", Some("session"), None, None, None),
            Audit::Create(rt) => (
                "create",
                Some(rt),
                None,
                Some(json!({"id": resource_id, "status": "created"})),
                None,
            ),
            Audit::Update(rt) => {
                let (field, old, new) = update_fields(rng, rt);
                (
                    "update",
                    Some(rt),
                    Some(json!({"id": resource_id, field: old})),
                    Some(json!({"id": resource_id, field: new})),
                    Some(json!({field: [old, new]})),
                )
            }
            Audit::Delete(rt) => (
                "delete",
                Some(rt),
                Some(json!({"id": resource_id, "name": format!("{rt} {resource_id}")})),
                None,
                None,
            ),
        };
        let resource_id = match route.audit {
            Audit::Login | Audit::Logout => session.clone(),
            _ => Some(resource_id),
        };
        batch.push_audit(&AuditRow {
            ts,
            actor: &actor,
            actor_role: role,
            action,
            resource_type: rtype,
            resource_id: resource_id.as_deref(),
            before: before.as_ref(),
            after: after.as_ref(),
            changes: changes.as_ref(),
            outcome,
            ip: Some(ip),
            session_id: session.as_deref(),
            request_id: Some(request_id),
            trace_id: Some(trace_id),
            host: Some(host),
        });
    }
}

/// The field an update changes, with its old and new values.
fn update_fields(
    rng: &mut StdRng,
    resource_type: &str,
) -> (&'static str, serde_json::Value, serde_json::Value) {
    match resource_type {
        "product" => {
            let old = rng.gen_range(500..20_000);
            let new = (f64::from(old) * rng.gen_range(0.8..1.2)) as i64;
            ("price_cents", json!(old), json!(new))
        }
        "user" => {
            const LOCALES: [&str; 4] = ["en-US", "de-DE", "fr-FR", "es-ES"];
            let a = LOCALES[rng.gen_range(0..4)];
            let b = LOCALES[rng.gen_range(0..4)];
            ("locale", json!(a), json!(b))
        }
        "order" => ("status", json!("placed"), json!("cancelled")),
        _ => {
            let q = rng.gen_range(1..5);
            ("quantity", json!(q), json!(q + 1))
        }
    }
}

fn event_time(occ: &Occurrence, k: u32, count: u32) -> DateTime<Utc> {
    let len_us = (occ.end - occ.start).num_microseconds().unwrap_or(0);
    let offset = (len_us as f64 * (f64::from(k) + 0.5) / f64::from(count)) as i64;
    occ.start + TimeDelta::microseconds(offset)
}

fn ms(v: f64) -> TimeDelta {
    TimeDelta::microseconds((v * 1000.0) as i64)
}

/// A log-normal sample with the given median: median * e^(sigma * N(0,1)) (Box-Muller).
fn lognormal(rng: &mut StdRng, median: f64, sigma: f64) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    median * (sigma * z).exp()
}

fn span(rng: &mut StdRng) -> String {
    format!("{:016x}", rng.gen::<u64>())
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::writer::REQUEST_COLUMNS;

    #[test]
    fn rate_profile_averages_to_base() {
        let p = RateProfile {
            base: 10.0,
            diurnal: true,
        };
        let from = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let day = p.expected(from, from + TimeDelta::hours(24));
        assert!((day / 86_400.0 - 10.0).abs() < 0.1, "{day}");
    }

    #[test]
    fn lognormal_median_is_close() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut v: Vec<f64> = (0..20_001)
            .map(|_| lognormal(&mut rng, 40.0, 0.6))
            .collect();
        v.sort_by(f64::total_cmp);
        let median = v[10_000];
        assert!((median - 40.0).abs() < 2.0, "{median}");
        // long tail: p99 well above the median
        assert!(v[19_800] > 3.0 * median);
    }

    #[test]
    fn generates_the_expected_volume_inside_the_window() {
        let g = Generator::new(Schedule::default());
        let from = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let to = from + TimeDelta::seconds(60);
        let b = g.generate(
            from,
            to,
            RateProfile {
                base: 50.0,
                diurnal: false,
            },
            7,
        );
        assert!(
            (2_700..=3_300).contains(&b.inbound_requests),
            "{}",
            b.inbound_requests
        );
        // 4 checks (every 15 s) of every service
        assert_eq!(b.health.rows(), 4 * SERVICES.len());
        assert!(b.logs.rows() > 0 && b.queries.rows() > 0 && b.audits.rows() > 0);
    }

    /// The checkout route is 0.75% of the traffic, so a short clock-seeded demo run sees too few
    /// of its requests inside a spike to measure the rate: a seeded hour of traffic does.
    #[test]
    fn the_error_spike_fails_checkout_at_its_rate_and_only_inside_the_spike() {
        let schedule = Schedule::new(std::time::Duration::from_secs(300));
        let g = Generator::new(schedule);
        // A cycle boundary, so the hour holds twelve whole spikes.
        let from = DateTime::<Utc>::from_timestamp(1_700_000_100, 0).unwrap_or_default();
        let to = from + TimeDelta::hours(1);
        let rate = RateProfile {
            base: 30.0,
            diurnal: false,
        };
        let b = g.generate(from, to, rate, 11);
        let col = |name: &str| REQUEST_COLUMNS.iter().position(|c| *c == name).unwrap_or(0);
        let (ts, route, status, duration, direction) = (
            col("ts"),
            col("route"),
            col("status"),
            col("duration_ms"),
            col("direction"),
        );
        // (requests, 5xx) inside and outside the spike, by the time the request ended.
        let (mut inside, mut outside) = ((0u32, 0u32), (0u32, 0u32));
        let text = String::from_utf8_lossy(b.requests.as_bytes());
        for line in text.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            if f[route] != "/api/checkout" || f[direction] != "inbound" {
                continue;
            }
            let start = chrono::NaiveDateTime::parse_from_str(f[ts], "%Y-%m-%d %H:%M:%S%.f+00")
                .map(|t| t.and_utc())
                .unwrap_or_default();
            let end = start + ms(f[duration].parse().unwrap_or(0.0));
            let spike = g
                .schedule()
                .active_kinds(end)
                .any(|k| k == IncidentKind::ErrorSpike);
            let bucket = if spike { &mut inside } else { &mut outside };
            bucket.0 += 1;
            bucket.1 += u32::from(f[status].starts_with('5'));
        }
        assert!(inside.0 >= 50 && outside.0 >= 300, "{inside:?} {outside:?}");
        let spike_rate = f64::from(inside.1) / f64::from(inside.0);
        let normal_rate = f64::from(outside.1) / f64::from(outside.0);
        assert!(
            (0.3..0.6).contains(&spike_rate) && normal_rate < 0.1,
            "checkout 5xx rate {spike_rate} inside the spike vs {normal_rate} outside"
        );
    }
}
