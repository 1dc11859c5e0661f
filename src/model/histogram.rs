//! Mergeable latency histogram with fixed log-scale buckets.
//!
//! Buckets grow by a factor of 1.04 from 1 ms to 60 s, with one underflow bucket (below 1 ms, or
//! negative) and one overflow bucket (60 s and above, infinities and NaN). A bucket `[lo, lo*g)`
//! is reported as `2*lo*g/(1+g)`, which is at most `(g-1)/(g+1)` = 1.96% away from any value in
//! it, so every percentile read from a histogram is within 2% of the exact sample it stands for.
//!
//! The same bucketing exists in SQL (`opsdash.latency_bucket`, migrations/0003_perf.sql); both
//! compute `floor(ln(ms) / LN_GROWTH)` with the same literal constant and the same libm, so they
//! agree bit for bit (tests/perf_sql.rs proves it on boundary values).
//!
//! Percentiles use the nearest-rank definition: the `ceil(q*n)`-th smallest sample (at least the
//! first). `exact_percentile` applies the same definition to raw samples.

/// Growth factor between consecutive bucket bounds.
pub const GROWTH: f64 = 1.04;
/// `ln(1.04)`, written out so SQL and Rust divide by the very same double.
pub const LN_GROWTH: f64 = 0.039_220_713_153_281_33;
/// Lower bound of the first regular bucket, in milliseconds.
pub const MIN_MS: f64 = 1.0;
/// Upper bound of the last regular bucket, in milliseconds.
pub const MAX_MS: f64 = 60_000.0;
/// Regular buckets covering `[MIN_MS, MAX_MS)`: `ceil(ln(60000) / ln(1.04))`.
pub const REGULAR_BUCKETS: usize = 281;
/// All buckets: underflow, regular ones, overflow.
pub const BUCKETS: usize = REGULAR_BUCKETS + 2;
/// Index of the underflow bucket.
pub const UNDERFLOW: usize = 0;
/// Index of the overflow bucket.
pub const OVERFLOW: usize = BUCKETS - 1;
/// Worst relative error of a reported value for samples in `[MIN_MS, MAX_MS)`.
pub const MAX_RELATIVE_ERROR: f64 = (GROWTH - 1.0) / (GROWTH + 1.0);

/// The bucket (0-based) a duration in milliseconds falls into.
pub fn bucket_of(ms: f64) -> usize {
    // Same order of tests as the SQL CASE: NaN sorts above everything in Postgres.
    if ms.is_nan() || ms >= MAX_MS {
        return OVERFLOW;
    }
    if ms < MIN_MS {
        return UNDERFLOW;
    }
    let k = (ms.ln() / LN_GROWTH).floor() as usize;
    1 + k.min(REGULAR_BUCKETS - 1)
}

/// `[lo, hi)` of a bucket in milliseconds.
pub fn bucket_bounds(bucket: usize) -> (f64, f64) {
    match bucket {
        UNDERFLOW => (f64::NEG_INFINITY, MIN_MS),
        b if b >= OVERFLOW => (MAX_MS, f64::INFINITY),
        b => {
            let lo = ((b - 1) as f64 * LN_GROWTH).exp();
            (lo, (lo * GROWTH).min(MAX_MS))
        }
    }
}

/// The value reported for samples in a bucket (what a percentile returns).
pub fn bucket_value(bucket: usize) -> f64 {
    match bucket {
        UNDERFLOW => MIN_MS / 2.0,
        b if b >= OVERFLOW => MAX_MS,
        b => {
            let lo = ((b - 1) as f64 * LN_GROWTH).exp();
            2.0 * lo * GROWTH / (1.0 + GROWTH)
        }
    }
}

