//! The service model as tests see it: an owned `Env` and a `Slice` hand out the same handle
//! types and the same variables; errors say what to do even through `Debug`.

use std::{collections::BTreeSet, time::Duration};

use sqlx::Connection;

use drydock::{
    stub::{Response, Stub},
    Env, EnvBuilder, Error, HttpStub, Kafka, KafkaSlice, Postgres, PostgresDb, Redis, RedisDb,
    ServiceExt, Services, StubEndpoint, TestResult,
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

/// Two stubbed dependencies, each a stub server of its own under its name.
fn payments_and_rates() -> EnvBuilder {
    Env::builder()
        .with_stub(HttpStub::default().named("payments"))
        .with_stub(HttpStub::default().named("rates"))
        .grace_period(Duration::from_secs(2))
}

/// Mounts `GET /who` answering `answer` on the stub `name` of `services`.
async fn mount_who(services: &Services, name: &str, answer: &str) -> TestResult {
    let stub = services.named::<HttpStub>(name)?.connect().await?;
    stub.mount(Stub::get("/who").respond(Response::status(200).body(answer.to_string())))
        .await?;
    Ok(())
}

/// What `GET <url>/who` answers, or the error that kept it from answering.
async fn who(url: &str) -> Result<String, reqwest::Error> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    client.get(format!("{url}/who")).send().await?.text().await
}

/// Services of one kind side by side, by name: each its own server, variables and faults, so
/// that one stubbed dependency can go down while the other answers (a partial outage).
#[tokio::test]
async fn two_stubs_by_name_are_two_dependencies_that_fail_apart() -> TestResult {
    let env = payments_and_rates().start().await?;
    mount_who(&env, "payments", "payments").await?;
    mount_who(&env, "rates", "rates").await?;
    let vars = env.vars();
    let keys: BTreeSet<&str> = vars.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "PAYMENTS_STUB_URL",
            "PAYMENTS_STUB_ADMIN_URL",
            "RATES_STUB_URL",
            "RATES_STUB_ADMIN_URL"
        ])
    );
    let (payments, rates) = (&vars["PAYMENTS_STUB_URL"], &vars["RATES_STUB_URL"]);
    assert_eq!(who(payments).await?, "payments");
    assert_eq!(who(rates).await?, "rates");
    // Two containers, each reached by its name on the network.
    let internal =
        |name| -> drydock::Result<String> { Ok(env.named::<HttpStub>(name)?.internal_url()) };
    assert!(
        internal("payments")?.ends_with("-payments:8080"),
        "{}",
        internal("payments")?
    );
    assert!(internal("rates")?.ends_with("-rates:8080"));
    // No stub of the kind's own name: the error says which name was asked for.
    match env.stub() {
        Err(e @ Error::ServiceNotInEnv { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("no stub service (it has: payments (stub), rates (stub))"),
                "{text}"
            );
            assert!(text.contains(".named::<…>(\"payments\")"), "{text}");
        }
        other => panic!("expected ServiceNotInEnv, got {other:?}"),
    }

    // Payments goes down; rates still answers.
    let down = env.fault("payments")?.down();
    assert!(who(payments).await.is_err(), "payments answered while down");
    assert_eq!(who(rates).await?, "rates");
    drop(down);
    assert_eq!(who(payments).await?, "payments");
    Ok(())
}

/// In a shared environment, each slice has its own namespace on each named stub, and a second
/// PostgreSQL server by name gets its own clones, variables and faults beside the first.
#[tokio::test]
async fn named_services_are_sliced_each_on_its_own() -> TestResult {
    let spec = || {
        payments_and_rates()
            .with_postgres(Postgres::default())
            .with_postgres(Postgres::default().named("audit"))
    };
    let (first, second) = tokio::try_join!(spec().attach(), spec().attach())?;
    mount_who(&first, "payments", "first's payments").await?;
    mount_who(&second, "payments", "second's payments").await?;
    assert_eq!(
        who(&first.vars()["PAYMENTS_STUB_URL"]).await?,
        "first's payments"
    );
    assert_eq!(
        who(&second.vars()["PAYMENTS_STUB_URL"]).await?,
        "second's payments"
    );
    assert_ne!(
        first.named::<HttpStub>("rates")?.namespace(),
        second.named::<HttpStub>("rates")?.namespace()
    );

    // Two servers: the slice's clone on each, under each name's variable.
    let (main, audit) = (first.postgres()?, first.named::<Postgres>("audit")?);
    // Each through the slice's own proxy; behind them, two containers' published ports.
    assert_ne!(
        main.server().direct().port(),
        audit.server().direct().port()
    );
    assert_eq!(first.vars()["DATABASE_URL"], main.url());
    assert_eq!(first.vars()["AUDIT_DATABASE_URL"], audit.url());
    let audit_pool = audit.pool().await?;
    sqlx::query("CREATE TABLE audited (what text)")
        .execute(&audit_pool)
        .await?;
    let main_pool = main.pool().await?;
    let seen: Option<String> = sqlx::query_scalar("SELECT to_regclass('audited')::text")
        .fetch_one(&main_pool)
        .await?;
    assert_eq!(seen, None, "a table of the audit server in the main one");

    // The audit server goes down for this slice; the main one still answers.
    let _down = first.fault("audit")?.down();
    let options = audit.connect_options();
    let connect = sqlx::postgres::PgConnection::connect_with(&options);
    let refused = tokio::time::timeout(Duration::from_secs(10), connect).await;
    assert!(
        matches!(refused, Ok(Err(_))),
        "connecting to the audit server while it is down did not fail at once"
    );
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&main_pool).await?;
    assert_eq!(one, 1);
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
