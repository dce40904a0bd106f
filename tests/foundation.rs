//! The foundation: real PostgreSQL and Redis containers, started and removed by a test.
//!
//! Every test here talks to a real Docker engine and real servers; what is asserted about
//! containers and networks is asked of the Docker API.

use std::time::{Duration, Instant};

use drydock::{Env, Error, Postgres, Redis, ServiceExt};
use drydock_tests::{assert_child_passed, labelled, run_child};
use redis::AsyncCommands;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn instance_label(env: &Env) -> String {
    format!("drydock.instance={}", env.instance_id())
}

/// A spec nobody else in the run uses, so "nothing is left with this spec's label" is about this
/// test alone.
fn unique_postgres(test: &str) -> Postgres {
    Postgres::default().setting(
        "application_name",
        format!("{test}-{}", uuid::Uuid::new_v4()),
    )
}

#[tokio::test]
async fn postgres_and_redis_start_together_and_serve_their_clients() -> TestResult {
    let env = Env::builder()
        .with_postgres(Postgres::default())
        .with_redis(Redis::default())
        .start()
        .await?;

    let pool = env.postgres()?.pool().await?;
    sqlx::query("CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL)")
        .execute(&pool)
        .await?;
    sqlx::query("INSERT INTO orders VALUES (1, 'anchor'), (2, 'rope')")
        .execute(&pool)
        .await?;
    let items: Vec<String> = sqlx::query_scalar("SELECT item FROM orders ORDER BY id")
        .fetch_all(&pool)
        .await?;
    assert_eq!(items, ["anchor", "rope"]);

    // Tuned for tests: durability off.
    for setting in ["fsync", "synchronous_commit", "full_page_writes"] {
        let value: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {setting}")))
            .fetch_one(&pool)
            .await?;
        assert_eq!(value, "off", "{setting}");
    }

    let mut redis = env.redis()?.connection_manager().await?;
    let _: () = redis.set("ship", "ready").await?;
    let _: () = redis.rpush("cargo", &["a", "b"]).await?;
    let ship: String = redis.get("ship").await?;
    let cargo: Vec<String> = redis.lrange("cargo", 0, -1).await?;
    assert_eq!(ship, "ready");
    assert_eq!(cargo, ["a", "b"]);

    let vars = env.vars();
    assert_eq!(vars.get("DATABASE_URL"), Some(&env.postgres()?.url()));
    assert_eq!(vars.get("REDIS_URL"), Some(&env.redis()?.url()));

    let resources = labelled(&instance_label(&env)).await?;
    assert_eq!(resources.containers.len(), 2, "{resources:?}");
    assert_eq!(resources.networks, [env.network().to_string()]);
    Ok(())
}

#[tokio::test]
async fn published_ports_listen_on_loopback_only() -> TestResult {
    let env = Env::builder().with_redis(Redis::default()).start().await?;
    let engine = drydock::docker::Engine::connect().await?;
    let filters = std::collections::HashMap::from([("label", vec![instance_label(&env)])]);
    let containers = engine
        .docker()
        .list_containers(Some(
            drydock::docker::bollard::query_parameters::ListContainersOptionsBuilder::new()
                .filters(&filters)
                .build(),
        ))
        .await?;
    let ports: Vec<_> = containers
        .iter()
        .flat_map(|c| c.ports.clone().unwrap_or_default())
        .filter(|p| p.public_port.is_some())
        .collect();
    assert!(!ports.is_empty(), "no published port: {containers:?}");
    for port in ports {
        assert_eq!(port.ip.as_deref(), Some("127.0.0.1"), "{port:?}");
    }
    Ok(())
}

