//! Baseline (a) of `scripts/bench-suite`: the same 50 tests, each starting its own containers
//! (the usual testcontainers pattern).

mod common;

use common::{exercise, TestResult};
use drydock::{Env, Postgres, Redis};
use shared_suite::Orders;

async fn in_own_containers(owner: &str, n: usize) -> TestResult {
    let env = Env::builder()
        .with_postgres(Postgres::default().migrations("migrations"))
        .with_redis(Redis::default())
        .start()
        .await?;
    let mut orders = Orders::new(
        env.postgres()?.pool().await?,
        env.redis()?.connection_manager().await?,
    );
    exercise(&mut orders, owner, n).await
}

macro_rules! test_in_own_containers {
    ($name:ident, $n:expr) => {
        #[tokio::test]
        #[ignore = "a baseline for scripts/bench-suite"]
        async fn $name() -> TestResult {
            in_own_containers(stringify!($name), $n).await
        }
    };
}

fifty!(test_in_own_containers);
