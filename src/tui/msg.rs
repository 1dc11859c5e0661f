//! The TUI's messages, in one place that the shell (`app`), the main loop (`mod.rs`), the query
//! runner and the tabs all import, so none of them imports another for its vocabulary: the
//! events that reach `update`, the effects it returns, cross-tab jumps, the `Tab` names, query
//! requests and their typed results (one enum per owner, one variant per panel, each holding
//! the panel's `Result`; a tab matches on the variant, never on a name or a downcast).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc::UnboundedSender;

use crate::model::TimeRange;
use crate::query::alert_history::AlertHistory;
use crate::query::alert_metrics::Sample;
use crate::query::alerts::{AlertRow, HistoryRow};
use crate::query::audit::{AuditEvent, MassDelete};
use crate::query::error_groups::ErrorGroup;
use crate::query::health::{DbHealth, IntegrationRow, JobRow, ServiceRow};
use crate::query::histogram::VolumeBucket;
use crate::query::history::{HeaderCount, Loaded};
use crate::query::kpi::{
    ActiveAlert, CustomRows, Daily, FailingEndpoint, Ingest, Latency, StatusCounts, Traffic, Users,
};
use crate::query::logs::{LogLine, LogStats};
use crate::query::outbox::AttemptRow;
use crate::query::perf::{
    EndpointKey, EndpointStat, HeatCell, LatencyPoint, Regression, SlowQuery, SlowRequest,
};
use crate::query::retention::RetentionStatus;
use crate::query::rules::Rule;
use crate::query::silences::SilenceRow;
use crate::query::status::HeaderStatus;
use crate::query::trace::TraceItem;

/// The five tabs, numbered as in the tab bar (numbers are fixed even when a tab is absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tab {
    Kpi,
    Logs,
    Alerts,
    Perf,
    Health,
}

impl Tab {
    pub const ALL: [Tab; 5] = [Tab::Kpi, Tab::Logs, Tab::Alerts, Tab::Perf, Tab::Health];

    pub fn number(self) -> u8 {
        match self {
            Tab::Kpi => 1,
            Tab::Logs => 2,
            Tab::Alerts => 3,
            Tab::Perf => 4,
            Tab::Health => 5,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Tab::Kpi => "KPI",
            Tab::Logs => "Logs",
            Tab::Alerts => "Alerts",
            Tab::Perf => "Performance",
            Tab::Health => "Health",
        }
    }

    /// Names accepted by `:tab NAME` (and `:NAME`).
    pub fn from_name(s: &str) -> Option<Tab> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "1" | "kpi" | "kpis" => Tab::Kpi,
            "2" | "logs" | "log" => Tab::Logs,
            "3" | "alerts" | "alert" => Tab::Alerts,
            "4" | "perf" | "performance" => Tab::Perf,
            "5" | "health" => Tab::Health,
            _ => return None,
        })
    }
}

/// What reaches `update`: one channel merges them all (see `event` for the producers).
// A query result is the large variant; each event moves once, from its producer to `update`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Event {
    /// Key, mouse, resize, paste.
    Input(ratatui::crossterm::event::Event),
    /// The terminal input stream failed or ended: nothing more will come from the keyboard.
    InputClosed(String),
    /// Once a second: the clock, periodic refreshes.
    Tick(DateTime<Utc>),
    /// Result of the database ping: round-trip time or the error.
    Ping(Result<Duration, String>),
    /// A query finished (already filtered for staleness by the runner).
    Query(QueryDone),
    /// A tab's background source (the live tail) has news after a quiet spell: the tab reads
    /// it (`TabView::on_wake`).
    Wake(Tab),
    /// SIGTERM / SIGHUP: leave cleanly.
    Signal(&'static str),
}

pub type Sender = UnboundedSender<Event>;

/// What the main loop must do after an update.
#[derive(Debug)]
pub enum Effect {
    Query(QueryRequest),
    /// Clear the terminal and repaint everything (Ctrl-L, after garbage on the line).
    ClearScreen,
    /// A status-bar message from a tab (applied by `update`, never reaches the main loop).
    Say {
        text: String,
        error: bool,
    },
    /// Put this text on the clipboard (OSC 52, written by the main loop between frames).
    Copy(String),
    /// Switch to another tab and show it something (an alert's log lines, a request's trace).
    /// Applied by `update` like `Say`; never reaches the main loop.
    Jump(Jump),
    Quit,
}