#[tokio::test]
async fn two_environments_at_once_share_nothing() -> TestResult {
    let spec = Env::builder()
        .with_postgres(Postgres::default())
        .with_redis(Redis::default());
    let (a, b) = tokio::join!(spec.clone().start(), spec.start());
    let (a, b) = (a?, b?);

    assert_ne!(a.instance_id(), b.instance_id());
    assert_ne!(a.network(), b.network());
    assert_ne!(a.postgres()?.port(), b.postgres()?.port());
    assert_ne!(a.redis()?.port(), b.redis()?.port());
    assert_ne!(a.postgres()?.password(), b.postgres()?.password());

    let pool_a = a.postgres()?.pool().await?;
    let pool_b = b.postgres()?.pool().await?;
    sqlx::query("CREATE TABLE only_in_a (n int)")
        .execute(&pool_a)
        .await?;
    let in_b: Option<String> = sqlx::query_scalar("SELECT to_regclass('only_in_a')::text")
        .fetch_one(&pool_b)
        .await?;
    assert_eq!(in_b, None, "a table created in A is visible in B");

    let mut redis_a = a.redis()?.connection_manager().await?;
    let mut redis_b = b.redis()?.connection_manager().await?;
    let _: () = redis_a.set("key", "a").await?;
    let in_b: Option<String> = redis_b.get("key").await?;
    assert_eq!(in_b, None, "a key set in A is visible in B");

    // The other environment's credentials do not open this one.
    let crossed = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(
            a.postgres()?
                .connect_options()
                .password(b.postgres()?.password()),
        )
        .await;
    assert!(crossed.is_err(), "B's password opened A");
    Ok(())
}

#[tokio::test]
async fn dropping_an_environment_removes_its_containers_and_network() -> TestResult {
    let env = Env::builder()
        .with_postgres(Postgres::default())
        .with_redis(Redis::default())
        .start()
        .await?;
    let label = instance_label(&env);
    let before = labelled(&label).await?;
    assert_eq!(before.containers.len(), 2, "{before:?}");
    assert_eq!(before.networks.len(), 1, "{before:?}");

    drop(env);
    let after = labelled(&label).await?;
    assert!(after.is_empty(), "left behind after drop: {after:?}");
    Ok(())
}

#[tokio::test]
async fn explicit_teardown_removes_everything() -> TestResult {
    let env = Env::builder().with_redis(Redis::default()).start().await?;
    let label = instance_label(&env);
    env.teardown().await?;
    let after = labelled(&label).await?;
    assert!(after.is_empty(), "left behind after teardown: {after:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_test_body_still_removes_its_environment() -> TestResult {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let body = tokio::spawn(async move {
        let env = Env::builder().with_redis(Redis::default()).start().await?;
        let _ = tx.send(instance_label(&env));
        if env.instance_id().len() > 1 {
            panic!("the test body fails while the environment is alive");
        }
        Ok::<_, Error>(())
    });
    let outcome = body.await;
    let label = rx.await?;
    assert!(
        outcome.is_err_and(|e| e.is_panic()),
        "the body did not panic"
    );
    let after = labelled(&label).await?;
    assert!(after.is_empty(), "left behind after a panic: {after:?}");
    Ok(())
}

#[test]
fn a_panic_on_a_current_thread_runtime_removes_the_environment_too() -> TestResult {
    // `#[tokio::test]`'s default runtime: the drop runs on the one thread that drives everything,
    // so teardown must not need that runtime.
    let (tx, rx) = std::sync::mpsc::channel();
    let body = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let env = Env::builder().with_redis(Redis::default()).start().await?;
            let _ = tx.send(instance_label(&env));
            if env.instance_id().len() > 1 {
                panic!("the test body fails while the environment is alive");
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
    });
    if let Ok(outcome) = body.join() {
        panic!("the body did not panic: {outcome:?}");
    }
    let label = rx.recv_timeout(Duration::from_secs(5))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let after = runtime.block_on(labelled(&label))?;
    assert!(after.is_empty(), "left behind after a panic: {after:?}");
    Ok(())
}

#[tokio::test]
async fn a_service_that_never_becomes_ready_fails_with_the_named_timeout() -> TestResult {
    // A real server that listens on its Unix socket only: running, never reachable.
    let bound = Duration::from_secs(4);
    let builder = Env::builder().with_postgres(
        unique_postgres("never-ready")
            .setting("listen_addresses", "")
            .ready_timeout(bound),
    );
    let spec_label = format!("drydock.env={}", builder.identity()?);
    let started = Instant::now();
    let outcome = builder.start().await;
    let elapsed = started.elapsed();

    let Err(error) = outcome else {
        panic!("a server with no TCP listener became ready");
    };
    let Error::NotReady {
        ref service,
        bound: reported,
        ref last_error,
        ref log_tail,
        ..
    } = error
    else {
        panic!("expected NotReady, got: {error}");
    };
    assert_eq!(service, "postgres");
    assert_eq!(reported, bound);
    assert!(!last_error.is_empty());
    assert!(
        log_tail.contains("ready to accept connections"),
        "the error carries the container's log: {log_tail}"
    );
    let message = error.to_string();
    assert!(message.contains("postgres was not ready"), "{message}");
    assert!(message.contains("4s"), "{message}");
    // The bound holds: start-up plus the bound plus one probe, not a minute of retries.
    assert!(
        elapsed < bound + Duration::from_secs(20),
        "took {elapsed:?}"
    );
    let left = labelled(&spec_label).await?;
    assert!(left.is_empty(), "left behind after the timeout: {left:?}");
    Ok(())
}

