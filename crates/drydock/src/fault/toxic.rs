//! Toxics: what a fault proxy does to the bytes of a link, with Toxiproxy's names and parameters.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which way a toxic acts: on bytes from the client to the server (`upstream`), from the server
/// to the client (`downstream`), or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Client → server.
    Upstream,
    /// Server → client (Toxiproxy's default).
    Downstream,
}

/// What a toxic does, with Toxiproxy's parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "attributes", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ToxicKind {
    /// Delays every chunk by `latency` ± up to `jitter` (milliseconds).
    Latency {
        /// Milliseconds added to each chunk.
        latency: u64,
        /// Up to this many milliseconds more or less, uniformly.
        #[serde(default)]
        jitter: u64,
    },
    /// Limits the rate to `rate` KB/s.
    Bandwidth {
        /// Kilobytes per second.
        rate: u64,
    },
    /// Delays closing the connection by `delay` milliseconds once the source closed.
    SlowClose {
        /// Milliseconds.
        delay: u64,
    },
    /// Stops all data; closes the connection after `timeout` ms (0: holds it until the toxic
    /// is removed, then lets the data through).
    Timeout {
        /// Milliseconds; 0 holds forever.
        timeout: u64,
    },
    /// Resets the connection (TCP RST) after `timeout` ms (0: at once).
    ResetPeer {
        /// Milliseconds.
        #[serde(default)]
        timeout: u64,
    },
    /// Cuts data into slices of `average_size` ± `size_variation` bytes, `delay` µs apart.
    Slicer {
        /// Bytes per slice on average.
        average_size: u64,
        /// Up to this many bytes more or less.
        #[serde(default)]
        size_variation: u64,
        /// Microseconds between slices.
        #[serde(default)]
        delay: u64,
    },
    /// Closes the connection once `bytes` bytes went through (in this direction).
    LimitData {
        /// Bytes.
        bytes: u64,
    },
}

impl ToxicKind {
    /// Toxiproxy's name of the kind (`latency`, `limit_data`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::SlowClose { .. } => "slow_close",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::ResetPeer { .. } => "reset_peer",
            ToxicKind::Slicer { .. } => "slicer",
            ToxicKind::LimitData { .. } => "limit_data",
        }
    }
}

