//! `drydock ls` and `drydock prune` against real leftovers.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use drydock::{Env, Redis};
use drydock_tests::labelled;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn drydock(args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new(env!("CARGO_BIN_EXE_drydock"))
        .args(args)
        .output()
}

/// Starts an environment in a child process and SIGKILLs it once the environment is up: no
/// `Drop` runs, so its containers stay, owned by a dead pid. Returns the instance label.
fn leave_an_environment_behind() -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let mut child = Command::new(std::env::current_exe()?)
        // A leftover to prune: a process whose reaper is off (as if the machine had died with it).
        .env("DRYDOCK_REAPER", "off")
        .args([
            "child_starts_and_waits",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut instance = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some((_, id)) = line.split_once("STARTED ") {
            instance = Some(id.trim().to_string());
            break;
        }
    }
    child.kill()?; // SIGKILL
    child.wait()?;
    Ok(format!(
        "drydock.instance={}",
        instance.ok_or("the child never started its environment")?
    ))
}

#[tokio::test]
#[ignore = "run by prune_removes_what_dead_processes_left_and_nothing_live, then SIGKILLed"]
async fn child_starts_and_waits() -> TestResult {
    let env = Env::builder().with_redis(Redis::default()).start().await?;
    println!("STARTED {}", env.instance_id());
    tokio::time::sleep(Duration::from_secs(300)).await;
    Ok(())
}

#[tokio::test]
async fn prune_removes_what_dead_processes_left_and_nothing_live() -> TestResult {
    let live = Env::builder().with_redis(Redis::default()).start().await?;
    let live_label = format!("drydock.instance={}", live.instance_id());
    let dead_label = tokio::task::spawn_blocking(leave_an_environment_behind).await??;
    assert_eq!(
        labelled(&dead_label).await?.containers.len(),
        1,
        "the leftover exists"
    );

    let ls = drydock(&["ls"])?;
    let listing = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.status.success(), "{listing}");
    assert!(listing.contains(&live.instance_id()[..12]), "{listing}");
    assert!(
        listing.contains("alive") && listing.contains("gone"),
        "{listing}"
    );

    let dry = drydock(&["prune", "--dry-run"])?;
    assert!(dry.status.success());
    assert_eq!(
        labelled(&dead_label).await?.containers.len(),
        1,
        "dry run removed"
    );

    let prune = drydock(&["prune"])?;
    let report = String::from_utf8_lossy(&prune.stdout);
    assert!(prune.status.success(), "{report}");
    assert!(
        labelled(&dead_label).await?.is_empty(),
        "leftover stays: {report}"
    );
    let live_left = labelled(&live_label).await?;
    assert_eq!(
        live_left.containers.len(),
        1,
        "prune touched a live run: {report}"
    );
    assert_eq!(
        live_left.networks.len(),
        1,
        "prune touched a live run: {report}"
    );

    // The live environment still works.
    let mut redis = live.redis()?.connection_manager().await?;
    redis::cmd("PING").query_async::<String>(&mut redis).await?;
    Ok(())
}
