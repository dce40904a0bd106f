//! What test processes and a keeper say to each other: one JSON line each way.
//!
//! A connection is a lease: the keeper hands out a slice in its answer and takes the slice back
//! when the connection closes, which the kernel does for a test process that dies, even by SIGKILL.
//! These types are the wire format and private to it: the public builders stay free of it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The spec file a keeper is started with.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct KeeperSpec {
    pub run: String,
    pub identity: String,
    pub grace_period: Duration,
    /// Each service as its kind and spec, rebuilt through the service registry.
    pub services: Vec<(String, serde_json::Value)>,
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
    pub network: String,
    pub services: Vec<GrantedService>,
}

/// One service of a slice: its server and this slice's scope of it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GrantedService {
    pub name: String,
    pub server: serde_json::Value,
    pub scope: serde_json::Value,
    /// The container's id, for its log in a failing test's report.
    pub container: String,
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
