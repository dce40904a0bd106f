//! Faults on the network path to a dependency: a TCP proxy with Toxiproxy's toxics.
//!
//! Every endpoint a test gets from an [`Env`](crate::Env) or a [`Slice`](crate::Slice) goes
//! through a [`FaultProxy`] of that environment or slice, running in the test's own process. A
//! test faults *its* dependencies — the rest of the suite runs on the same shared servers
//! untouched — and a test that adds no fault pays next to nothing: with no toxic, bytes move
//! inside the kernel (`splice(2)`); a link whose server answers quickly is watched for the
//! answer instead of sleeping until it comes; and where the engine's bridge is on this machine,
//! a proxy connects to the container's own address, so it stands in for the published port's
//! proxy (`docker-proxy`) rather than adding a hop in front of it.
//!
//! Toxics are Toxiproxy's: `latency` (+ `jitter`), `bandwidth`, `slow_close`, `timeout`,
//! `reset_peer`, `slicer`, `limit_data`, each `upstream` or `downstream`, with a `toxicity`
//! (the probability that a connection gets it). They stack in the order they were added. The
//! link itself can go [`down`](FaultProxy::down): new connections are refused and open ones cut.
//! A fault is a guard that removes it when dropped; a slice's faults end with the slice.
//!
//! ```no_run
//! use drydock::{fault::Toxic, Env, Postgres};
//! use std::time::Duration;
//!
//! # async fn demo() -> drydock::TestResult {
//! let slice = Env::builder().with_postgres(Postgres::default()).attach().await?;
//! let pool = slice.postgres()?.pool().await?;
//! {
//!     let _slow = slice.fault("postgres")?.add(Toxic::latency(Duration::from_millis(300)))?;
//!     // … this test's queries now take 300 ms longer; every other test's do not …
//! }
//! let _outage = slice.fault("postgres")?.down();   // connections refused, open ones cut
//! println!("{}", slice.fault("postgres")?.traffic()); // what crossed the boundary
//! # drop(pool); Ok(()) }
//! ```
//!
//! Kafka clients connect wherever the broker's Metadata answers tell them to, so the Kafka
//! proxy reads the protocol and rewrites the advertised broker addresses to its own: faults
//! apply to every connection a client opens.

mod kafka;
mod link;
mod proxy;
mod runtime;
pub(crate) mod shortcut;
#[cfg(target_os = "linux")]
mod splice;
mod toxic;
mod traffic;

pub use proxy::{FaultProxy, LinkDown, ToxicGuard};
pub use toxic::{Stream, Toxic, ToxicKind};
pub use traffic::Traffic;

/// How a proxy reads what it forwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Bytes, as they come.
    Raw,
    /// Kafka frames, whose broker addresses are rewritten to the proxy's own.
    Kafka,
}
