//! Time on the dashboard: the preset ranges every tab shares, and reading the absolute times
//! people type (`:goto 2026-12-01 14:00`, `since:2026-11-21T10:00`). Times without a zone are
//! UTC, as everywhere on the dashboard.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// An absolute time: RFC 3339 (`2026-12-01T14:00:00+01:00`), or without a zone (UTC)
/// `2026-12-01T14:00[:00[.fff]]`, `2026-12-01 14:00[:00]`, `2026-12-01`.
pub fn parse_instant(v: &str) -> Option<DateTime<Utc>> {
    let v = v.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, fmt) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Utc.from_utc_datetime(&t))
}

/// Where `:goto WHEN` jumps: an absolute time (`parse_instant`), a time of day (`14:00`,
/// `14:00:30`: the last such moment at or before `now`, so `:goto 23:00` just after midnight
/// is last night), or a duration ago (`2h`, `3d 4h`). One clear line when it is none of them.
pub fn parse_goto(v: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let v = v.trim();
    if let Some(t) = parse_instant(v) {
        return Ok(t);
    }
    let time_of_day =
        NaiveTime::parse_from_str(v, "%H:%M:%S").or_else(|_| NaiveTime::parse_from_str(v, "%H:%M"));
    if let Ok(t) = time_of_day {
        let today = Utc.from_utc_datetime(&now.date_naive().and_time(t));
        return Ok(if today > now {
            today - Duration::days(1)
        } else {
            today
        });
    }
    if let Ok(d) = humantime::parse_duration(v) {
        if let Some(t) = Duration::from_std(d)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
        {
            return Ok(t);
        }
    }
    Err(format!(
        "cannot read the time {v:?}: write 2026-12-01 14:00 (UTC), 2026-12-01T14:00:00+01:00, \
         14:00 (today) or 2h (ago)"
    ))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn goto_reads_absolute_times_times_of_day_and_durations() {
        let now = at("2026-12-07T01:30:00Z");
        assert_eq!(
            parse_goto("2026-12-01 14:00", now),
            Ok(at("2026-12-01T14:00:00Z"))
        );
        assert_eq!(
            parse_goto("2026-12-01T14:00:00+01:00", now),
            Ok(at("2026-12-01T13:00:00Z"))
        );
        assert_eq!(
            parse_goto("2026-12-01", now),
            Ok(at("2026-12-01T00:00:00Z"))
        );
        assert_eq!(
            parse_goto("2026-12-01 14:00:05.25", now),
            Ok(at("2026-12-01T14:00:05.25Z"))
        );
        assert_eq!(parse_goto("01:00", now), Ok(at("2026-12-07T01:00:00Z")));
        // Later than now today: yesterday's.
        assert_eq!(parse_goto("23:00", now), Ok(at("2026-12-06T23:00:00Z")));
        assert_eq!(parse_goto("2h", now), Ok(at("2026-12-06T23:30:00Z")));
        let e = parse_goto("yesterday-ish", now).unwrap_err();
        assert!(
            e.contains("2026-12-01 14:00") && e.lines().count() == 1,
            "{e}"
        );
    }
}
