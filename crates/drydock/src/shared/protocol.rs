//! What test processes and a keeper say to each other: one JSON line each way.
//!
//! A connection is a lease: the keeper hands out a slice in its answer and takes the slice back
//! when the connection closes, which the kernel does for a test process that dies, even by SIGKILL.

use serde::{Deserialize, Serialize};

use crate::{EnvBuilder, KafkaServer, PostgresServer, RedisServer, StubEndpoint};

/// The spec file a keeper is started with.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct KeeperSpec {
    pub run: String,
    pub identity: String,
    pub builder: EnvBuilder,
}

/// A request, the first line a client writes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    /// A slice, held until this connection closes.
    Attach { pid: u32 },
    /// The keeper's state, for `drydock ls`.
    Status,
}

/// The keeper's one-line answer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Response {
    Slice(Box<SliceGrant>),
    Failed(String),
    Status(Status),
}

/// One test's share of the environment.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SliceGrant {
    pub instance: String,
    pub postgres: Option<(PostgresServer, String)>,
    pub redis: Option<(RedisServer, u32)>,
    /// The broker and this slice's name prefix.
    pub kafka: Option<(KafkaServer, String)>,
    /// The stub server, in this slice's namespace.
    #[serde(default)]
    pub stub: Option<StubEndpoint>,
}

/// What `drydock ls` shows of a keeper.
#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    /// The run the environment belongs to.
    pub run: String,
    /// The spec's identity.
    pub identity: String,
    /// The keeper's pid.
    pub pid: u32,
    /// `starting`, `ready` or `failed: …`.
    pub state: String,
    /// Slices held right now.
    pub leases: usize,
}
