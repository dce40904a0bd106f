//! Baseline (b) of `scripts/bench-suite`: the same 50 tests under `#[sqlx::test]`, which creates
//! a database per test and runs every migration into it, on the server `DATABASE_URL` names.
//! Redis comes from a drydock slice, so the two harnesses differ only in how the database is made.

mod common;

use common::{exercise, TestResult};
use drydock::{Env, Redis};
use shared_suite::Orders;

/// `#[sqlx::test]` cannot resolve `migrations = "…"` inside a macro expansion; a migrator can.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

async fn on_a_migrated_database(pool: sqlx::PgPool, owner: &str, n: usize) -> TestResult {
    let slice = Env::builder().with_redis(Redis::default()).attach().await?;
    let mut orders = Orders::new(pool, slice.redis()?.connection_manager().await?);
    exercise(&mut orders, owner, n).await
}

macro_rules! test_on_a_migrated_database {
    ($name:ident, $n:expr) => {
        #[sqlx::test(migrator = "MIGRATOR")]
        #[ignore = "a baseline for scripts/bench-suite; needs DATABASE_URL"]
        async fn $name(pool: sqlx::PgPool) -> TestResult {
            on_a_migrated_database(pool, stringify!($name), $n).await
        }
    };
}

fifty!(test_on_a_migrated_database);
