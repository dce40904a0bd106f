//! The suite's PostgreSQL part on drydock: one PostgreSQL for the run, the 30 migrations applied
//! once to a template, a database cloned from it per test. Compared with `sqlx_test_pg.rs`.
//!
//! ```text
//! . scripts/env && cargo nextest run -p suite-bench --test drydock_pg
//! ```

mod common;

use common::{postgres_work, Steps, TestResult};
use drydock::{Env, Postgres};

async fn on_a_cloned_database(test: &'static str, quantity: i32) -> TestResult {
    let mut steps = Steps::start("drydock_pg", test);
    let slice = Env::builder()
        .with_postgres(Postgres::default().migrations("migrations"))
        .attach()
        .await?;
    steps.step("attach");
    let db = slice.postgres()?.pool().await?;
    postgres_work(&db, test, quantity).await?;
    steps.step("postgres");
    drop(slice);
    steps.step("release");
    steps.finish()
}

macro_rules! test_on_a_cloned_database {
    ($name:ident, $quantity:expr) => {
        #[tokio::test]
        async fn $name() -> TestResult {
            on_a_cloned_database(concat!(module_path!(), "::", stringify!($name)), $quantity).await
        }
    };
}

hundred!(test_on_a_cloned_database);
