//! What drydock tells the person waiting: one line on stderr per service started, with its
//! image and how long it took, and a pull's progress every few seconds. `DRYDOCK_LOG=off`
//! silences it.
//!
//! A test's stderr is shown only when it fails (libtest and nextest capture it); a keeper's
//! goes to its log in the run directory.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

/// How often a pull in progress says how far it got.
const PULL_EVERY: Duration = Duration::from_secs(5);

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

/// A pull began (the image is not on this machine).
pub(crate) fn pull_started(image: &str) {
    if enabled() {
        eprintln!("drydock: pulling {image} (not on this machine yet)…");
    }
}

/// A pull ended.
pub(crate) fn pull_finished(image: &str, took: Duration) {
    if enabled() {
        eprintln!("drydock: pulled {image} in {:.1} s", took.as_secs_f64());
    }
}

/// The layers of one pull, summed into a line every [`PULL_EVERY`].
pub(crate) struct PullProgress {
    image: String,
    layers: HashMap<String, (i64, i64)>,
    said: Instant,
}

impl PullProgress {
    pub(crate) fn new(image: &str) -> Self {
        PullProgress {
            image: image.to_owned(),
            layers: HashMap::new(),
            said: Instant::now(),
        }
    }

    /// Layer `layer` has `current` of `total` bytes.
    pub(crate) fn update(&mut self, layer: String, current: Option<i64>, total: Option<i64>) {
        if let (Some(current), Some(total)) = (current, total) {
            self.layers.insert(layer, (current, total));
        }
        if self.said.elapsed() >= PULL_EVERY && enabled() {
            self.said = Instant::now();
            let (done, all) = self
                .layers
                .values()
                .fold((0, 0), |(d, a), (c, t)| (d + c, a + t));
            eprintln!(
                "drydock: pulling {}: {:.1} of {:.1} MB in {} layers",
                self.image,
                done as f64 / 1e6,
                all as f64 / 1e6,
                self.layers.len()
            );
        }
    }
}
