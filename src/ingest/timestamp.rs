//! Timestamps as loggers write them: RFC 3339 (with `T` or a space, any offset, or none meaning
//! UTC), epoch seconds/milliseconds/microseconds/nanoseconds (numbers or digit strings), the
//! access-log form `10/Oct/2000:13:55:36 -0700`, and RFC 2822. A time written without a zone
//! is read in `ingest.timezone` (UTC unless configured).

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, FixedOffset, Local, NaiveDateTime, TimeZone, Utc};

/// The zone of times written without one (`ingest.timezone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Zone {
    #[default]
    Utc,
    /// The machine's zone (`/etc/localtime`, or `TZ`), daylight saving time included.
    Local,
    Fixed(FixedOffset),
    /// An IANA zone (`Europe/Berlin`), daylight saving time included.
    Named(chrono_tz::Tz),
}

impl Zone {
    /// `UTC`, `local`, or an offset such as `+02:00`, `-0530`.
    pub fn parse(s: &str) -> Result<Zone, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("utc") || t.eq_ignore_ascii_case("z") || t.is_empty() {
            return Ok(Zone::Utc);
        }
        if t.eq_ignore_ascii_case("local") {
            return Ok(Zone::Local);
        }
        if let Ok(tz) = t.parse::<chrono_tz::Tz>() {
            return Ok(Zone::Named(tz));
        }
        let off = t
            .parse::<FixedOffset>()
            .or_else(|_| {
                DateTime::parse_from_str(&format!("2000-01-01 00:00 {t}"), "%Y-%m-%d %H:%M %z")
                    .map(|d| *d.offset())
            })
            .map_err(|_| {
                format!(
                    "unknown time zone {t:?} (UTC, local, an IANA name such as Europe/Berlin, or an offset such as +02:00)"
                )
            })?;
        Ok(Zone::Fixed(off))
    }

    /// `naive` read in this zone. A local time that occurs twice (the hour DST ends) is the
    /// first; one that does not occur (the hour DST starts) is read an hour later.
    pub fn to_utc(self, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self {
            Zone::Utc => Some(Utc.from_utc_datetime(&naive)),
            Zone::Fixed(off) => off
                .from_local_datetime(&naive)
                .earliest()
                .map(|t| t.with_timezone(&Utc)),
            Zone::Named(tz) => tz
                .from_local_datetime(&naive)
                .earliest()
                .or_else(|| {
                    tz.from_local_datetime(&(naive + chrono::Duration::hours(1)))
                        .earliest()
                })
                .map(|t| t.with_timezone(&Utc)),
            Zone::Local => Local
                .from_local_datetime(&naive)
                .earliest()
                .or_else(|| {
                    Local
                        .from_local_datetime(&(naive + chrono::Duration::hours(1)))
                        .earliest()
                })
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    pub fn name(self) -> String {
        match self {
            Zone::Utc => "UTC".into(),
            Zone::Local => "local time".into(),
            Zone::Fixed(off) => format!("UTC{off}"),
            Zone::Named(tz) => tz.name().to_string(),
        }
    }

    /// The calendar year of `t` in this zone (syslog times carry no year).
    pub fn year_of(self, t: DateTime<Utc>) -> i32 {
        use chrono::Datelike;
        match self {
            Zone::Utc => t.year(),
            Zone::Local => t.with_timezone(&Local).year(),
            Zone::Fixed(off) => t.with_timezone(&off).year(),
            Zone::Named(tz) => t.with_timezone(&tz).year(),
        }
    }
}

/// The zone times written without one are read in (`ingest.timezone`), with how many such
/// times were read: one per pipeline, carried in each line's context (`LineContext::zone`), so
/// two pipelines of one process (tests, `opsdash serve` beside an ingest) never share it.
#[derive(Debug, Default)]
pub struct Zoneless {
    zone: Zone,
    read: AtomicU64,
}

/// UTC, for callers without a configured zone (tests, benches, fuzz targets). Its count is
/// shared by all of them and means nothing.
pub static UTC: Zoneless = Zoneless::new(Zone::Utc);

impl Zoneless {
    pub const fn new(zone: Zone) -> Zoneless {
        Zoneless {
            zone,
            read: AtomicU64::new(0),
        }
    }

    pub fn zone(&self) -> Zone {
        self.zone
    }

    /// How many times without a zone were read in this zone so far.
    pub fn count(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// Counts `n` times read without a zone elsewhere (see `parse_zoned`).
    pub fn add(&self, n: u64) {
        if n > 0 {
            self.read.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// A time written without a zone, read in this zone (and counted).
    pub fn to_utc(&self, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
        self.read.fetch_add(1, Ordering::Relaxed);
        in_range(self.zone.to_utc(naive)?)
    }
}

/// Years we store. PostgreSQL accepts more, but anything outside is a broken clock or a broken
/// parser upstream, better reported than stored.
const MIN_YEAR: i32 = 1;
const MAX_YEAR: i32 = 9999;

fn in_range(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    use chrono::Datelike;
    (MIN_YEAR..=MAX_YEAR).contains(&t.year()).then_some(t)
}

/// Epoch value in seconds, milliseconds, microseconds or nanoseconds, told apart by magnitude
/// (1e11 seconds is the year 5138, so larger numbers are finer units).
pub fn from_epoch(n: f64) -> Option<DateTime<Utc>> {
    if !n.is_finite() {
        return None;
    }
    let a = n.abs();
    let micros = if a < 1e11 {
        n * 1e6
    } else if a < 1e14 {
        n * 1e3
    } else if a < 1e17 {
        n
    } else {
        n / 1e3
    };
    if micros.abs() > 9.2e18 {
        return None;
    }
    in_range(DateTime::<Utc>::from_timestamp_micros(
        micros.round() as i64
    )?)
}

/// Parses a timestamp string (one without a zone read in `zone`'s); None when it is not one we
/// understand.
pub fn parse(s: &str, zone: &Zoneless) -> Option<DateTime<Utc>> {
    let (t, zoneless) = parse_zoned(s, zone.zone)?;
    zone.add(u64::from(zoneless));
    Some(t)
}

/// `parse` with the zone by value; the bool says the time was written without a zone.
pub fn parse_zoned(s: &str, zone: Zone) -> Option<(DateTime<Utc>, bool)> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return in_range(t.with_timezone(&Utc)).map(|t| (t, false));
    }
    if let Some(r) = common_shape(s.as_bytes(), zone) {
        return Some(r);
    }
    general(s, zone)
}

/// Exactly `n` ASCII digits at `i`.
fn digits(b: &[u8], i: usize, n: usize) -> Option<u32> {
    let d = b.get(i..i + n)?;
    d.iter().try_fold(0u32, |v, c| {
        c.is_ascii_digit().then(|| v * 10 + u32::from(c - b'0'))
    })
}

/// `±HHMM` at `i`, the whole rest of `b`: the offset in seconds east.
fn offset_hhmm(b: &[u8], i: usize) -> Option<i32> {
    let sign = match b.get(i)? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = (digits(b, i + 1, 2)?, digits(b, i + 3, 2)?);
    (b.len() == i + 5 && h <= 23 && m <= 59).then(|| sign * (h as i32 * 3600 + m as i32 * 60))
}

/// The shapes most logs write, read without chrono's format strings (`general` tries them one
/// by one, several times slower, and this runs for most lines): `YYYY-MM-DD[T ]HH:MM:SS`, an
/// optional `.` or `,` fraction of 1 to 9 digits, then nothing (the configured zone), ` UTC`,
/// `Z` or (after a `.` fraction or none) `±HHMM`; and the access-log `DD/Mon/YYYY:HH:MM:SS ±HHMM`. None for anything else,
/// out-of-range fields included: `general` then decides, so the results are `general`'s (a test
/// holds the two to that).
fn common_shape(b: &[u8], zone: Zone) -> Option<(DateTime<Utc>, bool)> {
    use chrono::NaiveDate;
    let at = |i: usize| b.get(i).copied();
    let (date, time_at) = if at(4) == Some(b'-') {
        let (y, mo, d) = (digits(b, 0, 4)?, digits(b, 5, 2)?, digits(b, 8, 2)?);
        if at(7) != Some(b'-') || !matches!(at(10), Some(b'T' | b' ')) {
            return None;
        }
        (NaiveDate::from_ymd_opt(y as i32, mo, d)?, 11)
    } else if at(2) == Some(b'/') {
        let d = digits(b, 0, 2)?;
        let name = b.get(3..6)?;
        const MONTHS: [&[u8; 3]; 12] = [
            b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
            b"dec",
        ];
        let mo = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(name))? as u32 + 1;
        let y = digits(b, 7, 4)?;
        if at(6) != Some(b'/') || at(11) != Some(b':') {
            return None;
        }
        (NaiveDate::from_ymd_opt(y as i32, mo, d)?, 12)
    } else {
        return None;
    };
    let i = time_at;
    let (h, m, sec) = (digits(b, i, 2)?, digits(b, i + 3, 2)?, digits(b, i + 6, 2)?);
    if at(i + 2) != Some(b':') || at(i + 5) != Some(b':') || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    let mut end = i + 8;
    let mut nanos = 0u32;
    let comma = at(end) == Some(b',');
    if time_at == 11 && matches!(at(end), Some(b'.' | b',')) {
        let start = end + 1;
        end = start;
        while at(end).is_some_and(|c| c.is_ascii_digit()) {
            end += 1;
        }
        let n = end - start;
        if !(1..=9).contains(&n) {
            return None;
        }
        nanos = digits(b, start, n)? * 10u32.pow(9 - n as u32);
    }
    let naive = date.and_hms_nano_opt(h, m, sec, nanos)?;
    let rest = &b[end..];
    if time_at == 12 {
        // The access-log form always has its offset after a space.
        let off = (rest.first() == Some(&b' ')).then(|| offset_hhmm(b, end + 1))??;
        let t = naive.and_utc() - chrono::Duration::seconds(i64::from(off));
        return in_range(t).map(|t| (t, false));
    }
    match rest {
        [] => in_range(zone.to_utc(naive)?).map(|t| (t, true)),
        b" UTC" | b"Z" => in_range(naive.and_utc()).map(|t| (t, false)),
        // Python's `,fraction` is only read without an offset.
        _ if comma => None,
        _ => {
            let off = offset_hhmm(b, end)?;
            let t = naive.and_utc() - chrono::Duration::seconds(i64::from(off));
            in_range(t).map(|t| (t, false))
        }
    }
}

/// Every other form, with chrono's parsers (see `parse_zoned`).
fn general(s: &str, zone: Zone) -> Option<(DateTime<Utc>, bool)> {
    let b = s.as_bytes();
    if b[0].is_ascii_digit() || b[0] == b'-' {
        if let Ok(n) = s.parse::<f64>() {
            return from_epoch(n).map(|t| (t, false));
        }
    }
    const WITH_OFFSET: &[&str] = &[
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f %z",
        "%d/%b/%Y:%H:%M:%S %z",
    ];
    for f in WITH_OFFSET {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return in_range(t.with_timezone(&Utc)).map(|t| (t, false));
        }
    }
    // Python's logging writes "2024-03-01 12:00:00,250": a comma before the fraction.
    let comma_fixed;
    let s = if s.len() > 20 && s.as_bytes()[19] == b',' && s.is_char_boundary(19) {
        comma_fixed = format!("{}.{}", &s[..19], &s[20..]);
        comma_fixed.as_str()
    } else {
        s
    };
    let utc = s.strip_suffix(" UTC").or_else(|| s.strip_suffix('Z'));
    let naive = utc.unwrap_or(s);
    const NAIVE: &[&str] = &[
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y/%m/%d %H:%M:%S%.f",
        "%d/%b/%Y:%H:%M:%S",
    ];
    for f in NAIVE {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, f) {
            return match utc {
                Some(_) => in_range(Utc.from_utc_datetime(&t)).map(|t| (t, false)),
                None => in_range(zone.to_utc(t)?).map(|t| (t, true)),
            };
        }
    }
    if let Ok(t) = DateTime::parse_from_rfc2822(s) {
        return in_range(t.with_timezone(&Utc)).map(|t| (t, false));
    }
    None
}

