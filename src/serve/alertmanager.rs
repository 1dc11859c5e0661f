//! The part of Alertmanager's API v2 that Prometheus and amtool use (shapes from Alertmanager's
//! `api/v2/openapi.yaml`): `POST /api/v2/alerts` (Prometheus's alerting client),
//! `GET /api/v2/alerts`, `GET/POST /api/v2/silences`, `GET/DELETE /api/v2/silence/{id}`,
//! `GET /api/v2/status` and `GET /api/v2/receivers`. Alerts become opsdash external alerts
//! (`alerts::external`); silences are opsdash's own silences.
//!
//! One file: the routes share the API's JSON shapes and their mapping onto opsdash alerts and
//! silences.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::Client;
use super::body;
use super::reply::Reject;
use super::State;
use crate::alerts::external::{self, Received};
use crate::alerts::Matcher;
use crate::query::alerts as q;
use crate::query::external_alerts as xq;
use crate::query::{rules, silences};

/// The source of alerts sent without a token (Prometheus is the usual sender).
const PROTOCOL: &str = "prometheus";
/// Most alerts `GET /api/v2/alerts` returns.
const LIST_LIMIT: i64 = 10_000;
/// Expired silences stay listed this long, as Alertmanager keeps them (its default retention).
const KEEP_EXPIRED_S: i64 = 5 * 86_400;
const RETRY_AFTER_SECS: u64 = 5;

/// When the routes were made: the `uptime` of `GET /api/v2/status` (the time it started).
static STARTED: OnceLock<DateTime<Utc>> = OnceLock::new();

pub fn routes() -> Router<State> {
    STARTED.get_or_init(Utc::now);
    Router::new()
        .route("/api/v2/alerts", get(list_alerts).post(post_alerts))
        .route("/api/v2/silences", get(list_silences).post(post_silence))
        .route(
            "/api/v2/silence/{id}",
            get(get_silence).delete(delete_silence),
        )
        .route("/api/v2/status", get(status))
        .route("/api/v2/receivers", get(receivers))
}

// ------------------------------------------------------------------------------------------
// Wire models (openapi.yaml definitions)
// ------------------------------------------------------------------------------------------

/// `postableAlert`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: Option<String>,
}

/// `alertStatus`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertStatus {
    /// unprocessed, active or suppressed.
    pub state: String,
    pub silenced_by: Vec<String>,
    pub inhibited_by: Vec<String>,
}

/// `receiver`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Receiver {
    pub name: String,
}

/// `gettableAlert`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GettableAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub receivers: Vec<Receiver>,
    pub fingerprint: String,
    pub starts_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
    pub status: AlertStatus,
}

/// `matcher`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl ApiMatcher {
    fn to_matcher(&self) -> Result<Matcher, String> {
        if self.name.is_empty() {
            return Err("matcher with an empty label name".into());
        }
        let op = match (self.is_regex, self.is_equal) {
            (false, true) => "=",
            (false, false) => "!=",
            (true, true) => "=~",
            (true, false) => "!~",
        };
        if self.is_regex {
            regex::Regex::new(&self.value)
                .map_err(|e| format!("matcher {}: bad regex: {e}", self.name))?;
        }
        Ok(Matcher {
            name: self.name.clone(),
            op: op.into(),
            value: self.value.clone(),
        })
    }

    fn of(m: &Matcher) -> ApiMatcher {
        ApiMatcher {
            name: m.name.clone(),
            value: m.value.clone(),
            is_regex: m.op.ends_with('~'),
            is_equal: !m.op.starts_with('!'),
        }
    }
}

/// `postableSilence`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableSilence {
    #[serde(default)]
    pub id: Option<String>,
    pub matchers: Vec<ApiMatcher>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
}

/// `silenceStatus`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SilenceStatus {
    /// expired, active or pending.
    pub state: String,
}

/// `gettableSilence`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GettableSilence {
    pub id: String,
    pub status: SilenceStatus,
    pub updated_at: DateTime<Utc>,
    pub matchers: Vec<ApiMatcher>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
}

