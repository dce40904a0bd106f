//! 50 tests, one environment: every test writes the same table and keys, and sees only its own.
//!
//! ```text
//! cargo nextest run -p shared-suite --test suite   # a process per test, one PostgreSQL + one Redis
//! cargo test -p shared-suite --test suite          # threads of one process, the same
//! ```

mod common;

use std::{collections::HashMap, time::Duration};

use common::{exercise, TestResult};
use drydock::{
    docker::{bollard::query_parameters::ListContainersOptionsBuilder, Engine},
    Env, EnvBuilder, Postgres, Redis,
};
use shared_suite::Orders;

/// The environment every test of the run shares.
fn environment() -> EnvBuilder {
    Env::builder()
        .with_postgres(Postgres::default().migrations("migrations"))
        .with_redis(Redis::default())
}

/// One test on its own slice, and a check that the run is served by exactly one PostgreSQL and
/// one Redis container.
async fn on_a_slice(owner: &str, n: usize) -> TestResult {
    let slice = environment().attach().await?;
    let mut orders = Orders::new(
        slice.postgres()?.pool().await?,
        slice.redis()?.connection_manager().await?,
    );
    exercise(&mut orders, owner, n).await?;

    let engine = Engine::connect().await?;
    let filters = HashMap::from([(
        "label",
        vec![
            format!("drydock.run={}", drydock::identity::run_id()),
            format!("drydock.env={}", environment().identity()?),
        ],
    )]);
    let containers = engine
        .docker()
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .filters(&filters)
                .build(),
        ))
        .await?;
    let mut services: Vec<String> = containers
        .iter()
        .filter_map(|c| c.labels.as_ref()?.get("drydock.service").cloned())
        .collect();
    services.sort();
    assert_eq!(
        services,
        ["postgres", "redis"],
        "one of each for the whole run"
    );
    Ok(())
}

macro_rules! test_on_a_slice {
    ($name:ident, $n:expr) => {
        #[tokio::test]
        async fn $name() -> TestResult {
            on_a_slice(stringify!($name), $n).await
        }
    };
}

fifty!(test_on_a_slice);

macro_rules! holders {
    ($($name:ident),*) => {
        $(
            /// Holds a slice for a long time; `scripts/check-sigkill` kills the processes running it.
            #[tokio::test]
            #[ignore = "run by scripts/check-sigkill, which SIGKILLs it"]
            async fn $name() -> TestResult {
                let _slice = environment().attach().await?;
                tokio::time::sleep(Duration::from_secs(120)).await;
                Ok(())
            }
        )*
    };
}

holders!(
    holds_a_slice_until_killed_1,
    holds_a_slice_until_killed_2,
    holds_a_slice_until_killed_3
);
