//! One environment per run, shared by every test process, a slice for each test.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use drydock::{Env, EnvBuilder, Error, Postgres, Redis};
use drydock_tests::{assert_child_passed, keeper_of, labelled, run_child, signal};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const GRACE: Duration = Duration::from_secs(2);

/// Waits until nothing carries `label`, or fails after `bound`.
async fn assert_removed_within(label: &str, bound: Duration) -> TestResult {
    let deadline = Instant::now() + bound;
    loop {
        let left = labelled(label).await?;
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("still there after {bound:?}: {left:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn schema_dir(files: &[(&str, &str)]) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    for (name, sql) in files {
        std::fs::write(dir.path().join(name), sql)?;
    }
    Ok(dir)
}

fn with_migrations(dir: &Path) -> EnvBuilder {
    Env::builder()
        .with_postgres(Postgres::default().migrations(dir))
        .grace_period(GRACE)
}

#[tokio::test]
async fn sixteen_processes_attaching_at_once_get_one_environment() -> TestResult {
    let run = format!("sixteen-{}", uuid::Uuid::new_v4().simple());
    let children: Vec<_> = (0..16)
        .map(|_| {
            let run = run.clone();
            tokio::task::spawn_blocking(move || {
                run_child(
                    "child_attach_and_report",
                    &[("DRYDOCK_RUN_ID", Some(&run))],
                    Duration::from_secs(120),
                )
            })
        })
        .collect();
    let mut reports = Vec::new();
    for child in children {
        let output = child.await?;
        assert_child_passed("child_attach_and_report", &output);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let report = stdout
            .lines()
            .find_map(|l| l.split_once("ATTACHED "))
            .map(|(_, report)| report.to_string())
            .ok_or_else(|| format!("no report in:\n{stdout}"))?;
        reports.push(report);
    }
    reports.dedup();
    assert_eq!(reports.len(), 1, "different environments: {reports:?}");
    assert_removed_within(
        &format!("drydock.run={run}"),
        GRACE + Duration::from_secs(20),
    )
    .await
}

#[tokio::test]
#[ignore = "run 16 times at once by sixteen_processes_attaching_at_once_get_one_environment"]
async fn child_attach_and_report() -> TestResult {
    let slice = Env::builder()
        .with_postgres(Postgres::default())
        .with_redis(Redis::default())
        .grace_period(GRACE)
        .attach()
        .await?;
    let labels = format!("drydock.instance={}", slice.instance_id());
    let containers = labelled(&labels).await?.containers;
    assert_eq!(containers.len(), 2, "{containers:?}");
    // The servers themselves: each slice reaches them through proxies of its own.
    let postgres = slice.postgres()?.server().direct();
    let redis = slice.redis()?.server().direct();
    println!(
        "ATTACHED {} postgres={}:{} redis={}:{}",
        slice.instance_id(),
        postgres.host(),
        postgres.port(),
        redis.host(),
        redis.port()
    );
    // Overlap with the other children, as parallel tests do.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

#[tokio::test]
async fn slices_of_one_environment_are_isolated() -> TestResult {
    let dir = schema_dir(&[("1_items.sql", "CREATE TABLE items (name text);")])?;
    let spec = with_migrations(dir.path()).with_redis(Redis::default());
    let (a, b) = tokio::join!(spec.clone().attach(), spec.attach());
    let (a, b) = (a?, b?);
    assert_eq!(a.instance_id(), b.instance_id(), "one environment");
    assert_ne!(a.postgres()?.database(), b.postgres()?.database());
    assert_ne!(a.redis()?.db(), b.redis()?.db());

    let pool_a = a.postgres()?.pool().await?;
    let pool_b = b.postgres()?.pool().await?;
    sqlx::query("INSERT INTO items VALUES ('from a')")
        .execute(&pool_a)
        .await?;
    let in_b: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(&pool_b)
        .await?;
    assert_eq!(in_b, 0, "B sees A's row");

    let mut redis_a = a.redis()?.connection_manager().await?;
    let mut redis_b = b.redis()?.connection_manager().await?;
    redis::cmd("SET")
        .arg("k")
        .arg("a")
        .query_async::<()>(&mut redis_a)
        .await?;
    let in_b: Option<String> = redis::cmd("GET").arg("k").query_async(&mut redis_b).await?;
    assert_eq!(in_b, None, "B sees A's key");
    Ok(())
}

#[tokio::test]
async fn a_released_slice_leaves_nothing_for_the_next_test() -> TestResult {
    let dir = schema_dir(&[("1_items.sql", "CREATE TABLE items (name text);")])?;
    let spec = with_migrations(dir.path()).with_redis(Redis::default());
    let first = spec.clone().attach().await?;
    let (database, db) = (
        first.postgres()?.database().to_string(),
        first.redis()?.db(),
    );
    let mut redis = first.redis()?.connection_manager().await?;
    redis::cmd("SET")
        .arg("left")
        .arg("behind")
        .query_async::<()>(&mut redis)
        .await?;
    // The server itself: the slice's proxy ends with the slice.
    let server = first.postgres()?.server().direct();
    drop(first);

    // The keeper drops the database and flushes the Redis database in the background.
    let admin = server.connect_options_for("postgres");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&admin).await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&database)
                .fetch_one(&mut conn)
                .await?;
        if !exists {
            break;
        }
        assert!(Instant::now() < deadline, "{database} was not dropped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut raw = server_redis(&spec).await?.client_for_db(db)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Option<String> = redis::cmd("GET").arg("left").query(&mut raw)?;
        if left.is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "redis db {db} was not flushed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn server_redis(spec: &EnvBuilder) -> drydock::Result<drydock::RedisServer> {
    let slice = spec.clone().attach().await?;
    // The server itself: the slice's proxy ends with the slice.
    Ok(slice.redis()?.server().direct())
}

#[tokio::test]
async fn changing_a_migration_gives_the_new_schema() -> TestResult {
    let dir = schema_dir(&[("1_schema.sql", "CREATE TABLE before_change (n int);")])?;
    let old = with_migrations(dir.path()).attach().await?;
    let table = |name: &'static str| format!("SELECT to_regclass('{name}') IS NOT NULL");
    let pool = old.postgres()?.pool().await?;
    let has: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(table("before_change")))
        .fetch_one(&pool)
        .await?;
    assert!(has);

    std::fs::write(
        dir.path().join("1_schema.sql"),
        "CREATE TABLE after_change (n int);",
    )?;
    let new = with_migrations(dir.path()).attach().await?;
    assert_ne!(old.instance_id(), new.instance_id(), "a new environment");
    let pool = new.postgres()?.pool().await?;
    let (before, after): (bool, bool) = (
        sqlx::query_scalar(sqlx::AssertSqlSafe(table("before_change")))
            .fetch_one(&pool)
            .await?,
        sqlx::query_scalar(sqlx::AssertSqlSafe(table("after_change")))
            .fetch_one(&pool)
            .await?,
    );
    assert!(!before && after, "the changed migration's schema");
    Ok(())
}

