//! 50 tests, one environment: every test writes the same table and keys, and sees only its own.
//!
//! ```text
//! cargo nextest run -p shared-suite     # a process per test, one PostgreSQL + one Redis
//! cargo test -p shared-suite            # threads of one process, the same
//! ```

use std::{collections::HashMap, time::Duration};

use drydock::{
    docker::{bollard::query_parameters::ListContainersOptionsBuilder, Engine},
    Env, EnvBuilder, Postgres, Redis,
};
use shared_suite::Orders;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The environment every test of the run shares.
fn environment() -> EnvBuilder {
    Env::builder()
        .with_postgres(Postgres::default().migrations("migrations"))
        .with_redis(Redis::default())
}

/// Places `n` orders as `owner` and checks that this test sees exactly those, and that the run is
/// served by exactly one PostgreSQL and one Redis container.
async fn exercise(owner: &str, n: usize) -> TestResult {
    let slice = environment().attach().await?;
    let mut orders = Orders::new(
        slice.postgres()?.pool().await?,
        slice.redis()?.connection_manager().await?,
    );
    assert_eq!(orders.count().await?, 0, "a fresh slice has no orders");
    assert_eq!(orders.cached_count().await?, 0, "a fresh slice has no keys");
    for i in 0..n {
        orders.place(owner, &format!("item-{i}")).await?;
        // Interleave with the other tests running at the same time.
        tokio::task::yield_now().await;
    }
    assert_eq!(orders.count().await?, n as i64, "only this test's rows");
    assert_eq!(
        orders.cached_count().await?,
        n as i64,
        "only this test's count"
    );
    assert_eq!(orders.owners().await?, [owner], "only this test's keys");

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

macro_rules! suite {
    ($($name:ident => $n:expr),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() -> TestResult {
                exercise(stringify!($name), $n).await
            }
        )*
    };
}

suite! {
    order_01 => 1, order_02 => 2, order_03 => 3, order_04 => 4, order_05 => 5,
    order_06 => 1, order_07 => 2, order_08 => 3, order_09 => 4, order_10 => 5,
    order_11 => 1, order_12 => 2, order_13 => 3, order_14 => 4, order_15 => 5,
    order_16 => 1, order_17 => 2, order_18 => 3, order_19 => 4, order_20 => 5,
    order_21 => 1, order_22 => 2, order_23 => 3, order_24 => 4, order_25 => 5,
    order_26 => 1, order_27 => 2, order_28 => 3, order_29 => 4, order_30 => 5,
    order_31 => 1, order_32 => 2, order_33 => 3, order_34 => 4, order_35 => 5,
    order_36 => 1, order_37 => 2, order_38 => 3, order_39 => 4, order_40 => 5,
    order_41 => 1, order_42 => 2, order_43 => 3, order_44 => 4, order_45 => 5,
    order_46 => 1, order_47 => 2, order_48 => 3, order_49 => 4, order_50 => 5,
}

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