impl GettableSilence {
    fn of(s: &xq::SilenceApiRow) -> GettableSilence {
        GettableSilence {
            id: s.id.to_string(),
            status: SilenceStatus {
                state: s.state.clone(),
            },
            updated_at: s.expired_at.unwrap_or(s.created_at),
            matchers: s.matchers.0.iter().map(ApiMatcher::of).collect(),
            starts_at: s.starts_at,
            ends_at: s.ends_at,
            created_by: s.created_by.clone(),
            comment: s.comment.clone(),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Decoding and checks
// ------------------------------------------------------------------------------------------

/// Go's zero time (`0001-01-01T00:00:00Z`) means "not set" on the wire.
fn set(t: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    t.filter(|t| t.year() > 1)
}

/// A Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`), as Alertmanager 0.25 checks them.
fn valid_label_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// Checks one posted alert as Alertmanager does; the reason when it is refused.
pub fn check(a: PostableAlert) -> Result<Received, String> {
    if a.labels.is_empty() {
        return Err("at least one label pair required".into());
    }
    for n in a.labels.keys().chain(a.annotations.keys()) {
        if !valid_label_name(n) {
            return Err(format!("invalid label name {n:?}"));
        }
    }
    let (starts_at, ends_at) = (set(a.starts_at), set(a.ends_at));
    if let (Some(s), Some(e)) = (starts_at, ends_at) {
        if e < s {
            return Err("start time must be before end time".into());
        }
    }
    Ok(Received {
        labels: a.labels,
        annotations: a.annotations,
        starts_at,
        ends_at,
        generator_url: a.generator_url.filter(|u| !u.is_empty()),
    })
}

/// Parses one `filter` value as amtool sends it: `name=value`, `name=~"re"` or a braced list
/// `{a="b",c!~"d"}`; quoted values are unquoted.
pub fn parse_filter(s: &str) -> Result<Vec<Matcher>, String> {
    let s = s.trim();
    let inner = s
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or(s);
    let mut parts = Vec::new();
    let (mut cur, mut quoted, mut escaped) = (String::new(), false, false);
    for ch in inner.chars() {
        match ch {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    parts.push(cur);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let mut m = Matcher::parse(p.trim())?;
            if let Some(v) = m.value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                m.value = v.replace("\\\"", "\"").replace("\\\\", "\\");
            }
            Ok(m)
        })
        .collect()
}

fn db_down(e: anyhow::Error) -> Reject {
    tracing::warn!("alertmanager api: {e:#}");
    Reject::Unavailable {
        retry_after: RETRY_AFTER_SECS,
        why: "the alert tables could not be written or read".into(),
    }
}

fn bool_param(params: &[(String, String)], name: &str) -> Result<bool, Reject> {
    match params.iter().rev().find(|(k, _)| k == name) {
        None => Ok(true),
        Some((_, v)) => v
            .parse()
            .map_err(|_| Reject::BadRequest(format!("{name}={v:?}: expected true or false"))),
    }
}

// ------------------------------------------------------------------------------------------
// Handlers
// ------------------------------------------------------------------------------------------

/// A request's JSON body, decompressed within the configured limit; `what` names it in the 400.
fn json_body<T: serde::de::DeserializeOwned>(
    state: &State,
    headers: &HeaderMap,
    raw: &[u8],
    what: &str,
) -> Result<T, Reject> {
    let text = body::decode(headers, raw, state.cfg.server.decompressed_limit)?;
    serde_json::from_slice(&text).map_err(|e| Reject::BadRequest(format!("{what}: {e}")))
}

async fn post_alerts(
    AxState(state): AxState<State>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Response, Reject> {
    let posted: Vec<PostableAlert> = json_body(&state, &headers, &raw, "postable alerts")?;
    let mut good = Vec::with_capacity(posted.len());
    let mut bad = Vec::new();
    for (i, a) in posted.into_iter().enumerate() {
        match check(a) {
            Ok(r) => good.push(r),
            Err(why) => bad.push(format!("alert {i}: {why}")),
        }
    }
    if !good.is_empty() {
        external::receive(&state.db, &state.cfg, &client.source(PROTOCOL), &good)
            .await
            .map_err(db_down)?;
    }
    // As Alertmanager: the valid alerts are kept, and the invalid ones are named in a 400.
    if !bad.is_empty() {
        return Err(Reject::BadRequest(bad.join("; ")));
    }
    Ok(StatusCode::OK.into_response())
}

/// The receivers of a sender's alerts: its rule's channels, or "opsdash" when it has none
/// (the alert is then only shown).
fn receivers_of(channels: &[String]) -> Vec<Receiver> {
    if channels.is_empty() {
        return vec![Receiver {
            name: "opsdash".into(),
        }];
    }
    channels
        .iter()
        .map(|c| Receiver { name: c.clone() })
        .collect()
}

async fn list_alerts(
    AxState(state): AxState<State>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Vec<GettableAlert>>, Reject> {
    let active = bool_param(&params, "active")?;
    let silenced = bool_param(&params, "silenced")?;
    let mut filter = Vec::new();
    for (_, f) in params.iter().filter(|(k, _)| k == "filter") {
        filter.extend(parse_filter(f).map_err(|e| Reject::BadRequest(format!("filter: {e}")))?);
    }
    let receiver = match params.iter().find(|(k, _)| k == "receiver") {
        Some((_, r)) if !r.is_empty() => Some(
            regex::Regex::new(&format!("^(?:{r})$"))
                .map_err(|e| Reject::BadRequest(format!("receiver: {e}")))?,
        ),
        _ => None,
    };
    let rows = xq::open(&state.db.read, LIST_LIMIT)
        .await
        .map_err(db_down)?;
    let mut conn = state
        .db
        .read
        .acquire()
        .await
        .map_err(|e| db_down(e.into()))?;
    let silences = silences::active_silences(&mut conn)
        .await
        .map_err(db_down)?;
    let channels: Vec<String> = state
        .cfg
        .alert
        .channels
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let mut out = Vec::new();
    for r in rows {
        if !filter.iter().all(|m| m.matches(&r.labels.0)) {
            continue;
        }
        let by: Vec<String> = external::silenced_by(&silences, &r.labels.0)
            .map(|id| id.to_string())
            .collect();
        let is_silenced = r.state == crate::model::AlertState::Suppressed || !by.is_empty();
        if (is_silenced && !silenced) || (!is_silenced && !active) {
            continue;
        }
        let rcv = receivers_of(&channels);
        if let Some(re) = &receiver {
            if !rcv.iter().any(|x| re.is_match(&x.name)) {
                continue;
            }
        }
        out.push(GettableAlert {
            labels: r.labels.0.clone(),
            annotations: r.annotations.0.clone(),
            receivers: rcv,
            fingerprint: r.fingerprint.clone(),
            starts_at: r.starts_at,
            updated_at: r.updated_at,
            ends_at: r.ends_at.unwrap_or(r.updated_at),
            generator_url: r.generator_url.clone(),
            status: AlertStatus {
                state: if is_silenced { "suppressed" } else { "active" }.into(),
                silenced_by: by,
                inhibited_by: Vec::new(),
            },
        });
    }
    Ok(Json(out))
}

async fn list_silences(
    AxState(state): AxState<State>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Vec<GettableSilence>>, Reject> {
    let mut filter = Vec::new();
    for (_, f) in params.iter().filter(|(k, _)| k == "filter") {
        filter.extend(parse_filter(f).map_err(|e| Reject::BadRequest(format!("filter: {e}")))?);
    }
    let rows = xq::silences(&state.db.read, KEEP_EXPIRED_S)
        .await
        .map_err(db_down)?;
    // As Alertmanager: a silence is listed when it has a matcher equal to each filter matcher.
    Ok(Json(
        rows.iter()
            .filter(|s| filter.iter().all(|f| s.matchers.0.contains(f)))
            .map(GettableSilence::of)
            .collect(),
    ))
}

async fn post_silence(
    AxState(state): AxState<State>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Response, Reject> {
    let s: PostableSilence = json_body(&state, &headers, &raw, "postable silence")?;
    if s.matchers.is_empty() {
        return Err(Reject::BadRequest("at least one matcher required".into()));
    }
    let matchers = s
        .matchers
        .iter()
        .map(ApiMatcher::to_matcher)
        .collect::<Result<Vec<_>, _>>()
        .map_err(Reject::BadRequest)?;
    if s.ends_at <= s.starts_at {
        return Err(Reject::BadRequest(
            "start time must be before end time".into(),
        ));
    }
    if s.ends_at <= Utc::now() {
        return Err(Reject::BadRequest("end time can't be in the past".into()));
    }
    if s.created_by.trim().is_empty() {
        return Err(Reject::BadRequest("creator information missing".into()));
    }
    let replaces = match s.id.as_deref().filter(|i| !i.is_empty()) {
        None => None,
        Some(id) => match id.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => return Ok(not_found()),
        },
    };
    let who = format!("{} via {}", s.created_by, client.source(PROTOCOL));
    match create_silence(&state, &s, &matchers, replaces, &who)
        .await
        .map_err(db_down)?
    {
        Some(id) => Ok(Json(json!({ "silenceID": id.to_string() })).into_response()),
        None => Ok(not_found()),
    }
}

/// Stores a posted silence (ending the one it replaces, as Alertmanager's update does) with
/// its audit row. None when the silence to replace does not exist.
async fn create_silence(
    state: &State,
    s: &PostableSilence,
    matchers: &[Matcher],
    replaces: Option<i64>,
    who: &str,
) -> anyhow::Result<Option<i64>> {
    let mut tx = state.db.write.begin().await?;
    if let Some(old) = replaces {
        match xq::silence_live(&mut tx, old).await? {
            None => return Ok(None),
            Some((true,)) => silences::expire_silence(&mut tx, old, who).await?,
            Some((false,)) => {}
        }
    }
    let id = xq::create_silence(
        &mut tx,
        matchers,
        s.starts_at,
        s.ends_at,
        &s.created_by,
        &s.comment,
    )
    .await?;
    q::audit_operator_action(
        &mut tx,
        who,
        None,
        "",
        "silence.create",
        "silence",
        &id.to_string(),
        json!({
            "matchers": matchers.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
            "starts_at": s.starts_at,
            "ends_at": s.ends_at,
            "comment": s.comment,
            "replaces": replaces,
        }),
    )
    .await?;
    // opsdash's own alerts it covers are suppressed at their rule's next tick; external ones
    // at the next sweep.
    rules::evaluate_rules_with_alerts_now(&mut tx, "firing").await?;
    tx.commit().await?;
    Ok(Some(id))
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "silence not found\n").into_response()
}

async fn get_silence(
    AxState(state): AxState<State>,
    Path(id): Path<String>,
) -> Result<Response, Reject> {
    let Ok(id) = id.parse::<i64>() else {
        return Ok(not_found());
    };
    match xq::silence(&state.db.read, id).await.map_err(db_down)? {
        Some(s) => Ok(Json(GettableSilence::of(&s)).into_response()),
        None => Ok(not_found()),
    }
}

async fn delete_silence(
    AxState(state): AxState<State>,
    Extension(client): Extension<Client>,
    Path(id): Path<String>,
) -> Result<Response, Reject> {
    let Ok(id) = id.parse::<i64>() else {
        return Ok(not_found());
    };
    let who = client.source(PROTOCOL);
    if expire(&state, id, &who).await.map_err(db_down)? {
        Ok(StatusCode::OK.into_response())
    } else {
        Ok(not_found())
    }
}

/// Ends silence `id` now, with its audit row; false when it does not exist. An expired one is
/// left as it is (Alertmanager answers 200 for it too).
async fn expire(state: &State, id: i64, who: &str) -> anyhow::Result<bool> {
    let mut tx = state.db.write.begin().await?;
    match xq::silence_live(&mut tx, id).await? {
        None => return Ok(false),
        Some((false,)) => return Ok(true),
        Some((true,)) => {}
    }
    silences::expire_silence(&mut tx, id, who).await?;
    q::audit_operator_action(
        &mut tx,
        who,
        None,
        "",
        "silence.expire",
        "silence",
        &id.to_string(),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// `alertmanagerStatus`: enough for amtool (`config show`, its version check).
async fn status(AxState(state): AxState<State>) -> Json<serde_json::Value> {
    let channels: Vec<String> = state
        .cfg
        .alert
        .channels
        .iter()
        .map(|c| c.name.clone())
        .collect();
    Json(json!({
        "cluster": { "status": "disabled", "peers": [] },
        "versionInfo": {
            "version": env!("CARGO_PKG_VERSION"),
            "revision": "",
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "",
        },
        "config": { "original": config_text(&channels) },
        "uptime": STARTED.get_or_init(Utc::now).to_rfc3339(),
    }))
}

/// The routing as an Alertmanager config would say it: every alert to every channel of
/// opsdash's `[[alert.channel]]` list, grouped by alert name.
fn config_text(channels: &[String]) -> String {
    let names: Vec<String> = receivers_of(channels).into_iter().map(|r| r.name).collect();
    let mut s = String::from(
        "# opsdash: alerts received here go to opsdash's own notification channels\n\
         route:\n",
    );
    s.push_str(&format!("  receiver: {}\n", names[0]));
    s.push_str("  group_by: [alertname]\n");
    if names.len() > 1 {
        s.push_str("  routes:\n");
        for n in &names[1..] {
            s.push_str(&format!("    - receiver: {n}\n      continue: true\n"));
        }
    }
    s.push_str("receivers:\n");
    for n in &names {
        s.push_str(&format!("  - name: {n}\n"));
    }
    s
}

async fn receivers(AxState(state): AxState<State>) -> Json<Vec<Receiver>> {
    let channels: Vec<String> = state
        .cfg
        .alert
        .channels
        .iter()
        .map(|c| c.name.clone())
        .collect();
    Json(receivers_of(&channels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prometheus_alert_decodes_and_go_zero_times_mean_unset() {
        // As Prometheus 2.x's notifier marshals a firing alert.
        let body = r#"[{"labels":{"alertname":"Up","job":"x"},"annotations":{"summary":"s"},
            "startsAt":"2026-12-07T03:00:00.123Z","endsAt":"2026-12-07T03:04:00Z",
            "generatorURL":"http://prom:9090/graph?g0.expr=up"}]"#;
        let a: Vec<PostableAlert> = serde_json::from_str(body).unwrap();
        let r = check(a[0].clone()).unwrap();
        assert_eq!(r.labels["alertname"], "Up");
        assert!(r.starts_at.unwrap() < r.ends_at.unwrap());
        let zero: Vec<PostableAlert> = serde_json::from_str(
            r#"[{"labels":{"a":"b"},"startsAt":"0001-01-01T00:00:00Z","endsAt":"0001-01-01T00:00:00Z"}]"#,
        )
        .unwrap();
        let r = check(zero[0].clone()).unwrap();
        assert_eq!((r.starts_at, r.ends_at), (None, None));
    }

    #[test]
    fn alerts_alertmanager_refuses_are_refused() {
        let bad = |j: &str| check(serde_json::from_str::<PostableAlert>(j).unwrap()).unwrap_err();
        assert!(bad(r#"{"labels":{}}"#).contains("at least one label"));
        assert!(bad(r#"{"labels":{"1a":"b"}}"#).contains("invalid label name"));
        assert!(bad(
            r#"{"labels":{"a":"b"},"startsAt":"2026-01-02T00:00:00Z","endsAt":"2026-01-01T00:00:00Z"}"#
        )
        .contains("before end"));
    }

    #[test]
    fn filters_parse_as_amtool_sends_them() {
        let m = parse_filter("alertname=Up").unwrap();
        assert_eq!(m[0].to_string(), "alertname=Up");
        let m = parse_filter(r#"{job="a,b",instance=~"x.*"}"#).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].value, "a,b");
        assert_eq!(m[1].op, "=~");
        assert!(parse_filter("nonsense").is_err());
    }

    #[test]
    fn matchers_round_trip_between_the_api_and_opsdash() {
        for (re, eq, op) in [
            (false, true, "="),
            (false, false, "!="),
            (true, true, "=~"),
            (true, false, "!~"),
        ] {
            let api = ApiMatcher {
                name: "job".into(),
                value: "x".into(),
                is_regex: re,
                is_equal: eq,
            };
            let m = api.to_matcher().unwrap();
            assert_eq!(m.op, op);
            assert_eq!(ApiMatcher::of(&m), api);
        }
        let m: ApiMatcher =
            serde_json::from_str(r#"{"name":"a","value":"b","isRegex":false}"#).unwrap();
        assert!(m.is_equal, "isEqual defaults to true");
    }
}
