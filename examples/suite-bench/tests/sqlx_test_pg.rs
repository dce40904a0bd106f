//! Baseline of `scripts/bench-suite`, PostgreSQL part only: `#[sqlx::test]`, which creates a
//! database per test and runs the 30 migrations into it, on the server `DATABASE_URL` names.
//! Its `to body` step holds that database's creation and migration.

mod common;

use common::{postgres_work, Steps, TestResult};

/// `#[sqlx::test]` cannot resolve `migrations = "…"` inside a macro expansion; a migrator can.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

async fn on_a_migrated_database(
    pool: sqlx::PgPool,
    test: &'static str,
    quantity: i32,
) -> TestResult {
    let mut steps = Steps::start("sqlx_test", test);
    postgres_work(&pool, test, quantity).await?;
    steps.step("postgres");
    steps.finish()
}

macro_rules! test_on_a_migrated_database {
    ($name:ident, $quantity:expr) => {
        #[sqlx::test(migrator = "MIGRATOR")]
        #[ignore = "a baseline for scripts/bench-suite; needs DATABASE_URL"]
        async fn $name(pool: sqlx::PgPool) -> TestResult {
            on_a_migrated_database(
                pool,
                concat!(module_path!(), "::", stringify!($name)),
                $quantity,
            )
            .await
        }
    };
}

hundred!(test_on_a_migrated_database);