#[tokio::test]
async fn a_server_that_exits_fails_fast_with_its_log() -> TestResult {
    let builder =
        Env::builder().with_postgres(unique_postgres("exits").setting("no_such_parameter", "1"));
    let spec_label = format!("drydock.env={}", builder.identity()?);
    let started = Instant::now();
    let outcome = builder.start().await;
    let elapsed = started.elapsed();

    let Err(error) = outcome else {
        panic!("a server with a bad setting started");
    };
    let message = error.to_string();
    assert!(
        matches!(
            error,
            Error::ContainerExited { ref service, .. } if service == "postgres"
        ),
        "expected ContainerExited, got: {message}"
    );
    assert!(message.contains("no_such_parameter"), "{message}");
    assert!(
        elapsed < Duration::from_secs(30),
        "waited {elapsed:?} for a dead container, the ready bound is 60 s"
    );
    let left = labelled(&spec_label).await?;
    assert!(left.is_empty(), "left behind after the failure: {left:?}");
    Ok(())
}

#[tokio::test]
async fn a_missing_image_fails_fast_with_a_clear_error() -> TestResult {
    let run = format!("missing-image-{}", uuid::Uuid::new_v4().simple());
    let run_for_child = run.clone();
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        run_child(
            "child_missing_image",
            &[
                (
                    "DRYDOCK_IMAGE_REDIS",
                    Some("drydock.local/does-not-exist:1"),
                ),
                ("DRYDOCK_RUN_ID", Some(&run_for_child)),
            ],
            Duration::from_secs(90),
        )
    })
    .await?;
    assert_child_passed("child_missing_image", &output);
    // The person waiting is told what is being pulled.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("drydock: pulling drydock.local/does-not-exist:1"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    let left = labelled(&format!("drydock.run={run}")).await?;
    assert!(left.is_empty(), "left behind: {left:?}");
    Ok(())
}

#[tokio::test]
#[ignore = "run by a_missing_image_fails_fast_with_a_clear_error in a child process"]
async fn child_missing_image() {
    let outcome = Env::builder()
        .with_postgres(Postgres::default())
        .with_redis(Redis::default())
        .start()
        .await;
    let Err(error) = outcome else {
        panic!("started from an image that does not exist");
    };
    let message = error.to_string();
    assert!(
        matches!(
            error,
            Error::ImageUnavailable { ref service, .. } if service == "redis"
        ),
        "{message}"
    );
    assert!(
        message.contains("drydock.local/does-not-exist:1"),
        "{message}"
    );
    assert!(message.contains("DRYDOCK_IMAGE_REDIS"), "{message}");
    assert!(message.contains("images build"), "{message}");
}

