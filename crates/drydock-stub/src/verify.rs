//! Verification: expected call counts, and the near-miss report of requests no stub matched.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{
    model::{Stub, Times},
    request::LoggedRequest,
};

/// A request no stub matched, with the stubs that came closest and what did not match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Unmatched {
    /// The request.
    pub request: LoggedRequest,
    /// Up to three stubs, nearest first.
    pub near_misses: Vec<NearMiss>,
}

/// How close one stub came to a request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct NearMiss {
    /// The stub's id.
    pub stub_id: String,
    /// Its name, or `METHOD url`.
    pub stub: String,
    /// The share of its checks that failed: 0 would have matched, 1 matched nothing.
    pub distance: f64,
    /// Each check, matched or not.
    pub checks: Vec<Check>,
    /// The stub itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stub_mapping: Option<Stub>,
}

/// One part of a pattern checked against a request: what the stub wants, what the request had,
/// and whether they matched. Near-miss reports are made of these.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Check {
    /// `method`, `url path`, `header x-api-key`, `body`, `scenario checkout`, …
    pub what: String,
    /// What the stub wants.
    pub expected: String,
    /// What the request had.
    pub actual: String,
    /// Whether it matched.
    pub matched: bool,
    /// JSON (or XML) differences, one per line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// The name [`Check`] had in near-miss reports; the same type.
pub type CheckReport = Check;

impl fmt::Display for Unmatched {
    /// ```text
    /// No stub matched POST /orders
    /// Nearest stub: create order (id 3f2a…), 1 of 3 checks failed
    ///   ok   method    POST
    ///   FAIL body      expected equalToJson {"amount":10}
    ///                  got      "{\"amount\":12}"
    ///                  $.amount: expected 10, got 12
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_report(
            f,
            &self.request.method,
            &self.request.url,
            &self.near_misses,
        )
    }
}

/// The near-miss report of a request (what `Unmatched` displays, and a 404's body).
pub(crate) fn write_report(
    f: &mut impl fmt::Write,
    method: &str,
    url: &str,
    near_misses: &[NearMiss],
) -> fmt::Result {
    writeln!(f, "No stub matched {method} {url}")?;
    let Some(nearest) = near_misses.first() else {
        return writeln!(f, "  (no stubs are mounted)");
    };
    let failed = nearest.checks.iter().filter(|c| !c.matched).count();
    writeln!(
        f,
        "Nearest stub: {} (id {}), {failed} of {} checks failed",
        nearest.stub,
        nearest.stub_id,
        nearest.checks.len()
    )?;
    let width = nearest
        .checks
        .iter()
        .map(|c| c.what.len())
        .max()
        .unwrap_or(0);
    for check in &nearest.checks {
        if check.matched {
            writeln!(f, "  ok   {:width$}  {}", check.what, check.actual)?;
        } else {
            writeln!(
                f,
                "  FAIL {:width$}  expected {}",
                check.what, check.expected
            )?;
            writeln!(f, "       {:width$}  got      {}", "", check.actual)?;
            for detail in &check.details {
                writeln!(f, "       {:width$}  {detail}", "")?;
            }
        }
    }
    for other in &near_misses[1..] {
        writeln!(
            f,
            "Also near: {} (id {}), {} of {} checks failed",
            other.stub,
            other.stub_id,
            other.checks.iter().filter(|c| !c.matched).count(),
            other.checks.len()
        )?;
    }
    Ok(())
}

/// A stub called a number of times its expectation does not admit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct FailedExpectation {
    /// The stub's id.
    pub stub_id: String,
    /// Its name, or `METHOD url`.
    pub stub: String,
    /// What was expected.
    pub expected: Times,
    /// How often it was called.
    pub calls: u64,
}

/// Why verification failed: the broken expectations, and every request no stub matched (often
/// the reason), each with its nearest stub and the differences.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct VerificationFailure {
    /// The namespace verified (empty for the root).
    pub namespace: String,
    /// Expectations not met.
    pub failed: Vec<FailedExpectation>,
    /// Requests no stub matched.
    pub unmatched: Vec<Unmatched>,
}

impl fmt::Display for VerificationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = if self.namespace.is_empty() {
            String::new()
        } else {
            format!(" (namespace {})", self.namespace)
        };
        writeln!(f, "stub expectations not met{place}:")?;
        for failed in &self.failed {
            writeln!(
                f,
                "- {} (id {}): expected {} call(s), received {}",
                failed.stub, failed.stub_id, failed.expected, failed.calls
            )?;
        }
        if !self.unmatched.is_empty() {
            writeln!(f, "{} request(s) matched no stub:", self.unmatched.len())?;
            for unmatched in &self.unmatched {
                write!(f, "{unmatched}")?;
            }
        }
        Ok(())
    }
}
