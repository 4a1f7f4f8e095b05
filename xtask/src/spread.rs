//! The rounds of one measure summarised (min / median / max) and the verdict on a goal judged
//! on every round, not only the medians: the rule both xtask reports (`bench-raft`,
//! `cluster-bench`) use.

/// Min, median and max of one measure over the rounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

/// The spread of `values`; `None` if there are none.
pub fn spread(values: &[f64]) -> Option<Spread> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let (first, last) = (*v.first()?, *v.last()?);
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    };
    Some(Spread {
        min: first,
        median,
        max: last,
    })
}

/// Whether a goal was reached, judged on every round, not only the medians.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    WithinNoise,
}

impl Verdict {
    /// How a report writes it.
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Met => "**met**",
            Verdict::Missed => "**missed**",
            Verdict::WithinNoise => "within noise",
        }
    }
}

/// `ours >= factor × theirs`: met if even our worst round beats `factor` times their best,
/// missed if even our best round falls short of `factor` times their worst.
pub fn at_least(ours: Spread, factor: f64, theirs: Spread) -> Verdict {
    if ours.min >= factor * theirs.max {
        Verdict::Met
    } else if ours.max < factor * theirs.min {
        Verdict::Missed
    } else {
        Verdict::WithinNoise
    }
}

/// `ours < limit`: met if every round is under it, missed if none is.
pub fn below(ours: Spread, limit: f64) -> Verdict {
    if ours.max < limit {
        Verdict::Met
    } else if ours.min >= limit {
        Verdict::Missed
    } else {
        Verdict::WithinNoise
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(min: f64, median: f64, max: f64) -> Spread {
        Spread { min, median, max }
    }

    #[test]
    fn spread_takes_the_middle() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]), Some(s(1.0, 2.0, 3.0)));
        assert_eq!(spread(&[4.0, 1.0]), Some(s(1.0, 2.5, 4.0)));
        assert_eq!(spread(&[]), None);
    }

    #[test]
    fn verdicts_use_every_round() {
        assert_eq!(
            at_least(s(210.0, 220.0, 230.0), 2.0, s(90.0, 100.0, 105.0)),
            Verdict::Met
        );
        assert_eq!(
            at_least(s(150.0, 160.0, 170.0), 2.0, s(90.0, 100.0, 105.0)),
            Verdict::Missed
        );
        assert_eq!(
            at_least(s(190.0, 205.0, 215.0), 2.0, s(90.0, 100.0, 105.0)),
            Verdict::WithinNoise
        );
        assert_eq!(below(s(0.5, 0.6, 0.9), 1.0), Verdict::Met);
        assert_eq!(below(s(1.0, 1.2, 1.5), 1.0), Verdict::Missed);
        assert_eq!(below(s(0.8, 0.9, 1.1), 1.0), Verdict::WithinNoise);
    }
}
