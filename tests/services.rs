//! The service model as tests see it: an owned `Env` and a `Slice` hand out the same handle
//! types and the same variables; errors say what to do even through `Debug`.

use std::{collections::BTreeSet, time::Duration};

use drydock::{
    Env, EnvBuilder, HttpStub, Kafka, KafkaSlice, Postgres, PostgresDb, Redis, RedisDb, Services,
    StubEndpoint, TestResult,
};
use drydock_tests::run_child;

fn all_four() -> EnvBuilder {
    Env::builder()
        .with_postgres(Postgres::default())
        .with_redis(Redis::default())
        .with_kafka(Kafka::default())
        .with_stub(HttpStub::default())
        .grace_period(Duration::from_secs(2))
}

/// The handles of one `Services`, typed: this compiles only if owned and sliced handles are
/// the same types, which is the point.
fn handles(
    services: &Services,
) -> drydock::Result<(PostgresDb, RedisDb, KafkaSlice, StubEndpoint)> {
    Ok((
        services.postgres()?.clone(),
        services.redis()?.clone(),
        services.kafka()?.clone(),
        services.stub()?.clone(),
    ))
}

#[tokio::test]
async fn owned_and_sliced_environments_hand_out_the_same_handles_and_variables() -> TestResult {
    let (env, slice) = tokio::try_join!(all_four().start(), all_four().attach())?;
    let (owned, sliced) = (handles(&env)?, handles(&slice)?);

    // The owned handles use the default scopes; the slice's its own.
    assert_eq!(owned.0.database(), "drydock");
    assert_ne!(sliced.0.database(), "drydock");
    assert_eq!(owned.1.db(), 0);
    assert_eq!(owned.2.prefix(), "");
    assert!(!sliced.2.prefix().is_empty());
    assert_eq!(owned.3.namespace(), None);
    assert!(sliced.3.namespace().is_some());

    // Both work through the same calls.
    for (db, redis) in [(&owned.0, &owned.1), (&sliced.0, &sliced.1)] {
        let pool = db.pool().await?;
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await?;
        assert_eq!(one, 1);
        let mut conn = redis.connection_manager().await?;
        let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
        assert_eq!(pong, "PONG");
    }

    // The same variables, each pointing at its own scope.
    let keys = |vars: std::collections::HashMap<String, String>| -> BTreeSet<String> {
        vars.into_keys().collect()
    };
    let expected: BTreeSet<String> = [
        "DATABASE_URL",
        "REDIS_URL",
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_TOPIC_PREFIX",
        "STUB_URL",
        "STUB_ADMIN_URL",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(keys(env.vars()), expected);
    assert_eq!(keys(slice.vars()), expected);
    assert_eq!(slice.vars()["DATABASE_URL"], sliced.0.url());
    assert_eq!(env.vars()["STUB_URL"], owned.3.url());
    assert_eq!(env.vars()["STUB_ADMIN_URL"], owned.3.admin_url());

    // A slice knows its network too, as an environment does.
    assert!(slice.network().starts_with("drydock-"));

    // What a failing test shows: scopes, how to connect, traffic, each container's log tail;
    // never the generated password.
    let report = slice.report(5).await;
    assert!(
        report.contains(&format!("database: {}", sliced.0.database())),
        "{report}"
    );
    assert!(report.contains("psql -h"), "{report}");
    assert!(
        report.contains(&format!("redis-cli -h {}", sliced.1.host())),
        "{report}"
    );
    assert!(report.contains("traffic via"), "{report}");
    assert!(report.contains("lines of postgres's log"), "{report}");
    assert!(
        !report.contains(sliced.0.password()),
        "a secret in: {report}"
    );
    assert!(
        report.contains("curl -s http://drydock:<masked>@"),
        "{report}"
    );
    let stub_password = sliced.3.admin_credentials().expect("generated");
    assert!(
        !report.contains(stub_password.password()),
        "a secret in: {report}"
    );
    Ok(())
}

/// Run by the test below: fails the way a user's test fails, with `?` on a drydock error.
#[tokio::test]
#[ignore = "run by a_failing_test_prints_the_to_fix_line_through_debug"]
async fn child_fails_with_a_drydock_error() -> drydock::Result<()> {
    Env::builder()
        .with_postgres(Postgres::default().migrations("no/such/migrations"))
        .start()
        .await?;
    Ok(())
}

#[test]
fn a_failing_test_prints_the_to_fix_line_through_debug() {
    let output = run_child(
        "child_fails_with_a_drydock_error",
        &[],
        Duration::from_secs(60),
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{printed}");
    // libtest prints a returned `Err` with `Debug`: it must be the actionable text.
    assert!(printed.contains("no/such/migrations"), "{printed}");
    assert!(printed.contains("to fix: correct the path"), "{printed}");
    assert!(
        !printed.contains("MissingPath {"),
        "a struct dump: {printed}"
    );
}
