//! Writing tests with drydock: the [`#[drydock::test]`](crate::test) attribute, fixtures for
//! rstest, a suite harness, and failures that explain themselves.
//!
//! - [`#[drydock::test]`](crate::test) attaches the test to an environment and hands it the
//!   slice, or typed pieces of it ([`Inject`]: a `PgPool`, a Redis connection, a Kafka slice, a
//!   stub endpoint), as arguments.
//! - [`Suite`] (feature `suite`): a test binary of your own on libtest-mimic, with setup and
//!   teardown around one environment.
//! - With rstest, a fixture is an `async fn` that attaches; see the README's "rstest" section.
//! - When a test fails, its report names each service's scope, how to connect to it, the
//!   traffic that crossed each boundary and the last lines each container logged since the
//!   slice was cut ([`explain`]). It is printed with the failing test's output, and only then.

mod failure;
mod inject;
mod run;
#[cfg(feature = "suite")]
mod suite;

pub use failure::explain;
pub(crate) use failure::explain_on_panic;
pub use inject::{assert_injectable, inject, Inject};
pub use run::{run_test, Outcome};
#[cfg(feature = "suite")]
pub use suite::Suite;