#[tokio::test]
async fn no_docker_engine_is_one_clear_error_within_seconds() -> TestResult {
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(|| {
        run_child(
            "child_no_engine",
            &[("DOCKER_HOST", Some("unix:///nonexistent/docker.sock"))],
            Duration::from_secs(30),
        )
    })
    .await?;
    assert_child_passed("child_no_engine", &output);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
#[ignore = "run by no_docker_engine_is_one_clear_error_within_seconds in a child process"]
async fn child_no_engine() {
    let started = Instant::now();
    let outcome = Env::builder().with_redis(Redis::default()).start().await;
    let Err(error) = outcome else {
        panic!("started without an engine");
    };
    let message = error.to_string();
    assert!(
        matches!(error, Error::DockerUnavailable { .. }),
        "{message}"
    );
    assert!(
        message.contains("DOCKER_HOST=unix:///nonexistent/docker.sock"),
        "{message}"
    );
    assert!(message.contains("to fix"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
}

/// Started by the test below as a process of its own, which it then kills.
#[tokio::test]
#[ignore = "run by a_killed_owner_leaves_nothing_within_ten_seconds"]
async fn child_holds_an_environment_until_killed() {
    let env = Env::builder()
        .with_redis(Redis::default())
        .start()
        .await
        .expect("the environment starts");
    println!("STARTED {}", instance_label(&env));
    tokio::time::sleep(Duration::from_secs(120)).await;
}

/// SIGKILL of a process holding an owned `Env` — once it is up, and while it starts — leaves
/// nothing: its reaper removes the containers and network within 10 s, with no later run and
/// no `drydock prune`.
#[tokio::test]
async fn a_killed_owner_leaves_nothing_within_ten_seconds() -> TestResult {
    for kill_after in [
        None,
        Some(Duration::from_millis(150)),
        Some(Duration::from_millis(600)),
    ] {
        let run = format!("reaper-{}", uuid::Uuid::new_v4().simple());
        let label = format!("drydock.run={run}");
        let exe = std::env::current_exe()?;
        let mut child = std::process::Command::new(exe)
            .args([
                "child_holds_an_environment_until_killed",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env("DRYDOCK_RUN_ID", &run)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        match kill_after {
            // Up and running: wait for its line, and for its container.
            None => {
                let stdout = child.stdout.take().ok_or("no stdout")?;
                let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
                let started = lines.find(|l| l.as_ref().is_ok_and(|l| l.starts_with("STARTED")));
                assert!(started.is_some(), "the child never started its environment");
                assert!(!labelled(&label).await?.is_empty(), "nothing to reap");
            }
            // During the start: whatever exists by then.
            Some(delay) => std::thread::sleep(delay),
        }
        child.kill()?; // SIGKILL
        child.wait()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = labelled(&label).await?;
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "killed {kill_after:?} after start, 10 s later still there: {left:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// Redis asks for the password its URL carries: a client on loopback without it (any other
/// user of the machine) is refused; the handed-out URL authenticates.
#[tokio::test]
async fn redis_refuses_clients_without_the_generated_password() -> TestResult {
    let env = Env::builder().with_redis(Redis::default()).start().await?;
    let db = env.redis()?;
    assert!(!db.server().password().is_empty());
    assert!(
        !format!("{db:?}").contains(db.server().password()),
        "Debug shows the password"
    );
    let bare = format!("redis://{}:{}/0", db.host(), db.port());
    let mut anonymous = redis::Client::open(bare)?
        .get_multiplexed_async_connection()
        .await?;
    let refused: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut anonymous).await;
    let error = refused.expect_err("a client without the password was served");
    assert!(error.to_string().contains("NOAUTH"), "{error}");
    let mut client = db.connection_manager().await?;
    let pong: String = redis::cmd("PING").query_async(&mut client).await?;
    assert_eq!(pong, "PONG");
    Ok(())
}

/// The generated password's SCRAM hash has few rounds (logins cost a debug-built client
/// microseconds, not the 4096 rounds' ≈ 24 ms), and authentication is as strict as before: a
/// wrong password is refused. The stand-in is PostgreSQL 17, as the default image.
#[tokio::test]
async fn postgres_logins_are_cheap_and_still_refuse_a_wrong_password() -> TestResult {
    use sqlx::{ConnectOptions, Connection};
    let env = Env::builder()
        .with_postgres(Postgres::default())
        .start()
        .await?;
    let server = env.postgres()?.server();
    let mut conn = env.postgres()?.connect_options().connect().await?;
    let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
        .fetch_one(&mut conn)
        .await?;
    assert!(version >= 170_000, "the stand-in runs PostgreSQL {version}");
    let hash: String =
        sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = current_user")
            .fetch_one(&mut conn)
            .await?;
    assert!(
        hash.starts_with("SCRAM-SHA-256$16:"),
        "the hash has the default rounds: {}",
        hash.split(':').next().unwrap_or_default()
    );
    conn.close().await?;

    let mut logins = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let conn = env.postgres()?.connect_options().connect().await?;
        logins.push(started.elapsed());
        conn.close().await?;
    }
    logins.sort();
    println!(
        "login p50 {:?} (debug build, through the proxy)",
        logins[10]
    );

    let wrong = env
        .postgres()?
        .connect_options()
        .password(&format!("{}x", server.password()))
        .connect()
        .await;
    let error = wrong
        .expect_err("a wrong password was accepted")
        .to_string();
    assert!(error.contains("password authentication failed"), "{error}");
    env.teardown().await?;
    Ok(())
}
