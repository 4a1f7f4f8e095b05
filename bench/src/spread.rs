//! The rounds of a cell summarised (min / median / max), and the verdict on a target that
//! takes their spread into account.

use std::fmt;

/// The smallest, median and largest of a cell's rounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    /// The spread of `values`, or `None` when there are none (or one is not a number).
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() || values.iter().any(|v| v.is_nan()) {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        let s = Spread {
            min: v[0],
            median,
            max: v[n - 1],
        };
        debug_assert!(s.min <= s.median && s.median <= s.max);
        Some(s)
    }

    /// `max - min`: how far apart the rounds were.
    pub fn range(&self) -> f64 {
        self.max - self.min
    }

    /// Every figure multiplied by `k` (rates from counts, MB/s from transactions/s).
    pub fn scaled(&self, k: f64) -> Spread {
        Spread {
            min: self.min * k,
            median: self.median * k,
            max: self.max * k,
        }
    }
}

/// What a target's measurement says, given the noise of the rounds behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The median clears the threshold by more than the spread.
    Met,
    /// The median misses the threshold by more than the spread.
    Missed,
    /// The median is within the spread of the threshold: this run cannot tell.
    WithinNoise,
    /// A figure is missing (the system failed or was not run).
    NotMeasured,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Met => "**met**",
            Verdict::Missed => "**missed**",
            Verdict::WithinNoise => "within noise",
            Verdict::NotMeasured => "not measured",
        })
    }
}

/// Judges "`median` reaches `threshold`" when the figures behind the comparison spread over
/// `noise`: met only when the median clears the threshold by more than the noise, missed only
/// when it misses by more than the noise, otherwise within noise.
pub fn verdict(median: f64, threshold: f64, noise: f64) -> Verdict {
    if median.is_nan() || threshold.is_nan() || noise.is_nan() {
        return Verdict::NotMeasured;
    }
    let noise = noise.max(0.0);
    if median - threshold > noise {
        Verdict::Met
    } else if threshold - median > noise {
        Verdict::Missed
    } else {
        Verdict::WithinNoise
    }
}

/// "`ours` ≥ `factor` × `other`": the threshold is `factor` × the other's median, and the noise
/// is both spreads (ours, and the other's scaled by `factor`), as either may have moved.
pub fn judge_against(ours: Option<Spread>, factor: f64, other: Option<Spread>) -> Verdict {
    match (ours, other) {
        (Some(a), Some(b)) => verdict(a.median, factor * b.median, a.range() + factor * b.range()),
        _ => Verdict::NotMeasured,
    }
}

/// "`ours` ≥ `threshold`" for a fixed threshold: the noise is ours' spread.
pub fn judge_fixed(ours: Option<Spread>, threshold: f64) -> Verdict {
    match ours {
        Some(a) => verdict(a.median, threshold, a.range()),
        None => Verdict::NotMeasured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_odd_and_even_counts() {
        let s = Spread::of(&[3.0, 1.0, 2.0, 10.0, 4.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 3.0, 10.0));
        let s = Spread::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 2.5, 4.0));
        assert_eq!(s.range(), 3.0);
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(Spread::of(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn verdict_needs_more_than_the_noise_either_way() {
        assert_eq!(verdict(110.0, 100.0, 5.0), Verdict::Met);
        assert_eq!(verdict(105.0, 100.0, 5.0), Verdict::WithinNoise);
        assert_eq!(verdict(100.0, 100.0, 0.0), Verdict::WithinNoise);
        assert_eq!(verdict(95.0, 100.0, 5.0), Verdict::WithinNoise);
        assert_eq!(verdict(94.0, 100.0, 5.0), Verdict::Missed);
        assert_eq!(verdict(100.5, 100.0, 0.0), Verdict::Met);
        // A negative noise is a caller's slip, not a licence: treated as none.
        assert_eq!(verdict(99.0, 100.0, -50.0), Verdict::Missed);
        assert_eq!(verdict(f64::NAN, 100.0, 1.0), Verdict::NotMeasured);
    }

    #[test]
    fn judging_against_another_counts_both_spreads() {
        let s = |min, median, max| Some(Spread { min, median, max });
        // 0.9 x 100 = 90; noise = 4 + 0.9 x 10 = 13.
        assert_eq!(
            judge_against(s(102.0, 104.0, 106.0), 0.9, s(95.0, 100.0, 105.0)),
            Verdict::Met
        );
        assert_eq!(
            judge_against(s(100.0, 102.0, 104.0), 0.9, s(95.0, 100.0, 105.0)),
            Verdict::WithinNoise
        );
        assert_eq!(
            judge_against(s(70.0, 72.0, 74.0), 0.9, s(95.0, 100.0, 105.0)),
            Verdict::Missed
        );
        assert_eq!(
            judge_against(None, 0.9, s(1.0, 1.0, 1.0)),
            Verdict::NotMeasured
        );
        assert_eq!(judge_fixed(s(19.0, 21.0, 23.0), 20.0), Verdict::WithinNoise);
        assert_eq!(judge_fixed(s(24.0, 25.0, 26.0), 20.0), Verdict::Met);
        assert_eq!(judge_fixed(None, 20.0), Verdict::NotMeasured);
    }
}
