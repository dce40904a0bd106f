//! A crate whose tests use drydock for PostgreSQL alone. With
//! `drydock = { default-features = false, features = ["postgres"] }` its build has neither
//! rdkafka (nor librdkafka's C build) nor the stub server; `scripts/check-features` checks that
//! with `cargo tree`.

/// The SQL the tests run.
pub const COUNT_ONE: &str = "SELECT 1::int4";