/// Formats `t` the way COPY's text format reads a timestamptz, without chrono's formatting
/// machinery (this runs once per row on the hot path).
pub fn format_copy(t: DateTime<Utc>, out: &mut [u8; 32]) -> &str {
    use chrono::{Datelike, Timelike};
    fn put(out: &mut [u8], at: usize, mut v: u32, width: usize) {
        for i in (0..width).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    let year = t.year().clamp(0, 9999) as u32;
    put(out, 0, year, 4);
    out[4] = b'-';
    put(out, 5, t.month(), 2);
    out[7] = b'-';
    put(out, 8, t.day(), 2);
    out[10] = b' ';
    put(out, 11, t.hour(), 2);
    out[13] = b':';
    put(out, 14, t.minute(), 2);
    out[16] = b':';
    // Leap seconds show up as nanosecond values >= 1e9; fold them into the last microsecond.
    put(out, 17, t.second(), 2);
    out[19] = b'.';
    put(out, 20, (t.nanosecond() / 1000).min(999_999), 6);
    out[26] = b'+';
    out[27] = b'0';
    out[28] = b'0';
    std::str::from_utf8(&out[..29]).unwrap_or("1970-01-01 00:00:00+00")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(s: &str) -> String {
        parse(s, &UTC)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_else(|| "none".into())
    }

    #[test]
    fn common_forms() {
        assert_eq!(iso("2024-03-01T12:00:00Z"), "2024-03-01T12:00:00.000Z");
        assert_eq!(
            iso("2024-03-01T12:00:00.5+02:00"),
            "2024-03-01T10:00:00.500Z"
        );
        assert_eq!(iso("2024-03-01 12:00:00.250"), "2024-03-01T12:00:00.250Z");
        assert_eq!(iso("2024-03-01 12:00:00,250"), "2024-03-01T12:00:00.250Z");
        assert_eq!(iso("2024-03-01 12:00:00 UTC"), "2024-03-01T12:00:00.000Z");
        assert_eq!(
            iso("10/Oct/2000:13:55:36 -0700"),
            "2000-10-10T20:55:36.000Z"
        );
        assert_eq!(iso("1700000000"), "2023-11-14T22:13:20.000Z");
        assert_eq!(iso("1700000000123"), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso("1700000000.5"), "2023-11-14T22:13:20.500Z");
        assert_eq!(iso("0001-01-01T00:00:00Z"), "0001-01-01T00:00:00.000Z");
        assert_eq!(iso("9999-12-31T23:59:59Z"), "9999-12-31T23:59:59.000Z");
        assert_eq!(iso("yesterday"), "none");
        assert_eq!(iso("2024-13-01T00:00:00Z"), "none");
        assert_eq!(iso(""), "none");
    }

    #[test]
    fn zones_of_times_without_one() {
        let naive =
            NaiveDateTime::parse_from_str("2024-07-01 12:00:00", "%Y-%m-%d %H:%M:%S").unwrap();
        let at = |z: &str| Zone::parse(z).unwrap().to_utc(naive).unwrap().to_rfc3339();
        assert_eq!(at("UTC"), "2024-07-01T12:00:00+00:00");
        assert_eq!(at("+02:00"), "2024-07-01T10:00:00+00:00");
        assert_eq!(at("-0530"), "2024-07-01T17:30:00+00:00");
        assert!(Zone::parse("Mars/Olympus").is_err());
        assert_eq!(Zone::parse("+02:00").unwrap().name(), "UTC+02:00");
        assert!(Zone::parse("local").unwrap().to_utc(naive).is_some());
    }

    proptest::proptest! {
        /// The common shapes read by hand give what chrono's formats give (or leave the line
        /// to them), whatever the field values, separators and tails.
        #[test]
        fn common_shapes_read_as_the_general_path_does(
            y in 0u32..10000, mo in 0u32..14, d in 0u32..33, h in 0u32..26, mi in 0u32..62,
            sec in 0u32..62, frac in "[0-9]{0,11}", sep in "[T t_]", dot in "[.,:]",
            tail in proptest::sample::select(vec!["", " UTC", "Z", "+0200", "-0530", "+2400",
                "+02:00", " +0000", "x", " utc"]),
            access in proptest::bool::ANY, month in "[A-Za-z]{3}", zone in 0usize..3,
        ) {
            let s = if access {
                format!("{d:02}/{month}/{y:04}:{h:02}:{mi:02}:{sec:02}{tail}")
            } else if frac.is_empty() {
                format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{sec:02}{tail}")
            } else {
                format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{sec:02}{dot}{frac}{tail}")
            };
            let zone = [Zone::Utc, Zone::parse("+03:00").unwrap(), Zone::parse("Europe/Berlin").unwrap()][zone];
            if let Some(fast) = common_shape(s.as_bytes(), zone) {
                proptest::prop_assert_eq!(Some(fast), general(&s, zone), "{}", s);
            }
        }
    }

    #[test]
    fn common_shapes_are_read_by_hand() {
        for s in [
            "2024-03-01 12:00:00.250",
            "2024-03-01 12:00:00,250",
            "2024-03-01T12:00:00.123456789",
            "2026-12-07 01:13:35.920 UTC",
            "2024-03-01T12:00:00.000+0000",
            "10/Oct/2000:13:55:36 -0700",
        ] {
            let fast = common_shape(s.as_bytes(), Zone::Utc);
            assert!(fast.is_some(), "{s}");
            assert_eq!(fast, general(s, Zone::Utc), "{s}");
        }
    }

    #[test]
    fn epoch_magnitudes() {
        let s = from_epoch(1_700_000_000.0).unwrap();
        assert_eq!(from_epoch(1_700_000_000_000.0), Some(s));
        assert_eq!(from_epoch(1_700_000_000_000_000.0), Some(s));
        assert_eq!(from_epoch(1_700_000_000_000_000_000.0), Some(s));
        assert_eq!(from_epoch(f64::NAN), None);
    }

    #[test]
    fn copy_format() {
        let mut buf = [0u8; 32];
        let t = parse("0001-02-03T04:05:06.789012Z", &UTC).unwrap();
        assert_eq!(format_copy(t, &mut buf), "0001-02-03 04:05:06.789012+00");
        let t = parse("9999-12-31T23:59:59Z", &UTC).unwrap();
        assert_eq!(format_copy(t, &mut buf), "9999-12-31 23:59:59.000000+00");
    }
}
