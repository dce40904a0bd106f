//! The harness: `#[drydock::test]` with injected arguments, rstest fixtures, and failures that
//! explain themselves (a deliberately failing test, ignored, run again by a test here that
//! reads its output).

use std::{process::Command, time::Duration};

use drydock::{
    fault::Toxic, redis::aio::ConnectionManager, sqlx::PgPool, Env, EnvBuilder, Postgres, Redis,
    Slice, TestResult,
};
use redis::AsyncCommands;
use rstest::{fixture, rstest};

fn postgres_and_redis() -> EnvBuilder {
    Env::builder()
        .with_postgres(Postgres::default())
        .with_redis(Redis::default())
}

// ---- #[drydock::test] --------------------------------------------------------------------

/// No `env`: the arguments' types bring their services (PostgreSQL, Redis) with them.
#[drydock::test]
async fn arguments_bring_their_services(pool: PgPool, mut redis: ConnectionManager) -> TestResult {
    let (answer,): (i32,) = sqlx::query_as("SELECT 41 + 1").fetch_one(&pool).await?;
    assert_eq!(answer, 42);
    let keys: Vec<String> = redis.keys("*").await?;
    assert!(
        keys.is_empty(),
        "a slice's Redis database starts empty: {keys:?}"
    );
    let () = redis.set("k", "v").await?;
    Ok(())
}

/// `env = function`, and the slice itself by reference.
#[drydock::test(env = postgres_and_redis)]
async fn a_named_environment_and_the_slice(slice: &Slice) -> TestResult {
    assert!(slice.vars().contains_key("DATABASE_URL"));
    assert!(slice.vars().contains_key("REDIS_URL"));
    let pool = slice.postgres()?.pool().await?;
    sqlx::query("CREATE TABLE mine (id int)")
        .execute(&pool)
        .await?;
    Ok(())
}

/// Two tests of the same spec get slices of their own: a table made by one is not in the other.
#[drydock::test(env = postgres_and_redis)]
async fn slices_are_isolated(pool: PgPool) {
    let tables: Vec<(String,)> =
        sqlx::query_as("SELECT tablename::text FROM pg_tables WHERE tablename = 'mine'")
            .fetch_all(&pool)
            .await
            .expect("pg_tables answers");
    assert!(
        tables.is_empty(),
        "another test's table leaked in: {tables:?}"
    );
}

#[drydock::test]
#[should_panic(expected = "the test's own panic")]
async fn should_panic_sees_the_tests_panic(_pool: PgPool) {
    panic!("the test's own panic");
}

#[drydock::test(env = postgres_and_redis)]
#[ignore = "run by the tests below, which read its report"]
async fn deliberately_failing(slice: &Slice, pool: PgPool) -> TestResult {
    let _slow = slice
        .fault("postgres")?
        .add(Toxic::latency(Duration::from_millis(1)))?;
    sqlx::query("SELECT 1").execute(&pool).await?;
    Err("the deliberate failure".into())
}

#[tokio::test]
#[ignore = "run by the tests below, which read its report"]
async fn deliberately_panicking_plain_tokio_test() {
    let slice = postgres_and_redis().attach().await.expect("attached");
    let pool = slice
        .postgres()
        .expect("postgres")
        .pool()
        .await
        .expect("a pool");
    sqlx::query("SELECT 1")
        .execute(&pool)
        .await
        .expect("SELECT 1");
    panic!("the deliberate panic");
}

/// Runs one ignored test of this binary by its exact name; its whole output.
fn run_ignored(name: &str) -> (bool, String) {
    run_exact(name, &["--ignored"])
}

