//! Time as the engine sees it: plain numbers handed in by the driver.
//!
//! The engine never reads the clock. Every handler takes `now` as an argument
//! so that simulations can run a whole day in microseconds and replay exactly.

use std::fmt;

/// An instant in UTC, as milliseconds since the Unix epoch.
///
/// Milliseconds are finer than any notification needs and keep arithmetic in
/// integers, so that window overlap is exact and reproducible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn from_unix_ms(unix_ms: i64) -> Self {
        Self(unix_ms)
    }

    pub const fn from_unix_s(unix_s: i64) -> Self {
        Self(unix_s.saturating_mul(1000))
    }

    pub const fn unix_ms(self) -> i64 {
        self.0
    }

    pub const fn plus_ms(self, delta_ms: i64) -> Self {
        Self(self.0.saturating_add(delta_ms))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// A half-open window `[start, end)`. `end == None` means "until cancelled",
/// which validation allows only for sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeWindow {
    pub start: Timestamp,
    pub end: Option<Timestamp>,
}

impl TimeWindow {
    pub const fn new(start: Timestamp, end: Option<Timestamp>) -> Self {
        Self { start, end }
    }

    /// The end as a number, open ends mapped to the largest instant.
    pub fn end_or_max(&self) -> Timestamp {
        self.end.unwrap_or(Timestamp(i64::MAX))
    }

    /// The overlap of two half-open windows, `None` when it is empty.
    ///
    /// `[0, 10)` and `[10, 20)` do not overlap: one patrol leaving a road as
    /// the other arrives is not a conflict in time.
    pub fn overlap(&self, other: &TimeWindow) -> Option<TimeWindow> {
        let start = self.start.max(other.start);
        let end = match (self.end, other.end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (Some(a), None) | (None, Some(a)) => Some(a),
            (None, None) => None,
        };
        match end {
            Some(end) if end <= start => None,
            _ => Some(TimeWindow { start, end }),
        }
    }

    /// Whether the window has ended at `now`.
    pub fn ended_by(&self, now: Timestamp) -> bool {
        self.end.is_some_and(|end| end <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(start: i64, end: Option<i64>) -> TimeWindow {
        TimeWindow::new(Timestamp(start), end.map(Timestamp))
    }

    #[test]
    fn half_open_windows_that_touch_do_not_overlap() {
        assert_eq!(w(0, Some(10)).overlap(&w(10, Some(20))), None);
        assert_eq!(w(10, Some(20)).overlap(&w(0, Some(10))), None);
    }

    #[test]
    fn overlap_is_the_intersection() {
        assert_eq!(w(0, Some(10)).overlap(&w(5, Some(20))), Some(w(5, Some(10))));
        assert_eq!(w(0, None).overlap(&w(5, Some(20))), Some(w(5, Some(20))));
        assert_eq!(w(0, None).overlap(&w(5, None)), Some(w(5, None)));
        assert_eq!(w(30, None).overlap(&w(5, Some(20))), None);
    }

    #[test]
    fn open_end_never_ends() {
        assert!(!w(0, None).ended_by(Timestamp(i64::MAX)));
        assert!(w(0, Some(10)).ended_by(Timestamp(10)));
        assert!(!w(0, Some(10)).ended_by(Timestamp(9)));
    }
}
