//! What crossed a proxy: connections, bytes each way, and round trips with the time waited.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// A snapshot of a proxy's traffic since it started.
///
/// A round trip is a burst of bytes upstream answered by bytes downstream on the same
/// connection; `waited` sums, over round trips, the time from the request's first byte leaving
/// the proxy to the answer's first byte arriving — what the dependency made the caller wait.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Connections accepted.
    pub connections: u64,
    /// Connections open now.
    pub open: u64,
    /// Bytes from clients to the server.
    pub bytes_upstream: u64,
    /// Bytes from the server to clients.
    pub bytes_downstream: u64,
    /// Requests answered.
    pub round_trips: u64,
    /// Time spent waiting for answers, over all round trips.
    pub waited: Duration,
}

impl Traffic {
    /// The mean wait per round trip.
    pub fn mean_wait(&self) -> Option<Duration> {
        (self.round_trips > 0)
            .then(|| self.waited / u32::try_from(self.round_trips).unwrap_or(u32::MAX))
    }
}

impl std::fmt::Display for Traffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} connections ({} open), {} B up, {} B down, {} round trips, {:?} waited",
            self.connections,
            self.open,
            self.bytes_upstream,
            self.bytes_downstream,
            self.round_trips,
            self.waited
        )
    }
}

/// The live counters behind [`Traffic`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub connections: AtomicU64,
    pub open: AtomicU64,
    pub bytes_upstream: AtomicU64,
    pub bytes_downstream: AtomicU64,
    pub round_trips: AtomicU64,
    pub waited_nanos: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Traffic {
        Traffic {
            connections: self.connections.load(Ordering::Relaxed),
            open: self.open.load(Ordering::Relaxed),
            bytes_upstream: self.bytes_upstream.load(Ordering::Relaxed),
            bytes_downstream: self.bytes_downstream.load(Ordering::Relaxed),
            round_trips: self.round_trips.load(Ordering::Relaxed),
            waited: Duration::from_nanos(self.waited_nanos.load(Ordering::Relaxed)),
        }
    }

    pub(crate) fn round_trip(&self, waited: Duration) {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        self.waited_nanos.fetch_add(
            u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}