/// A cross-tab jump: the target tab takes `filter` as if typed on `/` and Enter (and `trace`,
/// if set, opens that trace), the shared time range becomes `range` when given, and `note`
/// goes to the status bar.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Jump {
    pub tab: Option<Tab>,
    pub filter: String,
    pub trace: Option<String>,
    pub range: Option<TimeRange>,
    pub note: String,
}

/// Error text for a one-line status bar (a query's error, the ping's).
pub fn one_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    // sqlx prefixes every server error with this; the server's message is what matters.
    let line = line.replace("error returned from database: ", "");
    crate::sanitize::sanitize(&line).into_owned()
}

/// Who asked: the shell (header data) or a tab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    Shell,
    Tab(Tab),
}

/// A panel's outcome: its data, or a one-line error (including "timed out").
pub type Res<T> = Result<T, String>;

type DataFuture = Pin<Box<dyn Future<Output = Data> + Send>>;

/// One query to run for one panel. `panel` is only the runner's key for "one in flight per
/// panel, newest wins"; the result finds its way by its type (`Data`).
pub struct QueryRequest {
    pub owner: Owner,
    pub panel: &'static str,
    run: Box<dyn FnOnce(Duration) -> DataFuture + Send>,
}

impl QueryRequest {
    /// A typed query: `wrap` is the result variant of the owner's enum that carries it back
    /// (`KpiData::Traffic`), so the owner is the enum's and the tab matches the variant.
    pub fn new<T, D, F>(panel: &'static str, fut: F, wrap: fn(Res<T>) -> D) -> QueryRequest
    where
        T: Send + 'static,
        D: Results + 'static,
        F: Future<Output = anyhow::Result<T>> + Send + 'static,
    {
        QueryRequest {
            owner: D::OWNER,
            panel,
            run: Box::new(move |timeout| {
                Box::pin(async move {
                    // Dropping the future on timeout drops its connection too, so a half-open
                    // connection cannot hang this panel forever.
                    let res = match tokio::time::timeout(timeout, fut).await {
                        Ok(Ok(v)) => Ok(v),
                        Ok(Err(e)) => Err(one_line(&format!("{e:#}"))),
                        Err(_) => Err(format!("timed out after {:.1} s", timeout.as_secs_f64())),
                    };
                    wrap(res).into()
                })
            }),
        }
    }

    /// The query under `timeout`, to await: its typed result, an error or a timeout.
    pub fn run(self, timeout: Duration) -> (Owner, &'static str, DataFuture) {
        (self.owner, self.panel, (self.run)(timeout))
    }
}

impl std::fmt::Debug for QueryRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryRequest")
            .field("owner", &self.owner)
            .field("panel", &self.panel)
            .finish()
    }
}

/// A finished query.
pub struct QueryDone {
    pub owner: Owner,
    pub panel: &'static str,
    pub generation: u64,
    pub data: Data,
}

impl std::fmt::Debug for QueryDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryDone")
            .field("owner", &self.owner)
            .field("panel", &self.panel)
            .field("ok", &self.data.error().is_none())
            .finish()
    }
}

/// A result enum of one owner: which owner its queries are booked under.
pub trait Results: Into<Data> {
    const OWNER: Owner;
}

/// Every query result, by owner.
// Results differ in size (the database health is large); each is moved once, from its query
// task to its tab, so boxing them would only add an allocation per result.
#[allow(clippy::large_enum_variant)]
pub enum Data {
    Shell(ShellData),
    Kpi(KpiData),
    Logs(LogsData),
    Alerts(AlertsData),
    Perf(PerfData),
    Health(HealthData),
}

impl Data {
    /// The error of a failed query, whichever panel it was for.
    pub fn error(&self) -> Option<&str> {
        match self {
            Data::Shell(d) => d.error(),
            Data::Kpi(d) => d.error(),
            Data::Logs(d) => d.error(),
            Data::Alerts(d) => d.error(),
            Data::Perf(d) => d.error(),
            Data::Health(d) => d.error(),
        }
    }
}

