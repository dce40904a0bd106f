//! The Docker runtime: finding the engine, starting labelled containers, removing them.
//!
//! Containers are started through the `testcontainers` crate; drydock adds what it lacks for this
//! job: ports published on loopback only, host resolution that is right on VMs with a stray
//! `/.dockerenv`, a bounded image check with a clear error, and removal by label.

mod auth;
mod cleanup;
mod container;
mod engine;
mod host;

#[allow(unused_imports)] // until container.rs's ensure_image passes credentials to its pull
pub(crate) use auth::credentials_for;
pub(crate) use cleanup::remove_labelled_blocking;
pub use cleanup::{remove_labelled, Removed};
pub(crate) use container::{
    log_tail, port_taken, remove_container, reserve_port, start, ContainerPlan, StartedContainer,
};
pub use engine::Engine;
pub use testcontainers::bollard;
