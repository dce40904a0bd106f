//! Servers given back by the tests that were done with them, reset, for the next test to take:
//! what makes starting a server cost nothing more than a lock (wiremock-rs pools the same way).
//!
//! A pooled server keeps its port and its connections: a client's keep-alive connection to it
//! stays usable, and a straggling request of a finished test would reach the next test's server
//! (as with wiremock-rs); tests that must rule that out set an option (`.address(..)`) to get a
//! server of their own.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::sync::watch;

use crate::server::Core;

/// At most this many idle servers wait in the pool; more are stopped.
const IDLE: usize = 16;

type Idle = (Arc<Core>, SocketAddr, watch::Sender<bool>);

static POOL: Mutex<Vec<Idle>> = Mutex::new(Vec::new());

/// A pooled server, reset when it was given back.
pub(super) fn take() -> Option<Idle> {
    POOL.lock().unwrap_or_else(|e| e.into_inner()).pop()
}

/// Resets a server and keeps it for the next `take`; gives the stop signal back when the pool is
/// full, for the caller to stop the server.
pub(super) fn give_back(
    core: Arc<Core>,
    address: SocketAddr,
    stop: watch::Sender<bool>,
) -> Result<(), watch::Sender<bool>> {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() >= IDLE || stop.is_closed() {
        return Err(stop);
    }
    core.namespaces.reset_all();
    pool.push((core, address, stop));
    Ok(())
}