/// Declares one owner's result enum: each variant holds `Res<its type>`.
macro_rules! results {
    ($(#[$m:meta])* $name:ident => $data:ident, $owner:expr, {
        $($(#[$vm:meta])* $var:ident($ty:ty),)*
    }) => {
        $(#[$m])*
        #[allow(clippy::large_enum_variant)]
        pub enum $name {
            $($(#[$vm])* $var(Res<$ty>),)*
        }

        impl $name {
            pub fn error(&self) -> Option<&str> {
                match self {
                    $($name::$var(r) => r.as_ref().err().map(String::as_str),)*
                }
            }
        }

        impl From<$name> for Data {
            fn from(d: $name) -> Data {
                Data::$data(d)
            }
        }

        impl Results for $name {
            const OWNER: Owner = $owner;
        }
    };
}

results!(
    /// The header's data.
    ShellData => Shell, Owner::Shell, {
        Header(HeaderStatus),
    }
);

/// The result of one custom KPI widget.
pub type WidgetResult = Result<WidgetData, String>;

#[derive(Debug, Clone)]
pub enum WidgetData {
    Rows(CustomRows),
    Alerts(Vec<ActiveAlert>),
}

results!(
    /// The KPI tab's panels.
    KpiData => Kpi, Owner::Tab(Tab::Kpi), {
        Traffic(Traffic),
        Latency(Latency),
        Daily(Daily),
        Users(Users),
        Status(StatusCounts),
        Ingest(Ingest),
        Top(Vec<FailingEndpoint>),
        Widgets(Vec<WidgetResult>),
    }
);

results!(
    /// The Logs tab's panels.
    LogsData => Logs, Owner::Tab(Tab::Logs), {
        Stats(LogStats),
        /// The whole selected line (None: retention dropped it).
        Detail(Option<LogLine>),
        Trace(Vec<TraceItem>),
        Groups(Vec<ErrorGroup>),
        Audit(Vec<AuditEvent>),
        Mass(Vec<MassDelete>),
        /// The next page of the audit trail (older rows).
        AuditMore(Vec<AuditEvent>),
        /// An error group after a triage key.
        Transition(ErrorGroup),
        /// The header's count of what the list's range and filter hold.
        Count(HeaderCount),
        /// Loads of the list from history: the newest or oldest lines of the range, the lines
        /// around an instant, a page before or after the loaded lines.
        Newest(Loaded),
        Oldest(Loaded),
        Around(Loaded),
        Older(Loaded),
        Newer(Loaded),
        /// The volume histogram's buckets.
        Volume(Vec<VolumeBucket>),
    }
);

/// Everything the Alerts tab's detail pane shows about one alert.
#[derive(Debug, Clone)]
pub struct AlertDetail {
    pub alert: AlertRow,
    pub rule: Option<Rule>,
    pub history: Vec<HistoryRow>,
    pub attempts: Vec<AttemptRow>,
    pub samples: Vec<(DateTime<Utc>, f64)>,
}

results!(
    /// The Alerts tab's panels.
    AlertsData => Alerts, Owner::Tab(Tab::Alerts), {
        Alerts(Vec<AlertRow>),
        Rules(Vec<Rule>),
        Silences(Vec<SilenceRow>),
        Detail(AlertDetail),
        /// A rule's measures over the recent past, and whether each would fire.
        Preview(Vec<(Sample, bool)>),
        /// An operator action's one-line outcome.
        Action(String),
        /// How many open alerts the silence editor's matchers (the line it was asked for) match.
        SilencePreview((String, usize)),
        /// The history view: past alerts and the rules' MTTA/MTTR.
        History(AlertHistory),
        /// One alert's state transitions, for the history view.
        Timeline((i64, Vec<HistoryRow>)),
    }
);

/// Request counts per endpoint and step, for the sparklines.
pub type Sparks = Vec<(EndpointKey, DateTime<Utc>, i64)>;

results!(
    /// The Performance tab's panels.
    PerfData => Perf, Owner::Tab(Tab::Perf), {
        Stats(Vec<EndpointStat>),
        Regressions(Vec<Regression>),
        Sparks(Sparks),
        Heat(Vec<HeatCell>),
        Series((EndpointKey, Vec<LatencyPoint>)),
        SlowRequests(Vec<SlowRequest>),
        SlowQueries(Vec<SlowQuery>),
        Drill((EndpointKey, Vec<SlowRequest>)),
        Exact((EndpointKey, Option<EndpointStat>)),
    }
);

results!(
    /// The Health tab's panels.
    HealthData => Health, Owner::Tab(Tab::Health), {
        Services(Vec<ServiceRow>),
        Integrations(Vec<IntegrationRow>),
        Database(DbHealth),
        Workers(Vec<JobRow>),
        Retention(Vec<RetentionStatus>),
    }
);