#[tokio::test]
async fn a_failing_migration_names_the_file_and_leaves_nothing() -> TestResult {
    let dir = schema_dir(&[
        ("1_good.sql", "CREATE TABLE fine (n int);"),
        ("2_broken.sql", "CREATE TABEL oops (n int);"),
    ])?;
    let spec = with_migrations(dir.path());
    let identity = spec.identity()?;
    let Err(error) = spec.attach().await else {
        panic!("a broken migration was applied");
    };
    let message = error.to_string();
    assert!(matches!(error, Error::Shared { .. }), "{message}");
    assert!(
        message.contains("2_broken.sql"),
        "names the file: {message}"
    );
    assert!(
        message.contains("syntax error"),
        "the database's message: {message}"
    );
    assert_removed_within(
        &format!("drydock.env={identity}"),
        GRACE + Duration::from_secs(20),
    )
    .await
}

#[tokio::test]
async fn a_spec_that_cannot_start_fails_every_attacher_with_the_same_error() -> TestResult {
    let spec = Env::builder()
        .with_postgres(
            Postgres::default()
                .setting("no_such_parameter", "1")
                .setting("application_name", uuid::Uuid::new_v4().to_string()),
        )
        .grace_period(GRACE);
    let identity = spec.identity()?;
    let attempts = futures::future::join_all((0..4).map(|_| spec.clone().attach())).await;
    let messages: Vec<String> = attempts
        .into_iter()
        .map(|a| match a {
            Ok(_) => panic!("a broken spec started"),
            Err(e) => e.to_string(),
        })
        .collect();
    assert!(messages[0].contains("no_such_parameter"), "{}", messages[0]);
    // One start, one failure, reported to all: the log tail inside is byte-identical.
    assert!(
        messages.iter().all(|m| m == &messages[0]),
        "different errors: {messages:#?}"
    );
    assert_removed_within(
        &format!("drydock.env={identity}"),
        GRACE + Duration::from_secs(20),
    )
    .await
}

