//! The Docker runtime: finding the engine, starting labelled containers, removing them.
//!
//! One client (bollard, which testcontainers uses too) does all of it; drydock adds what
//! tests need: ports published on loopback only, host resolution that is right on VMs with a
//! stray `/.dockerenv`, a bounded image pull with registry credentials and a clear error, and
//! removal by label.

mod auth;
mod cleanup;
mod container;
mod engine;
mod host;

pub(crate) use auth::credentials_for;
pub(crate) use cleanup::remove_labelled_blocking;
pub use cleanup::{remove_labelled, Removed};
pub(crate) use container::{
    exec, exit_code, health, log_tail, log_tail_since, network_gateway, ports_of, published_ports,
    remove_container, reserve_port, start,
};
pub use engine::Engine;
pub use testcontainers::bollard;
