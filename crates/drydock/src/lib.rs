//! # drydock
//!
//! Real, ephemeral dependencies for Rust integration tests: PostgreSQL and Redis in Docker
//! containers, ready for sure when you get them, reached through the clients you already use
//! (`sqlx`, `redis`), and removed when the test ends, also when it panics.
//!
//! ```no_run
//! use drydock::{Env, Postgres, Redis};
//!
//! #[tokio::test]
//! async fn stores_a_user() -> drydock::Result<()> {
//!     let env = Env::builder()
//!         .with_postgres(Postgres::default())
//!         .with_redis(Redis::default())
//!         .start()
//!         .await?;
//!     let pool = env.postgres()?.pool().await?;
//!     let mut redis = env.redis()?.connection_manager().await?;
//!     // ... exercise the system under test with `pool` and `redis` ...
//!     # let _ = (pool, &mut redis);
//!     Ok(())
//! } // containers and network are removed here
//! ```
//!
//! Under `cargo nextest`, where every test is a process, start the environment once per run and
//! give each test a [`Slice`] of it — its own database cloned from a migrated template, its own
//! Redis database — with [`EnvBuilder::attach`]; see [`shared`].
//!
//! Images: each service runs its official image (`postgres:17-alpine`, `redis:7-alpine`) unless
//! the code picks another, and `DRYDOCK_IMAGE_<SERVICE>` overrides both; see [`image`].

pub mod docker;
mod env;
mod error;
pub mod identity;
pub mod image;
mod readiness;
mod secret;
pub mod service;
pub mod shared;

/// The stub server crate: [`stub::Stub`], [`stub::Response`], [`stub::StubServer`], … so tests
/// need no second dependency.
pub use drydock_stub as stub;
pub use env::{Env, EnvBuilder};
pub use error::{Error, Result};
pub use image::ImageRef;
pub use service::{
    kafka::{Kafka, KafkaFlavour, KafkaServer, KafkaSlice, Received},
    postgres::{Postgres, PostgresServer},
    redis::{Redis, RedisServer},
    stub::{HttpStub, StubEndpoint},
};
pub use shared::{PostgresSlice, RedisSlice, Slice};
