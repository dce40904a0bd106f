//! `drydock up` and `drydock down`: as a nextest setup script, and from a shell.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use drydock_tests::{labelled, redis_get, redis_set, DownAtEnd};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const DRYDOCK: &str = env!("CARGO_BIN_EXE_drydock");

/// Waits until nothing carries `label`, or fails after `bound`.
async fn assert_removed_within(label: &str, bound: Duration) -> TestResult {
    let deadline = Instant::now() + bound;
    loop {
        let left = labelled(label).await?;
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("still there {bound:?} after the run: {left:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A command with this test run's own identity removed: no run id, no runner's variables.
fn clean(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("NEXTEST_")
            || key.starts_with("DRYDOCK_RUN_")
            || (key.starts_with("CARGO_") && key != "CARGO_HOME")
        {
            command.env_remove(&*key);
        }
    }
    command
}

/// Runs `command`, killing it after `bound`.
fn run_bounded(mut command: Command, bound: Duration) -> std::io::Result<Output> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + bound;
    while child.try_wait()?.is_none() {
        if Instant::now() >= deadline {
            child.kill()?;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output()
}

/// `drydock <args>` in run `run`, the run held while this test's process lives (not only while
/// `drydock up` does); what it printed, and whether it succeeded (its output on failure).
async fn drydock_in(run: &str, args: &[&str], bound: Duration) -> Result<String, String> {
    let mut command = clean(DRYDOCK);
    command
        .args(args)
        .env("DRYDOCK_RUN_ID", run)
        .env("DRYDOCK_RUN_OWNER", std::process::id().to_string());
    let output = tokio::task::spawn_blocking(move || run_bounded(command, bound))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("drydock {args:?}: {e}"))?;
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(printed)
    } else {
        Err(format!(
            "drydock {args:?} failed:\n{printed}\n{}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn parse(record: &str) -> BTreeMap<String, String> {
    record
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `cargo nextest run` on a tiny crate (tests/nextest-probe) whose `.config/nextest.toml` is the
/// README's: `drydock up redis` as its setup script. Three tests in two binaries each reach
/// Redis at once through `REDIS_URL` and note the Redis server's own run id: one server, started
/// once, before the first test, seen by every test; nothing of the run left once nextest ends.
#[tokio::test]
async fn a_nextest_setup_script_starts_the_dependencies_once_for_every_test() -> TestResult {
    let work = tempfile::tempdir()?;
    let krate = work.path().join("probe");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nextest-probe"),
        &krate,
    )?;
    let probes = work.path().join("probes");
    std::fs::create_dir(&probes)?;
    let runtime = work.path().join("runtime");
    std::fs::create_dir(&runtime)?;
    // The setup script is `drydock`, found on PATH as a user's installed one would be.
    let bin_dir = PathBuf::from(DRYDOCK)
        .parent()
        .ok_or("bin dir")?
        .to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))?;
    let mut command = clean("cargo");
    command
        .args(["nextest", "run", "--no-fail-fast", "--status-level", "all"])
        .current_dir(&krate)
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", work.path().join("target"))
        .env("PROBE_DIR", &probes)
        .env("XDG_RUNTIME_DIR", &runtime);
    let output =
        tokio::task::spawn_blocking(move || run_bounded(command, Duration::from_secs(240)))
            .await??;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "cargo nextest run failed:\n{stderr}"
    );

    // Before the first test: nextest ran the script to its end before it started any test.
    let setup_done = stderr
        .find("SETUP PASS")
        .ok_or_else(|| format!("no setup script ran:\n{stderr}"))?;
    let first_test = stderr
        .find("nextest-probe::")
        .ok_or_else(|| format!("no test ran:\n{stderr}"))?;
    assert!(
        setup_done < first_test,
        "a test before the setup:\n{stderr}"
    );

    // Every test saw the variables and one Redis server, started once.
    let mut records = Vec::new();
    for name in ["first_a", "first_b", "second_a"] {
        let record = std::fs::read_to_string(probes.join(name))
            .map_err(|e| format!("test {name} left no record ({e}):\n{stderr}"))?;
        records.push(parse(&record));
    }
    for key in ["run", "instance", "redis_address", "redis_server_run"] {
        let seen: std::collections::BTreeSet<_> = records.iter().map(|r| &r[key]).collect();
        assert_eq!(seen.len(), 1, "every test saw one {key}: {records:#?}");
    }
    let run = records[0]["run"].clone();
    assert!(
        stderr.contains(&format!("Nextest run ID {run}")),
        "the run id is nextest's run: {run}\n{stderr}"
    );
    let logs: Vec<_> = std::fs::read_dir(runtime.join("drydock").join("logs"))?
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(logs.len(), 1, "one keeper for the run: {logs:?}");
    let log = std::fs::read_to_string(&logs[0])?;
    assert_eq!(log.matches("ready (").count(), 1, "started once:\n{log}");

    // Nothing of the run once nextest is gone (its grace period, 5 s, and the teardown).
    assert_removed_within(&format!("drydock.run={run}"), Duration::from_secs(30)).await?;
    Ok(())
}

/// Run by the test below: a test of the run attaching with the spec `drydock up redis` names.
#[tokio::test]
#[ignore = "run by up_keeps_the_environment_until_down_removes_it"]
async fn child_attach_redis() -> TestResult {
    let slice = drydock::Env::builder()
        .with_redis(drydock::Redis::default())
        .attach()
        .await?;
    println!("ATTACHED {}", slice.instance_id());
    Ok(())
}

/// From a shell: `drydock up` prints the variables (and writes them to `--env-file`), the
/// environment answers at them, a test attaching with the same spec gets a slice of it, and
/// `drydock down` returns once it is gone.
#[tokio::test]
async fn up_keeps_the_environment_until_down_removes_it() -> TestResult {
    let work = tempfile::tempdir()?;
    let env_file = work.path().join("env");
    let run = format!("up-down-{}", uuid::Uuid::new_v4().simple());
    let me = std::process::id().to_string();
    let env_file_arg = env_file.to_string_lossy().into_owned();
    let printed = drydock_in(
        &run,
        &["up", "redis", "--env-file", &env_file_arg],
        Duration::from_secs(120),
    )
    .await?;
    let vars = parse(&std::fs::read_to_string(&env_file)?);
    assert_eq!(
        vars,
        parse(&printed),
        "the same variables in the file and on stdout"
    );
    assert_eq!(vars.get("DRYDOCK_RUN_ID"), Some(&run));
    assert_eq!(vars.get("DRYDOCK_RUN_OWNER"), Some(&me));
    let instance = format!("drydock.instance={}", vars["DRYDOCK_INSTANCE"]);

    // `drydock up` has exited; its keeper holds the environment.
    let client = redis::Client::open(vars["REDIS_URL"].as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async::<()>(&mut conn)
        .await?;
    assert_eq!(labelled(&instance).await?.containers.len(), 1);

    // A test of the run that attaches with the same spec gets a slice of this environment.
    let child = tokio::task::spawn_blocking({
        let (run, me) = (run.clone(), me.clone());
        move || {
            drydock_tests::run_child(
                "child_attach_redis",
                &[
                    ("DRYDOCK_RUN_ID", Some(&run)),
                    ("DRYDOCK_RUN_OWNER", Some(&me)),
                ],
                Duration::from_secs(60),
            )
        }
    })
    .await?;
    drydock_tests::assert_child_passed("child_attach_redis", &child);
    let attached = String::from_utf8_lossy(&child.stdout);
    assert!(
        attached.contains(&format!("ATTACHED {}", vars["DRYDOCK_INSTANCE"])),
        "the attaching test got another environment:\n{attached}"
    );

    let said = drydock_in(&run, &["down"], Duration::from_secs(120)).await?;
    assert!(said.contains("removed the environment"), "{said}");
    assert!(
        labelled(&instance).await?.is_empty(),
        "gone when `drydock down` returns"
    );
    let again = drydock_in(&run, &["down"], Duration::from_secs(30)).await?;
    assert!(again.contains("no environment of run"), "{again}");
    Ok(())
}

/// `KIND:NAME` starts several services of a kind, each under its name: `drydock up
/// redis:cache redis:sessions` exports each one's variables prefixed with its name, each
/// answers at its own, and `drydock down` with the same arguments removes them.
#[tokio::test]
async fn up_names_several_services_of_a_kind() -> TestResult {
    let run = format!("up-named-{}", uuid::Uuid::new_v4().simple());
    let services = ["redis:cache", "redis:sessions"];
    // However the test ends, `drydock down` (a second time after the test's own: a no-op).
    let _down = DownAtEnd(run.clone());
    let up = [&["up"][..], &services[..]].concat();
    let printed = drydock_in(&run, &up, Duration::from_secs(120)).await?;
    let vars = parse(&printed);
    assert!(!vars.contains_key("REDIS_URL"), "{vars:?}");
    let (cache, sessions) = (&vars["CACHE_REDIS_URL"], &vars["SESSIONS_REDIS_URL"]);
    // Two servers: a key set in one is not in the other.
    redis_set(cache, "k", "cached").await?;
    let other = redis_get(sessions, "k").await?;
    assert_eq!(other, None, "a key of the cache server in the sessions one");
    let instance = format!("drydock.instance={}", vars["DRYDOCK_INSTANCE"]);
    assert_eq!(labelled(&instance).await?.containers.len(), 2);

    let down = [&["down"][..], &services[..]].concat();
    let said = drydock_in(&run, &down, Duration::from_secs(120)).await?;
    assert!(said.contains("removed the environment"), "{said}");
    assert!(
        labelled(&instance).await?.is_empty(),
        "gone when `drydock down` returns"
    );
    Ok(())
}