/// Bucket counts. Shorter vectors mean trailing zeros (the database stores them trimmed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<i64>,
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram::default()
    }

    pub fn from_samples(samples: impl IntoIterator<Item = f64>) -> Histogram {
        let mut h = Histogram::new();
        for s in samples {
            h.record(s);
        }
        h
    }

    /// From counts as stored in `opsdash.rollup_*.hist` (index 0 = underflow). Entries past
    /// `BUCKETS` are folded into the overflow bucket so a malformed row cannot panic us.
    pub fn from_counts<T: Copy + Into<i64>>(counts: &[T]) -> Histogram {
        let mut h = Histogram::new();
        for (i, c) in counts.iter().enumerate() {
            let c: i64 = (*c).into();
            if c != 0 {
                h.add(i.min(OVERFLOW), c.max(0));
            }
        }
        h
    }

    fn add(&mut self, bucket: usize, n: i64) {
        if self.counts.len() <= bucket {
            self.counts.resize(bucket + 1, 0);
        }
        self.counts[bucket] += n;
    }

    pub fn record(&mut self, ms: f64) {
        self.add(bucket_of(ms), 1);
    }

    /// Element-wise sum: the histogram of both sample sets together.
    pub fn merge(&mut self, other: &Histogram) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    pub fn count(&self) -> i64 {
        self.counts.iter().sum()
    }

    /// Counts with trailing zeros trimmed (the canonical form, and what is stored).
    pub fn counts(&self) -> &[i64] {
        let end = self
            .counts
            .iter()
            .rposition(|&c| c != 0)
            .map_or(0, |i| i + 1);
        &self.counts[..end]
    }

    /// Nearest-rank percentile, `q` in `[0, 1]`; `None` when empty.
    pub fn percentile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = nearest_rank(q, n as usize) as i64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_value(i));
            }
        }
        None
    }

    /// Percentile clamped to the observed maximum, which only ever moves it closer to the truth
    /// (the true sample lies between the bucket's bound and the maximum).
    pub fn percentile_clamped(&self, q: f64, max: f64) -> Option<f64> {
        self.percentile(q)
            .map(|p| if max.is_finite() { p.min(max) } else { p })
    }
}

/// The 1-based rank the nearest-rank definition picks among `n` sorted samples.
pub fn nearest_rank(q: f64, n: usize) -> usize {
    let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
    ((q * n as f64).ceil() as usize).clamp(1, n.max(1))
}