#[tokio::test]
async fn a_keeper_never_removes_an_owned_environment_of_the_same_spec() -> TestResult {
    // Same run, same spec: only the scope label tells them apart.
    let spec = Env::builder()
        .with_redis(Redis::default().databases(17))
        .with_postgres(
            Postgres::default().setting("application_name", uuid::Uuid::new_v4().to_string()),
        )
        .grace_period(Duration::from_millis(500));
    let owned = spec.clone().start().await?;
    let slice = spec.clone().attach().await?;
    let shared_label = format!("drydock.instance={}", slice.instance_id());
    drop(slice);
    // The keeper follows the run (this test's runner), so it is ended here as `drydock down`
    // ends it: its exit sweep is what must spare the owned environment.
    let identity = spec.identity()?;
    let ended = tokio::task::spawn_blocking(move || {
        drydock::shared::down(&drydock::identity::run_id(), Some(&identity))
    })
    .await??;
    assert_eq!(ended.len(), 1, "one keeper ended: {ended:?}");
    assert_removed_within(&shared_label, Duration::from_secs(20)).await?;

    let left = labelled(&format!("drydock.instance={}", owned.instance_id())).await?;
    assert_eq!(
        left.containers.len(),
        2,
        "the keeper removed an owned environment"
    );
    let pool = owned.postgres()?.pool().await?;
    sqlx::query("SELECT 1").execute(&pool).await?;
    Ok(())
}

/// Run by the test below with `DRYDOCK_KEEPER_DIR` set, as a shell might leave it.
#[tokio::test]
#[ignore = "run by a_stray_keeper_variable_does_not_turn_a_test_binary_into_a_keeper"]
async fn child_runs_as_a_test() -> TestResult {
    println!("RAN AS A TEST");
    Ok(())
}

