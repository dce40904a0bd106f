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

    prune_leaves_other_machines_alone_and_sees_reused_pids_and_bare_networks().await
}

/// Creates (does not start) a container, or a network alone, with `labels`.
async fn leftover(
    engine: &drydock::docker::Engine,
    name: &str,
    labels: std::collections::HashMap<String, String>,
    network_only: bool,
) -> TestResult {
    use drydock::docker::bollard::models::{ContainerCreateBody, NetworkCreateRequest};
    use drydock::docker::bollard::query_parameters::CreateContainerOptionsBuilder;
    if network_only {
        engine
            .docker()
            .create_network(NetworkCreateRequest {
                name: name.to_owned(),
                labels: Some(labels),
                ..Default::default()
            })
            .await?;
    } else {
        let image =
            std::env::var("DRYDOCK_IMAGE_REDIS").unwrap_or_else(|_| "drydock.local/redis:7".into());
        engine
            .docker()
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name(name).build()),
                ContainerCreateBody {
                    image: Some(image),
                    labels: Some(labels),
                    ..Default::default()
                },
            )
            .await?;
    }
    Ok(())
}

/// `prune` judges liveness only where it can: another machine's environment on a shared
/// engine is left alone whatever its pid; a pid now taken by another process (a reused pid) is
/// not the owner; a network or a volume left without any container is seen and removed. (Called by the
/// test above: one test at a time runs `prune`, which sees every test's leftovers.)
async fn prune_leaves_other_machines_alone_and_sees_reused_pids_and_bare_networks() -> TestResult {
    use drydock::identity::{
        host_id, LABEL_HOST, LABEL_INSTANCE, LABEL_OWNER, LABEL_OWNER_STARTED, LABEL_RUN,
    };
    let engine = drydock::docker::Engine::connect().await?;
    let run = format!("prune-{}", uuid::Uuid::new_v4().simple());
    let labels = |instance: &str, host: &str, owner: u32, started: Option<u64>| {
        let mut labels = std::collections::HashMap::from([
            (LABEL_RUN.to_string(), run.clone()),
            (LABEL_INSTANCE.to_string(), instance.to_string()),
            (LABEL_HOST.to_string(), host.to_string()),
            (LABEL_OWNER.to_string(), owner.to_string()),
        ]);
        if let Some(started) = started {
            labels.insert(LABEL_OWNER_STARTED.to_string(), started.to_string());
        }
        labels
    };
    let me = std::process::id();
    let elsewhere = format!("{}-elsewhere", uuid::Uuid::new_v4().simple());
    let reused = format!("{}-reused", uuid::Uuid::new_v4().simple());
    let bare = format!("{}-bare", uuid::Uuid::new_v4().simple());
    let volume = format!("{}-volume", uuid::Uuid::new_v4().simple());
    // Another machine's, with a pid that is dead here: not ours to judge.
    leftover(
        &engine,
        &elsewhere,
        labels(&elsewhere, "another-machine", 999_999, None),
        false,
    )
    .await?;
    // Ours, owned by this test's pid but another start time: the owner is gone.
    leftover(
        &engine,
        &reused,
        labels(&reused, &host_id(), me, Some(1)),
        false,
    )
    .await?;
    // A network alone, of a dead owner of this machine.
    leftover(
        &engine,
        &bare,
        labels(&bare, &host_id(), 999_999, None),
        true,
    )
    .await?;

    // A volume alone, of a dead owner of this machine.
    engine
        .docker()
        .create_volume(drydock::docker::bollard::models::VolumeCreateRequest {
            name: Some(volume.clone()),
            labels: Some(labels(&volume, &host_id(), 999_999, None)),
            ..Default::default()
        })
        .await?;

    let prune = drydock(&["prune"])?;
    let report = String::from_utf8_lossy(&prune.stdout).into_owned();
    assert!(prune.status.success(), "{report}");
    let left = |instance: &str| format!("{LABEL_INSTANCE}={instance}");
    assert_eq!(
        labelled(&left(&elsewhere)).await?.containers.len(),
        1,
        "another machine's environment was pruned: {report}"
    );
    assert!(report.contains("another-machine"), "{report}");
    assert!(
        labelled(&left(&reused)).await?.is_empty(),
        "a reused pid kept a dead owner's environment: {report}"
    );
    assert!(
        labelled(&left(&bare)).await?.is_empty(),
        "a network alone was not seen: {report}"
    );
    assert!(
        labelled(&left(&volume)).await?.is_empty(),
        "a volume alone was not seen: {report}"
    );
    drydock::docker::remove_labelled(&engine, &[left(&elsewhere)]).await?;
    Ok(())
}