/// Nearest-rank percentile of raw samples (sorts a copy).
pub fn exact_percentile(samples: &[f64], q: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    Some(v[nearest_rank(q, v.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn constants_are_consistent() {
        assert_eq!(LN_GROWTH, GROWTH.ln());
        assert_eq!(
            REGULAR_BUCKETS,
            (MAX_MS.ln() / LN_GROWTH).ceil() as usize,
            "regular buckets must reach 60 s"
        );
        const { assert!(MAX_RELATIVE_ERROR <= 0.02) };
    }

    #[test]
    fn edges_land_in_the_right_buckets() {
        assert_eq!(bucket_of(0.0), UNDERFLOW);
        assert_eq!(bucket_of(-5.0), UNDERFLOW);
        assert_eq!(bucket_of(f64::NEG_INFINITY), UNDERFLOW);
        assert_eq!(bucket_of(0.999), UNDERFLOW);
        assert_eq!(bucket_of(1.0), 1);
        assert_eq!(bucket_of(59_999.999), OVERFLOW - 1);
        assert_eq!(bucket_of(60_000.0), OVERFLOW);
        assert_eq!(bucket_of(f64::INFINITY), OVERFLOW);
        assert_eq!(bucket_of(f64::NAN), OVERFLOW);
    }

    #[test]
    fn every_regular_bucket_value_is_within_bound_of_its_range() {
        for b in 1..OVERFLOW {
            let (lo, hi) = bucket_bounds(b);
            let v = bucket_value(b);
            assert!(
                (v - lo).abs() / lo <= MAX_RELATIVE_ERROR + 1e-12,
                "bucket {b}"
            );
            assert!(
                (hi - v).abs() / hi <= MAX_RELATIVE_ERROR + 1e-12,
                "bucket {b}"
            );
        }
    }

    #[test]
    fn empty_histogram_has_no_percentile() {
        assert_eq!(Histogram::new().percentile(0.5), None);
        assert_eq!(exact_percentile(&[], 0.5), None);
    }

    #[test]
    fn malformed_counts_do_not_panic() {
        let h = Histogram::from_counts(&[1i32; BUCKETS + 10]);
        assert_eq!(h.count(), (BUCKETS + 10) as i64);
        assert_eq!(h.counts().len(), BUCKETS);
        let neg = Histogram::from_counts(&[-3i32, 2]);
        assert_eq!(neg.count(), 2);
    }

    fn latency() -> impl Strategy<Value = f64> {
        // Log-uniform over the guaranteed range, where real latencies live.
        (0.0f64..MAX_MS.ln()).prop_map(|l| l.exp().clamp(MIN_MS, MAX_MS * 0.999_999))
    }

    fn any_duration() -> impl Strategy<Value = f64> {
        prop_oneof![
            8 => latency(),
            1 => -10.0f64..1.0,
            1 => MAX_MS..1e7,
        ]
    }

    proptest! {
        #[test]
        fn merge_equals_histogram_of_concatenation(
            a in prop::collection::vec(any_duration(), 0..200),
            b in prop::collection::vec(any_duration(), 0..200),
        ) {
            let mut merged = Histogram::from_samples(a.iter().copied());
            merged.merge(&Histogram::from_samples(b.iter().copied()));
            let all = Histogram::from_samples(a.iter().chain(&b).copied());
            prop_assert_eq!(merged.counts(), all.counts());
        }

        #[test]
        fn merge_is_commutative_and_associative(
            a in prop::collection::vec(any_duration(), 0..100),
            b in prop::collection::vec(any_duration(), 0..100),
            c in prop::collection::vec(any_duration(), 0..100),
        ) {
            let (ha, hb, hc) = (
                Histogram::from_samples(a),
                Histogram::from_samples(b),
                Histogram::from_samples(c),
            );
            let mut ab = ha.clone();
            ab.merge(&hb);
            let mut ba = hb.clone();
            ba.merge(&ha);
            prop_assert_eq!(ab.counts(), ba.counts());

            let mut ab_c = ab.clone();
            ab_c.merge(&hc);
            let mut bc = hb.clone();
            bc.merge(&hc);
            let mut a_bc = ha.clone();
            a_bc.merge(&bc);
            prop_assert_eq!(ab_c.counts(), a_bc.counts());
        }

        #[test]
        fn percentile_within_two_percent_of_exact(
            samples in prop::collection::vec(latency(), 1..500),
            q in 0.0f64..=1.0,
        ) {
            let h = Histogram::from_samples(samples.iter().copied());
            let est = h.percentile(q).unwrap();
            let exact = exact_percentile(&samples, q).unwrap();
            prop_assert!((est - exact).abs() / exact <= 0.02,
                "q={} est={} exact={}", q, est, exact);
            let max = samples.iter().copied().fold(f64::MIN, f64::max);
            let clamped = h.percentile_clamped(q, max).unwrap();
            prop_assert!((clamped - exact).abs() / exact <= 0.02);
        }

        #[test]
        fn percentile_of_merged_parts_within_bound(
            parts in prop::collection::vec(prop::collection::vec(latency(), 1..50), 1..20),
            q in 0.0f64..=1.0,
        ) {
            let mut h = Histogram::new();
            for p in &parts {
                h.merge(&Histogram::from_samples(p.iter().copied()));
            }
            let all: Vec<f64> = parts.concat();
            let exact = exact_percentile(&all, q).unwrap();
            let est = h.percentile(q).unwrap();
            prop_assert!((est - exact).abs() / exact <= 0.02);
        }

        #[test]
        fn counts_round_trip(samples in prop::collection::vec(any_duration(), 0..300)) {
            let h = Histogram::from_samples(samples);
            let back = Histogram::from_counts(h.counts());
            prop_assert_eq!(back.counts(), h.counts());
        }
    }
}