#[test]
fn a_stray_keeper_variable_does_not_turn_a_test_binary_into_a_keeper() {
    let dir = tempfile::tempdir().expect("a dir");
    let output = run_child(
        "child_runs_as_a_test",
        &[(
            "DRYDOCK_KEEPER_DIR",
            Some(&dir.path().display().to_string()),
        )],
        Duration::from_secs(30),
    );
    assert_child_passed("child_runs_as_a_test", &output);
    assert!(String::from_utf8_lossy(&output.stdout).contains("RAN AS A TEST"));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("unset it in your shell"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_zero_grace_period_is_refused_with_the_fix() -> TestResult {
    let started = Instant::now();
    let error = Env::builder()
        .with_redis(Redis::default())
        .grace_period(Duration::ZERO)
        .attach()
        .await
        .expect_err("a grace period no test can attach within");
    let message = format!("{error:?}");
    assert!(
        message.contains("grace_period(0ns)") && message.contains("to fix: use at least 100ms"),
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    Ok(())
}

/// Run by the test below, with TMPDIR pointing somewhere bad.
#[tokio::test]
#[ignore = "run by run_directories_must_exist_and_be_private"]
async fn child_attach_with_this_tmpdir() -> TestResult {
    let error = Env::builder()
        .with_redis(Redis::default())
        .attach()
        .await
        .expect_err("a bad TMPDIR");
    println!("ERROR {error:?}");
    Ok(())
}

#[test]
fn run_directories_must_exist_and_be_private() {
    let attach_with = |tmpdir: &str| {
        let output = run_child(
            "child_attach_with_this_tmpdir",
            &[("TMPDIR", Some(tmpdir)), ("XDG_RUNTIME_DIR", None)],
            Duration::from_secs(60),
        );
        assert_child_passed("child_attach_with_this_tmpdir", &output);
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let missing = attach_with("/nonexistent/drydock-test");
    assert!(
        missing.contains("does not exist") && missing.contains("TMPDIR"),
        "{missing}"
    );
    assert!(
        !std::path::Path::new("/nonexistent").exists(),
        "nothing was created"
    );

    // A base directory anybody may write to (another user could have made it) is refused.
    let dir = tempfile::tempdir().expect("a dir");
    let uid = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .expect("uid");
    let base = dir.path().join(format!("drydock-{uid}"));
    std::fs::create_dir(&base).expect("base");
    std::fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod");
    let open = attach_with(&dir.path().display().to_string());
    assert!(
        open.contains("not private") && open.contains("777"),
        "{open}"
    );
}

#[tokio::test]
async fn two_migrations_of_one_version_are_refused_naming_both_before_anything_starts() -> TestResult
{
    let dir = schema_dir(&[
        ("1_first.sql", "CREATE TABLE a (n int);"),
        ("1_second.sql", "CREATE TABLE b (n int);"),
    ])?;
    let started = Instant::now();
    let error = with_migrations(dir.path())
        .start()
        .await
        .expect_err("a duplicate version");
    let message = format!("{error:?}");
    assert!(
        message.contains("1_first.sql") && message.contains("1_second.sql"),
        "{message}"
    );
    assert!(message.contains("version 1"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "before any container"
    );
    Ok(())
}

/// Run by the test below, in a base directory of its own.
#[tokio::test]
#[ignore = "run by a_keeper_that_ends_cleanly_removes_its_run_directory"]
async fn child_attach_once() -> TestResult {
    let slice = Env::builder()
        .with_redis(Redis::default())
        .grace_period(GRACE)
        .attach()
        .await?;
    drop(slice);
    Ok(())
}

#[tokio::test]
async fn a_keeper_that_ends_cleanly_removes_its_run_directory() -> TestResult {
    let runtime = tempfile::tempdir()?;
    let run = format!("rundir-{}", uuid::Uuid::new_v4().simple());
    let output = tokio::task::spawn_blocking({
        let (runtime, run) = (runtime.path().display().to_string(), run.clone());
        move || {
            run_child(
                "child_attach_once",
                &[
                    ("XDG_RUNTIME_DIR", Some(&runtime)),
                    ("DRYDOCK_RUN_ID", Some(&run)),
                ],
                Duration::from_secs(120),
            )
        }
    })
    .await?;
    assert_child_passed("child_attach_once", &output);
    let base = runtime.path().join("drydock");
    // Beside the run directories: `logs`, the keepers' logs, which outlive them.
    let run_dirs = || -> std::io::Result<usize> {
        Ok(std::fs::read_dir(&base)?
            .flatten()
            .filter(|e| e.file_name() != "logs")
            .count())
    };
    assert_eq!(run_dirs()?, 1, "the run directory while its keeper lives");
    assert_removed_within(
        &format!("drydock.run={run}"),
        GRACE + Duration::from_secs(20),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while run_dirs()? > 0 {
        assert!(
            Instant::now() < deadline,
            "the run directory stayed after its keeper ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = std::fs::read_dir(base.join("logs"))?.count();
    assert_eq!(logs, 1, "the keeper's log stays after its run directory");
    Ok(())
}

/// Run twice by the test below, as `cargo test` runs two test binaries one after another.
#[tokio::test]
#[ignore = "run by one_environment_serves_a_cargo_test_run_across_gaps_longer_than_the_grace_period"]
async fn child_attach_as_a_test_binary() -> TestResult {
    let slice = Env::builder()
        .with_redis(Redis::default().databases(18))
        .grace_period(GRACE)
        .attach()
        .await?;
    let mut containers = labelled(&format!("drydock.instance={}", slice.instance_id()))
        .await?
        .containers;
    containers.sort();
    println!(
        "ATTACHED instance={} run={} owner={:?} containers={containers:?}",
        slice.instance_id(),
        drydock::identity::run_id(),
        drydock::identity::run_owner().map(|o| o.pid),
    );
    Ok(())
}

/// `cargo test` runs test binaries one after another, as its children, with gaps between them
/// (a slow binary, a link): a process named `cargo` here runs this binary twice, with a gap
/// twice the grace period between the two, and both get the one environment, which ends once
/// that process is gone. The keeper's log is kept after it ends.
#[tokio::test]
async fn one_environment_serves_a_cargo_test_run_across_gaps_longer_than_the_grace_period(
) -> TestResult {
    let runtime = tempfile::tempdir()?;
    let bin = tempfile::tempdir()?;
    // Named `cargo` (its /proc comm), as the runner of `cargo test` is: a shell, symlinked.
    let cargo = bin.path().join("cargo");
    std::os::unix::fs::symlink("/bin/sh", &cargo)?;
    let exe = std::env::current_exe()?;
    let gap = GRACE * 2;
    let script = format!(
        "\"$0\" child_attach_as_a_test_binary --exact --ignored --nocapture --test-threads=1 \
         && sleep {} \
         && \"$0\" child_attach_as_a_test_binary --exact --ignored --nocapture --test-threads=1; \
         echo \"cargo done: $?\"",
        gap.as_secs()
    );
    let mut command = std::process::Command::new(&cargo);
    command
        .arg("-c")
        .arg(script)
        .arg(&exe)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .env_remove("DRYDOCK_RUN_ID")
        .env_remove("DRYDOCK_RUN_OWNER")
        .env_remove("NEXTEST_RUN_ID")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let (pid, output) = tokio::task::spawn_blocking(move || {
        let child = command.spawn()?;
        let pid = child.id();
        // Bounded by the test's own timeout (nextest's slow-timeout), and by the children's.
        child.wait_with_output().map(|o| (pid, o))
    })
    .await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains("cargo done: 0"),
        "both test binaries passed:\n{stdout}\n{stderr}"
    );
    let reports: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_once("ATTACHED ").map(|(_, r)| r))
        .collect();
    assert_eq!(reports.len(), 2, "two attaches:\n{stdout}");
    assert_eq!(
        reports[0], reports[1],
        "one environment (instance, run, owner, containers) for both binaries"
    );
    let run = format!("run=ppid-{pid}-");
    assert!(
        reports[0].contains(&run) && reports[0].contains(&format!("owner=Some({pid})")),
        "the run and its owner are the `cargo` process {pid}: {}",
        reports[0]
    );
    let instance = reports[0]
        .split_whitespace()
        .find_map(|w| w.strip_prefix("instance="))
        .ok_or("no instance")?;
    // `cargo` is gone: the environment goes within the grace period (and its teardown).
    assert_removed_within(
        &format!("drydock.instance={instance}"),
        GRACE + Duration::from_secs(20),
    )
    .await?;
    let logs: Vec<_> = std::fs::read_dir(runtime.path().join("drydock").join("logs"))?
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(logs.len(), 1, "one keeper's log for the run: {logs:?}");
    let log = std::fs::read_to_string(&logs[0])?;
    assert_eq!(log.matches("ready (").count(), 1, "started once:\n{log}");
    assert!(
        log.contains(&format!("the run's process {pid} ended")),
        "ended after the run:\n{log}"
    );
    Ok(())
}

/// One test of the kill loop below: attaches while keepers die, and uses its slice across a
/// keeper's death.
#[tokio::test]
#[ignore = "run many times by a_keeper_killed_at_random_moments_fails_no_test"]
async fn child_attach_use_and_hold() -> TestResult {
    let slice = Env::builder()
        .with_postgres(Postgres::default().setting("application_name", "kill-loop"))
        .with_redis(Redis::default().databases(20))
        .grace_period(GRACE)
        .attach()
        .await?;
    let pool = slice.postgres()?.pool().await?;
    let mut redis = slice.redis()?.connection_manager().await?;
    for round in 0..3 {
        sqlx::query("CREATE TABLE IF NOT EXISTS t (n int)")
            .execute(&pool)
            .await?;
        sqlx::query("INSERT INTO t VALUES ($1)")
            .bind(round)
            .execute(&pool)
            .await?;
        redis::cmd("SET")
            .arg("round")
            .arg(round)
            .query_async::<()>(&mut redis)
            .await?;
        // Held across keeper deaths.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(&pool)
        .await?;
    assert_eq!(rows, 3, "a slice of its own");
    println!("ATTACHED {}", slice.instance_id());
    Ok(())
}

/// SIGKILL of the keeper at random moments, while tests attach and use their slices: no test
/// fails. An attach in flight retries against the replacement; the replacement (started by
/// the dead keeper's reaper, or by the next attach) adopts the environment and the slices
/// tests hold, so nothing is swept from under them.
#[tokio::test]
async fn a_keeper_killed_at_random_moments_fails_no_test() -> TestResult {
    let run = format!("kill-loop-{}", uuid::Uuid::new_v4().simple());
    let identity = Env::builder()
        .with_postgres(Postgres::default().setting("application_name", "kill-loop"))
        .with_redis(Redis::default().databases(20))
        .identity()?;
    let owner = std::process::id().to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (run, owner, stop) = (run.clone(), owner.clone(), stop.clone());
            tokio::task::spawn_blocking(move || {
                let mut outputs = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    outputs.push(run_child(
                        "child_attach_use_and_hold",
                        &[
                            ("DRYDOCK_RUN_ID", Some(&run)),
                            ("DRYDOCK_RUN_OWNER", Some(&owner)),
                        ],
                        Duration::from_secs(180),
                    ));
                }
                outputs
            })
        })
        .collect();
    // Kill loop: the keeper of this run, whichever it is now, at random moments.
    let mut killed = Vec::new();
    let began = Instant::now();
    while killed.len() < 6 && began.elapsed() < Duration::from_secs(150) {
        // 1.5–5 s: sometimes while the environment starts, mostly while tests use it.
        let wait = 1500 + u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * 14;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let status = tokio::task::spawn_blocking({
            let identity = identity.clone();
            move || keeper_of(&identity)
        })
        .await?;
        if let Some(status) = status.filter(|s| s.run == run && !killed.contains(&s.pid)) {
            signal(status.pid, "-KILL")?;
            killed.push(status.pid);
        }
    }
    // A few more tests after the last kill.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut instances = Vec::new();
    let mut ran = 0;
    for worker in workers {
        for output in worker.await? {
            assert_child_passed("child_attach_use_and_hold", &output);
            ran += 1;
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            instances.extend(
                stdout
                    .lines()
                    .filter_map(|l| l.split_once("ATTACHED ").map(|(_, i)| i.to_string())),
            );
        }
    }
    instances.sort();
    instances.dedup();
    println!(
        "{ran} tests passed, {} keepers killed in {:?}; instances: {instances:?}",
        killed.len(),
        began.elapsed()
    );
    assert!(killed.len() >= 3, "only {} keepers killed", killed.len());
    assert_eq!(
        instances.len(),
        1,
        "adopted, never started anew: {instances:?}"
    );
    let ended = tokio::task::spawn_blocking({
        let run = run.clone();
        move || drydock::shared::down(&run, None)
    })
    .await??;
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_removed_within(&format!("drydock.run={run}"), Duration::from_secs(30)).await
}

/// `docker restart` of the shared PostgreSQL container mid-run (its published port may move,
/// its data on tmpfs is gone): the keeper notices, reads the ports again and prepares the
/// template anew, and a later test's attach and query pass.
#[tokio::test]
async fn a_restarted_shared_postgres_serves_later_tests() -> TestResult {
    let dir = schema_dir(&[("1_items.sql", "CREATE TABLE items (name text);")])?;
    let spec = items_env(dir.path());
    let before = spec.clone().attach().await?;
    let old = before.postgres()?.server().direct();
    let pool = before.postgres()?.pool().await?;
    sqlx::query("INSERT INTO items VALUES ('before')")
        .execute(&pool)
        .await?;
    pool.close().await;
    let (engine, id) = service_container(&before, "postgres").await?;
    engine
        .docker()
        .restart_container(
            &id,
            Some(
                drydock::docker::bollard::query_parameters::RestartContainerOptionsBuilder::new()
                    .t(2)
                    .build(),
            ),
        )
        .await?;
    let restarted = Instant::now();
    let after = spec.clone().attach().await?;
    let new = after.postgres()?.server().direct();
    println!(
        "restarted: {}:{} -> {}:{}, attach after {:?}",
        old.host(),
        old.port(),
        new.host(),
        new.port(),
        restarted.elapsed()
    );
    assert_prepared_anew(&before, &after).await?;
    wait_for_keeper_log(&spec.identity()?, "restarted").await
}

/// A shared PostgreSQL environment no other test of the run shares (a unique setting).
fn postgres_env_of_its_own() -> EnvBuilder {
    Env::builder()
        .with_postgres(
            Postgres::default().setting("application_name", uuid::Uuid::new_v4().to_string()),
        )
        .grace_period(GRACE)
}

/// A shared PostgreSQL environment of its own (a unique setting) whose one migration makes an
/// `items` table.
fn items_env(migrations: &Path) -> EnvBuilder {
    Env::builder()
        .with_postgres(
            Postgres::default()
                .migrations(migrations)
                .setting("application_name", uuid::Uuid::new_v4().to_string()),
        )
        .grace_period(GRACE)
}

/// `after`, attached once the container came back, is of the same environment as `before`, and
/// its database is the migrated template anew: `items` is there, and empty.
async fn assert_prepared_anew(before: &drydock::Slice, after: &drydock::Slice) -> TestResult {
    assert_eq!(
        after.instance_id(),
        before.instance_id(),
        "the same environment"
    );
    let pool = after.postgres()?.pool().await?;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(&pool)
        .await?;
    assert_eq!(rows, 0, "the migrated template, anew");
    Ok(())
}

/// `docker pause` of the shared PostgreSQL container: a test attaching meanwhile waits (it would
/// get a server that does not answer), and gets its slice once the container is unpaused, with
/// the data kept.
#[tokio::test]
async fn a_paused_shared_postgres_holds_attaches_until_it_is_unpaused() -> TestResult {
    let spec = postgres_env_of_its_own();
    let before = spec.clone().attach().await?;
    let (engine, id) = service_container(&before, "postgres").await?;
    engine.docker().pause_container(&id).await?;
    let identity = spec.identity()?;
    wait_for_keeper_log(&identity, "was paused").await?;

    let attaching = tokio::spawn(spec.clone().attach());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !attaching.is_finished(),
        "an attach went through while paused"
    );
    engine.docker().unpause_container(&id).await?;
    let after = tokio::time::timeout(Duration::from_secs(30), attaching).await???;
    assert_eq!(
        after.instance_id(),
        before.instance_id(),
        "the same environment"
    );
    let pool = after.postgres()?.pool().await?;
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await?;
    assert_eq!(one, 1);
    wait_for_keeper_log(&identity, "was unpaused").await
}

/// `docker stop` of the shared PostgreSQL container mid-run: the keeper starts it again and
/// prepares it anew (its tmpfs data is gone), and the next test's attach and query pass.
#[tokio::test]
async fn a_stopped_shared_postgres_is_started_again_for_later_tests() -> TestResult {
    let dir = schema_dir(&[("1_items.sql", "CREATE TABLE items (name text);")])?;
    let spec = items_env(dir.path());
    let before = spec.clone().attach().await?;
    let (engine, id) = service_container(&before, "postgres").await?;
    engine
        .docker()
        .stop_container(
            &id,
            Some(
                drydock::docker::bollard::query_parameters::StopContainerOptionsBuilder::new()
                    .t(2)
                    .build(),
            ),
        )
        .await?;
    let identity = spec.identity()?;
    wait_for_keeper_log(&identity, "starting it again").await?;
    let after = spec.clone().attach().await?;
    assert_prepared_anew(&before, &after).await?;
    wait_for_keeper_log(&identity, "ready again").await
}

/// Waits, at most 30 s, until the log of the keeper of `identity` says `what`.
async fn wait_for_keeper_log(identity: &str, what: &str) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let id = identity.to_string();
        let log = tokio::task::spawn_blocking(move || keeper_of(&id))
            .await?
            .map(|s| std::fs::read_to_string(s.log).unwrap_or_default())
            .unwrap_or_default();
        if log.contains(what) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(
                format!("the keeper's log did not say {what:?} within 30 s:\n{log}").into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The engine, and the id of the container of `service` in the environment `slice` is cut from.
async fn service_container(
    slice: &drydock::Slice,
    service: &str,
) -> Result<(drydock::docker::Engine, String), Box<dyn std::error::Error + Send + Sync>> {
    let engine = drydock::docker::Engine::connect().await?;
    let filters = std::collections::HashMap::from([(
        "label",
        vec![
            format!("drydock.instance={}", slice.instance_id()),
            format!("drydock.service={service}"),
        ],
    )]);
    let containers = engine
        .docker()
        .list_containers(Some(
            drydock::docker::bollard::query_parameters::ListContainersOptionsBuilder::new()
                .filters(&filters)
                .build(),
        ))
        .await?;
    let id = containers
        .first()
        .and_then(|c| c.id.clone())
        .ok_or_else(|| format!("no {service} container"))?;
    Ok((engine, id))
}

/// The container of a shared service removed under a run (`docker rm -f`, or someone's prune):
/// the keeper notices, and the next attach fails within seconds with an error naming the
/// service and what happened to it, instead of a pool timeout naming a dead port.
#[tokio::test]
async fn a_removed_shared_container_is_named_to_the_next_attach() -> TestResult {
    let spec = postgres_env_of_its_own();
    let before = spec.clone().attach().await?;
    let (engine, id) = service_container(&before, "postgres").await?;
    engine
        .docker()
        .remove_container(
            &id,
            Some(
                drydock::docker::bollard::query_parameters::RemoveContainerOptionsBuilder::new()
                    .force(true)
                    .v(true)
                    .build(),
            ),
        )
        .await?;
    let removed = Instant::now();
    let error = match spec.clone().attach().await {
        Ok(_) => return Err("a slice of an environment whose server was removed".into()),
        Err(e) => e.to_string(),
    };
    assert!(
        removed.elapsed() < Duration::from_secs(15),
        "told after {:?}",
        removed.elapsed()
    );
    assert!(
        error.contains("postgres") && error.contains("was removed") && error.contains("To fix"),
        "{error}"
    );
    drop(before);
    Ok(())
}

/// A keeper that accepts and never answers (here stopped with SIGSTOP) costs an attaching
/// test a status round trip, not the whole slice bound: it is named by pid, killed (it is
/// this user's keeper of this environment), and replaced by one that adopts its environment,
/// so a slice cut before keeps working.
#[tokio::test]
async fn a_stopped_keeper_is_named_killed_and_replaced_within_seconds() -> TestResult {
    let spec = postgres_env_of_its_own();
    let identity = spec.identity()?;
    let first = spec.clone().attach().await?;
    let status = tokio::task::spawn_blocking({
        let identity = identity.clone();
        move || keeper_of(&identity)
    })
    .await?
    .ok_or("no keeper")?;
    signal(status.pid, "-STOP")?;
    let began = Instant::now();
    let second = spec.clone().attach().await;
    let took = began.elapsed();
    if second.is_err() {
        let _ = signal(status.pid, "-KILL");
    }
    let second = second?;
    assert!(took < Duration::from_secs(12), "took {took:?}");
    assert_eq!(second.instance_id(), first.instance_id(), "adopted");
    let log = std::fs::read_to_string(&status.log)?;
    assert!(
        log.contains(&format!("pid {}", status.pid)) && log.contains("killed it"),
        "named and killed:\n{log}"
    );
    // The slice cut by the stopped keeper still works.
    let pool = first.postgres()?.pool().await?;
    sqlx::query("SELECT 1").execute(&pool).await?;
    println!("replaced in {took:?}");
    Ok(())
}