/// Runs one test of this binary by its exact name, with `args`; its whole output.
fn run_exact(name: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(std::env::current_exe().expect("the test binary's path"))
        .args(["--exact", name, "--test-threads", "1"])
        .args(args)
        .env_remove("DRYDOCK_SHOW_SECRETS")
        .output()
        .expect("the test binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn assert_report(text: &str, failure: &str) {
    for expected in [
        failure,
        "drydock: the failing test's dependencies",
        "postgres (postgres)",
        "database: ",
        "connect: PGPASSWORD=<masked",
        "psql -h 127.0.0.1",
        "redis-cli -h 127.0.0.1",
        "traffic via 127.0.0.1:",
        "postgres's log since the slice was cut",
        "end of drydock's report",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn a_failing_attribute_test_prints_its_report() {
    let (passed, text) = run_ignored("deliberately_failing");
    assert!(!passed, "the deliberate failure failed nothing:\n{text}");
    assert_report(&text, "the deliberate failure");
    // The query the test made crossed the postgres boundary: the traffic line counts it.
    assert!(text.contains("round trips"), "{text}");
}

#[test]
fn a_plain_tokio_test_that_panics_with_a_slice_prints_its_report() {
    let (passed, text) = run_ignored("deliberately_panicking_plain_tokio_test");
    assert!(!passed, "the deliberate panic failed nothing:\n{text}");
    assert_report(&text, "the deliberate panic");
}

#[test]
fn a_passing_test_prints_no_report() {
    let (passed, text) = run_exact("slices_are_isolated", &[]);
    assert!(passed, "{text}");
    assert!(text.contains("test slices_are_isolated ... ok"), "{text}");
    assert!(
        !text.contains("drydock: the failing test's dependencies"),
        "{text}"
    );
}

// ---- rstest ------------------------------------------------------------------------------

/// A slice as an rstest fixture: `#[future(awt)]` awaits it for the test.
#[fixture]
async fn slice() -> Slice {
    postgres_and_redis()
        .attach()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[rstest]
#[case::ada("ada", 3)]
#[case::grace("grace", 5)]
#[tokio::test]
async fn rstest_cases_each_get_a_slice(
    #[future(awt)] slice: Slice,
    #[case] name: &str,
    #[case] length: i64,
) -> TestResult {
    let pool = slice.postgres()?.pool().await?;
    sqlx::query("CREATE TABLE users (name text)")
        .execute(&pool)
        .await?;
    sqlx::query("INSERT INTO users VALUES ($1)")
        .bind(name)
        .execute(&pool)
        .await?;
    let (stored,): (i64,) = sqlx::query_as("SELECT sum(length(name)) FROM users")
        .fetch_one(&pool)
        .await?;
    assert_eq!(stored, length, "each case has a database of its own");
    Ok(())
}

// ---- DRYDOCK_KEEP=on-failure ---------------------------------------------------------------

/// A failing test under `DRYDOCK_KEEP=on-failure` leaves exactly its slice, with its
/// environment: reachable at the printed address after the test process ended, listed by the
/// keeper, and removed by the printed command (`drydock down --run …`, which calls this).
#[tokio::test]
async fn keep_on_failure_leaves_exactly_the_failing_slice_until_down() -> TestResult {
    let run = format!("keep-{}", uuid::Uuid::new_v4().simple());
    let output = Command::new(std::env::current_exe()?)
        .args(["--exact", "deliberately_failing", "--ignored"])
        .env("DRYDOCK_KEEP", "on-failure")
        .env("DRYDOCK_SHOW_SECRETS", "1")
        .env("DRYDOCK_RUN_ID", &run)
        .env_remove("DRYDOCK_RUN_OWNER")
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains(&format!("drydock down --run {run}")),
        "no removal command in:\n{text}"
    );
    let url = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("DATABASE_URL="))
        .ok_or_else(|| format!("no DATABASE_URL in:\n{text}"))?;

    // Reachable after its test process ended: the slice's own database, still there.
    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(url).await?;
    let (database,): (String,) = sqlx::query_as("SELECT current_database()")
        .fetch_one(&mut connection)
        .await?;
    assert!(
        url.ends_with(&format!("/{database}")),
        "{url} vs {database}"
    );
    sqlx::Connection::close(connection).await?;

    // Exactly its slice is kept; no lease is open.
    let statuses: Vec<drydock::shared::Status> = drydock::shared::keepers()
        .into_iter()
        .filter_map(|(_, status)| status.ok())
        .filter(|status| status.run == run)
        .collect();
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    assert_eq!(statuses[0].leases, 0, "{statuses:?}");
    assert_eq!(statuses[0].kept.len(), 1, "{statuses:?}");
    assert!(
        statuses[0].kept[0].ends_with("deliberately_failing"),
        "{statuses:?}"
    );

    // The printed command removes it, and everything of the run.
    let ended = tokio::task::spawn_blocking({
        let run = run.clone();
        move || drydock::shared::down(&run, None)
    })
    .await??;
    assert_eq!(ended.len(), 1);
    let left = drydock_tests::labelled(&format!("drydock.run={run}")).await?;
    assert!(left.is_empty(), "left after down: {left:?}");
    Ok(())
}
