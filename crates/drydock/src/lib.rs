//! # drydock
//!
//! Real, ephemeral dependencies for Rust integration tests: PostgreSQL, Redis, Kafka, stub HTTP
//! services and containers of your own, in Docker, ready for sure when you get them, reached
//! through the clients you already use (`sqlx`, `redis`, `rdkafka`, `reqwest`), and removed when
//! the test ends, also when it panics.
//!
//! ```no_run
//! use drydock::{Env, Postgres, Redis};
//!
//! #[tokio::test]
//! async fn stores_a_user() -> drydock::TestResult {
//!     let env = Env::builder()
//!         .with_postgres(Postgres::default())
//!         .with_redis(Redis::default())
//!         .start()
//!         .await?;
//!     let pool = env.postgres()?.pool().await?;
//!     let mut redis = env.redis()?.connection_manager().await?;
//!     sqlx::query("CREATE TABLE users (name text)").execute(&pool).await?;
//!     let _: () = redis::AsyncCommands::set(&mut redis, "user:1", "ada").await?;
//!     Ok(())
//! } // containers and network are removed here
//! ```
//!
//! Under `cargo nextest`, where every test is a process, start the environment once per run and
//! give each test a [`Slice`] of it — its own database cloned from a migrated template, its own
//! Redis database, its own Kafka prefix and stub namespace — with [`EnvBuilder::attach`]; see
//! [`shared`]. An [`Env`] and a [`Slice`] hand out the same handle types ([`Services`]).
//!
//! Every handle reaches its service through a fault proxy of its environment or slice: a test
//! adds latency, resets, timeouts or takes the link down for *its* dependencies only, and sees
//! the traffic that crossed each boundary; see [`fault`]. An owned environment's containers can
//! be stopped, paused and restarted mid-test; see [`outage`].
//!
//! Services are one trait, [`service::Service`]: drydock's own and yours alike. A container of
//! yours from any testcontainers image is one call, [`EnvBuilder::with_container`].
//!
//! Features, one per service: `postgres` and `redis` (default), `kafka` (builds librdkafka from
//! source: needs cmake and a C toolchain), `stub`, and `stub-openapi` (stubs, received requests
//! and recordings checked against an OpenAPI document: `stub::contract`). The client crates handed out are re-exported
//! ([`sqlx`], [`redis`], [`rdkafka`], [`stub`]), so their versions always match.
//!
//! Images: each service runs its official image (`postgres:17-alpine`, `redis:7-alpine`,
//! `apache/kafka:3.9.1`) unless the code picks another, and `DRYDOCK_IMAGE_<SERVICE>` overrides
//! both; see [`image`].

pub mod docker;
mod env;
mod error;
pub mod fault;
pub mod harness;
pub mod identity;
pub mod image;
pub mod outage;
pub mod paths;
mod progress;
mod readiness;
mod reaper;
mod secret;
pub mod service;
mod services;
pub mod shared;
mod sync;

pub use drydock_macros::test;
pub use env::{Env, EnvBuilder};
pub use error::{BoxError, Error, Result, TestResult};
pub use image::ImageRef;
pub use service::{
    container::{Container, ContainerEndpoint, Readiness},
    toxiproxy::{Toxiproxy, ToxiproxyEndpoint},
    Service, ServiceExt,
};
pub use services::Services;
pub use shared::Slice;

#[cfg(feature = "kafka")]
pub use service::kafka::{
    FastStart, Kafka, KafkaConsumer, KafkaFlavour, KafkaServer, KafkaSlice, Received,
};
#[cfg(feature = "postgres")]
pub use service::postgres::{Postgres, PostgresDb, PostgresServer};
#[cfg(feature = "redis")]
pub use service::redis::{Redis, RedisDb, RedisServer};
#[cfg(feature = "stub")]
pub use service::stub::{HttpStub, StubEndpoint};

/// The stub server crate: [`stub::Stub`], [`stub::Response`], [`stub::StubServer`], … so tests
/// need no second dependency.
#[cfg(feature = "stub")]
pub use drydock_stub as stub;
/// The Kafka client drydock's Kafka handles are built on (same version).
#[cfg(feature = "kafka")]
pub use rdkafka;
/// The Redis client drydock's Redis handles are built on (same version).
#[cfg(feature = "redis")]
pub use redis;
/// The PostgreSQL client drydock's PostgreSQL handles are built on (same version).
#[cfg(feature = "postgres")]
pub use sqlx;
/// The container descriptions drydock takes for containers of yours (same version).
pub use testcontainers;

#[doc(hidden)]
pub mod __private {
    pub use linkme;
}
