//! [`Times`]: how often a stub must be called, written as wiremock-rs writes it.

use std::ops::{Range, RangeFrom, RangeInclusive, RangeToInclusive};

use serde::{Deserialize, Serialize};

/// How often a stub must be called. Anything [`Stub::expect`](crate::Stub::expect) takes turns
/// into one: a count, or a range of counts.
///
/// ```
/// use drydock_stub::Times;
///
/// assert_eq!(Times::from(2), Times::Exactly(2));
/// assert_eq!(Times::from(1..=3), Times::Between(1, 3));
/// assert_eq!(Times::from(2..), Times::AtLeast(2));
/// assert_eq!(Times::from(..=1), Times::AtMost(1));
/// assert!(Times::from(1..3).admits(2) && !Times::from(1..3).admits(3));
/// assert!(!Times::NEVER.admits(1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Times {
    /// Exactly this many calls; `Exactly(0)` is "never".
    Exactly(u64),
    /// This many or more.
    AtLeast(u64),
    /// This many or fewer.
    AtMost(u64),
    /// From the first to the second, both included.
    Between(u64, u64),
}

impl Times {
    /// No call at all.
    pub const NEVER: Times = Times::Exactly(0);

    /// Whether `count` calls satisfy the expectation.
    pub fn admits(self, count: u64) -> bool {
        match self {
            Times::Exactly(n) => count == n,
            Times::AtLeast(n) => count >= n,
            Times::AtMost(n) => count <= n,
            Times::Between(low, high) => (low..=high).contains(&count),
        }
    }
}

impl From<u64> for Times {
    fn from(n: u64) -> Self {
        Times::Exactly(n)
    }
}

impl From<RangeInclusive<u64>> for Times {
    fn from(range: RangeInclusive<u64>) -> Self {
        Times::Between(*range.start(), *range.end())
    }
}

impl From<Range<u64>> for Times {
    /// `1..3` admits 1 and 2 (`Between(1, 2)`); `0..0` is taken as `Between(0, 0)`, never.
    fn from(range: Range<u64>) -> Self {
        Times::Between(range.start, range.end.saturating_sub(1))
    }
}

impl From<RangeFrom<u64>> for Times {
    fn from(range: RangeFrom<u64>) -> Self {
        Times::AtLeast(range.start)
    }
}

impl From<RangeToInclusive<u64>> for Times {
    fn from(range: RangeToInclusive<u64>) -> Self {
        Times::AtMost(range.end)
    }
}

impl std::fmt::Display for Times {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Times::Exactly(0) => write!(f, "never"),
            Times::Exactly(n) => write!(f, "exactly {n}"),
            Times::AtLeast(n) => write!(f, "at least {n}"),
            Times::AtMost(n) => write!(f, "at most {n}"),
            Times::Between(low, high) => write!(f, "between {low} and {high}"),
        }
    }
}
