//! The suite on drydock: one environment for the run (PostgreSQL with the 30 migrations applied
//! once to a template, Redis, Kafka, a stub container), a slice of it per test.
//!
//! ```text
//! . scripts/env && cargo nextest run -p suite-bench --test drydock_full --run-ignored all
//! ```
//!
//! Ignored by default only to keep the workspace's test run short; `scripts/bench-suite` runs it.

mod common;

use common::{message_key, postgres_work, redis_work, stub_work, Steps, TestResult, CONSUME_BOUND};
use drydock::{Env, EnvBuilder, HttpStub, Kafka, Postgres, Redis};

/// The environment every test of the run shares.
fn environment() -> EnvBuilder {
    Env::builder()
        .with_postgres(Postgres::default().migrations("migrations"))
        .with_redis(Redis::default())
        .with_kafka(Kafka::default())
        .with_stub(HttpStub::default())
}

async fn on_a_slice(test: &'static str, quantity: i32) -> TestResult {
    let mut steps = Steps::start("drydock", test);
    let slice = environment().attach().await?;
    steps.step("attach");

    let db = slice.postgres()?.pool().await?;
    postgres_work(&db, test, quantity).await?;
    steps.step("postgres");

    let mut redis = slice.redis()?.connection_manager().await?;
    redis_work(&mut redis, quantity).await?;
    steps.step("redis");

    let kafka = slice.kafka()?;
    let (orders, payments) = tokio::try_join!(
        kafka.create_topic("orders", 1),
        kafka.create_topic("payments", 1)
    )?;
    for topic in [&orders, &payments] {
        kafka
            .produce(topic, &message_key(test, topic), b"{\"quantity\":1}", &[])
            .await?;
    }
    let consumer = kafka.subscribe("billing", &[&orders, &payments])?;
    let mut keys: Vec<String> = kafka
        .consume(&consumer, 2, CONSUME_BOUND)
        .await?
        .iter()
        .filter_map(|m| m.key_str().map(String::from))
        .collect();
    keys.sort();
    let mut expected = [message_key(test, &orders), message_key(test, &payments)];
    expected.sort();
    assert_eq!(keys, expected, "this test's two messages, and only those");
    steps.step("kafka");

    let endpoint = slice.stub()?;
    stub_work(&endpoint.connect().await?, &endpoint.url(), test).await?;
    steps.step("stub");

    // Both timed as the release: the consumer leaves its group, the slice goes back.
    drop(consumer);
    drop(slice);
    steps.step("release");
    steps.finish()
}

macro_rules! test_on_a_slice {
    ($name:ident, $quantity:expr) => {
        #[tokio::test]
        #[ignore = "the suite benchmark's drydock variant; scripts/bench-suite runs it"]
        async fn $name() -> TestResult {
            on_a_slice(concat!(module_path!(), "::", stringify!($name)), $quantity).await
        }
    };
}

hundred!(test_on_a_slice);
