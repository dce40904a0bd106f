//! What drydock tells the person waiting: one line on stderr per service started, with its
//! image and how long it took. `DRYDOCK_LOG=off` silences it.
//!
//! A test's stderr is shown only when it fails (libtest and nextest capture it); a keeper's
//! goes to its log in the run directory.

use std::time::Duration;

/// Whether progress lines are printed (everything but `DRYDOCK_LOG=off`).
fn enabled() -> bool {
    !std::env::var("DRYDOCK_LOG").is_ok_and(|v| v.eq_ignore_ascii_case("off"))
}

/// A service became ready.
pub(crate) fn service_ready(name: &str, image: &str, took: Duration) {
    if enabled() {
        eprintln!(
            "drydock: {name} ready in {:.2} s ({image})",
            took.as_secs_f64()
        );
    }
}
