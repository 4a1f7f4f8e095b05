use std::fmt;

/// Log sequence number: the position of a frame in the log.
///
/// Every frame takes the next LSN, so LSNs are dense across the whole log and across segments;
/// a committed transaction is identified by the LSN of the frame that commits it.
/// [`Lsn::ZERO`] means "nothing yet" and is never assigned to a frame.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Lsn(pub u64);

impl Lsn {
    /// No frame: the LSN before the first one.
    pub const ZERO: Lsn = Lsn(0);
    /// The first LSN a new log assigns.
    pub const FIRST: Lsn = Lsn(1);

    /// The LSN after this one.
    #[must_use]
    pub const fn next(self) -> Lsn {
        Lsn(self.0.wrapping_add(1))
    }

    /// The LSN before this one, saturating at [`Lsn::ZERO`].
    #[must_use]
    pub const fn prev(self) -> Lsn {
        Lsn(self.0.saturating_sub(1))
    }

    /// The raw value.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Delegate so width, fill and alignment flags apply.
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<u64> for Lsn {
    fn from(v: u64) -> Self {
        Lsn(v)
    }
}

/// Sequence number of a segment file; the first segment of a log is 1.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct SegmentSeq(pub u64);

impl SegmentSeq {
    /// The first segment of a log.
    pub const FIRST: SegmentSeq = SegmentSeq(1);

    /// The sequence number after this one.
    #[must_use]
    pub const fn next(self) -> SegmentSeq {
        SegmentSeq(self.0.wrapping_add(1))
    }
}

impl fmt::Display for SegmentSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn lsn_orders_and_displays() {
        assert!(Lsn::ZERO < Lsn::FIRST);
        assert_eq!(Lsn(41).next(), Lsn(42));
        assert_eq!(Lsn::ZERO.prev(), Lsn::ZERO);
        assert_eq!(Lsn(9).to_string(), "9");
        assert_eq!(SegmentSeq(3).next().to_string(), "4");
        assert_eq!(format!("{:>4}|{:<3}|", Lsn(7), SegmentSeq(2)), "   7|2  |");
    }
}
