//! What test processes and a keeper say to each other: one JSON line each way.
//!
//! A connection is a lease: the keeper hands out a slice in its answer and takes the slice back
//! when the connection closes, which the kernel does for a test process that dies, even by SIGKILL.
//! These types are the wire format and private to it: the public builders stay free of it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::identity::RunOwner;

/// The spec file a keeper is started with.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct KeeperSpec {
    pub run: String,
    pub identity: String,
    pub grace_period: Duration,
    /// The process whose life is the run's: the keeper stays while it lives (see
    /// [`crate::identity::run_owner`]); `None`: the grace period after the last lease.
    #[serde(default)]
    pub owner: Option<RunOwner>,
    /// The longest the keeper stays with no test's lease, whatever else holds it.
    pub max_idle: Duration,
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
    /// A slice the keeper holds itself after this connection closes, until `Down` or the end
    /// of the run (`drydock up`).
    Hold { pid: u32 },
    /// Sent on an `Attach` connection after its slice was granted: keep the slice after the
    /// connection closes (`DRYDOCK_KEEP=on-failure`, a failing test), until `drydock down` or
    /// the keeper's longest idle time, whatever happens to the run.
    Keep { test: String },
    /// Removes the environment now (`drydock down`): answered with `Stopping`; the connection
    /// closes when the keeper has removed everything and exits.
    Down,
}

/// The keeper's one-line answer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Response {
    Slice(Box<SliceGrant>),
    /// The environment failed: every test gets this.
    Failed(String),
    /// The environment runs, but this test's slice could not be cut (a lease ran out).
    Refused(String),
    Status(Status),
    Stopping,
}

/// One test's share of the environment.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SliceGrant {
    /// The slice's number in its environment.
    #[serde(default)]
    pub slice: u64,
    pub instance: String,
    pub network: String,
    pub services: Vec<GrantedService>,
    /// The keeper's shortcuts to its containers, for the slice's fault proxies.
    #[serde(default)]
    pub shortcuts: Vec<crate::fault::shortcut::Granted>,
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
    /// Slices held right now by tests.
    pub leases: usize,
    /// Slices the keeper holds for `drydock up`.
    #[serde(default)]
    pub held: usize,
    /// The pid of the process whose life is the run's, if one is known.
    #[serde(default)]
    pub owner: Option<u32>,
    /// The keeper's log.
    #[serde(default)]
    pub log: std::path::PathBuf,
    /// Slices kept for a look after their test failed (`DRYDOCK_KEEP=on-failure`): the tests.
    #[serde(default)]
    pub kept: Vec<String>,
}