/// A fault on one direction of a proxy's links: a kind, a stream, a toxicity, and a name.
///
/// ```
/// use drydock::fault::{Stream, Toxic};
/// use std::time::Duration;
///
/// let slow = Toxic::latency(Duration::from_millis(200))
///     .jitter(Duration::from_millis(20))
///     .upstream()
///     .toxicity(0.5); // on half the connections
/// assert_eq!(slow.name(), "latency_upstream");
/// assert_eq!(slow.stream(), Stream::Upstream);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Toxic {
    pub(crate) name: Option<String>,
    pub(crate) kind: ToxicKind,
    pub(crate) stream: Stream,
    pub(crate) toxicity: f64,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Toxic {
    /// A toxic of `kind`, downstream, on every connection.
    pub fn new(kind: ToxicKind) -> Self {
        Toxic {
            name: None,
            kind,
            stream: Stream::Downstream,
            toxicity: 1.0,
        }
    }

    /// Adds `latency` to every chunk.
    pub fn latency(latency: Duration) -> Self {
        Toxic::new(ToxicKind::Latency {
            latency: millis(latency),
            jitter: 0,
        })
    }

    /// Limits the rate to `kilobytes_per_second`.
    pub fn bandwidth(kilobytes_per_second: u64) -> Self {
        Toxic::new(ToxicKind::Bandwidth {
            rate: kilobytes_per_second,
        })
    }

    /// Delays the close of the connection by `delay`.
    pub fn slow_close(delay: Duration) -> Self {
        Toxic::new(ToxicKind::SlowClose {
            delay: millis(delay),
        })
    }

    /// Stops all data, and closes the connection after `timeout` (zero: holds until removed).
    pub fn timeout(timeout: Duration) -> Self {
        Toxic::new(ToxicKind::Timeout {
            timeout: millis(timeout),
        })
    }

    /// Resets the connection after `timeout` (zero: at once).
    pub fn reset_peer(timeout: Duration) -> Self {
        Toxic::new(ToxicKind::ResetPeer {
            timeout: millis(timeout),
        })
    }

    /// Cuts data into slices of about `average_size` bytes.
    pub fn slicer(average_size: u64) -> Self {
        Toxic::new(ToxicKind::Slicer {
            average_size,
            size_variation: 0,
            delay: 0,
        })
    }

    /// Closes the connection after `bytes` bytes.
    pub fn limit_data(bytes: u64) -> Self {
        Toxic::new(ToxicKind::LimitData { bytes })
    }

    /// Latency: up to `jitter` more or less. Slicer: `size_variation` in bytes is set with
    /// [`size_variation`](Self::size_variation).
    pub fn jitter(mut self, jitter: Duration) -> Self {
        if let ToxicKind::Latency { jitter: j, .. } = &mut self.kind {
            *j = millis(jitter);
        }
        self
    }

    /// Slicer: slices vary by up to this many bytes.
    pub fn size_variation(mut self, bytes: u64) -> Self {
        if let ToxicKind::Slicer { size_variation, .. } = &mut self.kind {
            *size_variation = bytes;
        }
        self
    }

    /// Slicer: the pause between slices.
    pub fn slice_delay(mut self, delay: Duration) -> Self {
        if let ToxicKind::Slicer { delay: d, .. } = &mut self.kind {
            *d = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        }
        self
    }

    /// Acts on client → server bytes.
    pub fn upstream(mut self) -> Self {
        self.stream = Stream::Upstream;
        self
    }

    /// Acts on server → client bytes (the default).
    pub fn downstream(mut self) -> Self {
        self.stream = Stream::Downstream;
        self
    }

    /// Acts on this stream.
    pub fn on(mut self, stream: Stream) -> Self {
        self.stream = stream;
        self
    }

    /// The probability (0 to 1) that a connection gets this toxic (1 by default).
    pub fn toxicity(mut self, toxicity: f64) -> Self {
        self.toxicity = toxicity;
        self
    }

    /// Names the toxic (by default `<type>_<stream>`, as in Toxiproxy).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The toxic's name.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let stream = match self.stream {
                Stream::Upstream => "upstream",
                Stream::Downstream => "downstream",
            };
            format!("{}_{stream}", self.kind.type_name())
        })
    }

    /// What it does.
    pub fn kind(&self) -> &ToxicKind {
        &self.kind
    }

    /// Which way it acts.
    pub fn stream(&self) -> Stream {
        self.stream
    }

    /// The probability that a connection gets it.
    pub fn toxicity_value(&self) -> f64 {
        self.toxicity
    }

    /// Checks the parameters, naming the one that is wrong.
    pub fn validate(&self) -> Result<()> {
        let bad = |problem: String| {
            Err(Error::Fault {
                proxy: String::new(),
                problem: format!("toxic {}: {problem}", self.name()),
                fix: "correct that parameter of the toxic (see drydock::fault::Toxic)".into(),
            })
        };
        if !(0.0..=1.0).contains(&self.toxicity) || self.toxicity.is_nan() {
            return bad(format!(
                "toxicity {} is not a probability between 0 and 1",
                self.toxicity
            ));
        }
        match self.kind {
            ToxicKind::Bandwidth { rate: 0 } => bad("bandwidth rate must be above 0 KB/s".into()),
            ToxicKind::Slicer {
                average_size: 0, ..
            } => bad("slicer average_size must be above 0 bytes".into()),
            ToxicKind::Slicer {
                average_size,
                size_variation,
                ..
            } if size_variation >= average_size => bad(format!(
                "slicer size_variation {size_variation} must be below average_size {average_size}"
            )),
            _ => Ok(()),
        }
    }
}
