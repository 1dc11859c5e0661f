use chrono::{DateTime, Duration, Utc};

/// The time range shared by every tab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeRange {
    H1,
    H6,
    H24,
    D7,
    D30,
}

impl TimeRange {
    pub const ALL: [TimeRange; 5] = [
        TimeRange::H1,
        TimeRange::H6,
        TimeRange::H24,
        TimeRange::D7,
        TimeRange::D30,
    ];

    pub fn parse(s: &str) -> Option<TimeRange> {
        Some(match s.trim() {
            "1h" => TimeRange::H1,
            "6h" => TimeRange::H6,
            "24h" | "1d" => TimeRange::H24,
            "7d" => TimeRange::D7,
            "30d" => TimeRange::D30,
            _ => return None,
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            TimeRange::H1 => "1h",
            TimeRange::H6 => "6h",
            TimeRange::H24 => "24h",
            TimeRange::D7 => "7d",
            TimeRange::D30 => "30d",
        }
    }

    pub fn duration(self) -> Duration {
        match self {
            TimeRange::H1 => Duration::hours(1),
            TimeRange::H6 => Duration::hours(6),
            TimeRange::H24 => Duration::hours(24),
            TimeRange::D7 => Duration::days(7),
            TimeRange::D30 => Duration::days(30),
        }
    }

    pub fn start(self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.duration()
    }

    /// Width of one chart bucket so a chart over the range has about 60 points.
    pub fn bucket(self) -> Duration {
        match self {
            TimeRange::H1 => Duration::minutes(1),
            TimeRange::H6 => Duration::minutes(5),
            TimeRange::H24 => Duration::minutes(30),
            TimeRange::D7 => Duration::hours(3),
            TimeRange::D30 => Duration::hours(12),
        }
    }

    pub fn next(self) -> TimeRange {
        let i = TimeRange::ALL.iter().position(|r| *r == self).unwrap_or(0);
        TimeRange::ALL[(i + 1) % TimeRange::ALL.len()]
    }
}
