//! Helpers for drydock's own tests: ask Docker what exists, and run a test in a child process.

use std::{collections::HashMap, process::Output, time::Duration};

use drydock::docker::{
    bollard::query_parameters::{
        ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    },
    Engine,
};

/// Containers, networks and volumes carrying `label` (`key=value`), as the Docker API lists them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// Container names.
    pub containers: Vec<String>,
    /// Network names.
    pub networks: Vec<String>,
    /// Volume names.
    pub volumes: Vec<String>,
}

impl Resources {
    /// Whether nothing carries the label.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty() && self.volumes.is_empty()
    }
}

/// Lists what carries `label`.
pub async fn labelled(label: &str) -> drydock::Result<Resources> {
    let engine = Engine::connect().await?;
    let docker = engine.docker();
    let filters = HashMap::from([("label", vec![label])]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| docker_error("listing containers", e))?;
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .map_err(|e| docker_error("listing networks", e))?;
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .map_err(|e| docker_error("listing volumes", e))?;
    Ok(Resources {
        containers: containers
            .into_iter()
            .flat_map(|c| c.names.unwrap_or_default())
            .collect(),
        networks: networks.into_iter().filter_map(|n| n.name).collect(),
        volumes: volumes
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect(),
    })
}

fn docker_error(what: &str, e: drydock::docker::bollard::errors::Error) -> drydock::Error {
    drydock::Error::Connect {
        service: "docker".into(),
        endpoint: what.into(),
        source: e.into(),
    }
}

/// Runs the ignored test `name` of the current test binary in a child process with `env`
/// changed (`None` removes a variable), bounded by `bound`.
///
/// Tests that need another process environment (no Docker engine, another image override) run
/// this way, so they never change the environment that parallel tests read.
pub fn run_child(name: &str, env: &[(&str, Option<&str>)], bound: Duration) -> Output {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let mut command = std::process::Command::new(exe);
    command.args([
        name,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (key, value) in env {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
    let deadline = std::time::Instant::now() + bound;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            _ => {
                let _ = child.kill();
                break;
            }
        }
    }
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {name}: {e}"));
    let ran = String::from_utf8_lossy(&output.stdout);
    assert!(
        ran.contains("1 passed") || ran.contains("1 failed"),
        "the child test {name} did not run (bound {bound:?}):\n{ran}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The keeper of the run with this identity, as `drydock ls` sees it: its pid and log.
pub fn keeper_of(identity: &str) -> Option<drydock::shared::Status> {
    drydock::shared::keepers()
        .into_iter()
        .filter_map(|(_, status)| status.ok())
        .find(|s| s.identity == identity)
}

/// Sends `signal` (`-KILL`, `-STOP`, …) to process `pid`.
pub fn signal(pid: u32, signal: &str) -> std::io::Result<()> {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "kill {signal} {pid}: {status}"
        )))
    }
}

/// Ends run `0` (`drydock down --run`) when dropped, however the test ends: a failed test's
/// kept slice, or a `drydock up`'s held one, would otherwise outlive it.
pub struct DownAtEnd(pub String);

impl Drop for DownAtEnd {
    fn drop(&mut self) {
        if let Err(e) = drydock::shared::down(&self.0, None) {
            eprintln!("drydock down --run {}: {e}", self.0);
        }
    }
}

/// `SET key value` on the Redis server and database of `url`.
pub async fn redis_set(url: &str, key: &str, value: &str) -> redis::RedisResult<()> {
    let mut redis = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async(&mut redis)
        .await
}

/// `GET key` on the Redis server and database of `url`.
pub async fn redis_get(url: &str, key: &str) -> redis::RedisResult<Option<String>> {
    let mut redis = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    redis::cmd("GET").arg(key).query_async(&mut redis).await
}

/// Whether a child run passed; on failure, its output is in the panic message.
pub fn assert_child_passed(name: &str, output: &Output) {
    assert!(
        output.status.success(),
        "child test {name} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What a one-off container printed and how it exited.
#[derive(Debug)]
pub struct Ran {
    /// Its exit code.
    pub exit_code: i64,
    /// Its output (stdout and stderr).
    pub output: String,
}

/// Runs `entrypoint args` in `image` on `network`, as a system under test in a container would
/// run, and waits (bounded) for it to exit. The container carries `labels`, so the environment's
/// teardown removes it even if this test fails half-way; it is removed here when it exits.
pub async fn run_on_network(
    image: &str,
    network: &str,
    labels: HashMap<String, String>,
    command: &[&str],
    bound: Duration,
) -> drydock::Result<Ran> {
    use drydock::docker::bollard::{
        errors::Error as DockerError,
        models::{ContainerCreateBody, HostConfig},
        query_parameters::{LogsOptionsBuilder, RemoveContainerOptionsBuilder},
    };
    use futures::StreamExt;

    let engine = Engine::connect().await?;
    let docker = engine.docker();
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: Some(vec![command[0].to_string()]),
        cmd: Some(command[1..].iter().map(|s| s.to_string()).collect()),
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: Some(network.to_string()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = docker
        .create_container(None, body)
        .await
        .map_err(|e| docker_error("creating a caller container", e))?
        .id;
    let run = async {
        docker
            .start_container(&id, None)
            .await
            .map_err(|e| docker_error("starting the caller container", e))?;
        let exit_code = match docker.wait_container(&id, None).next().await {
            Some(Ok(exit)) => exit.status_code,
            Some(Err(DockerError::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => return Err(docker_error("waiting for the caller container", e)),
            None => -1,
        };
        let mut logs = docker.logs(
            &id,
            Some(LogsOptionsBuilder::new().stdout(true).stderr(true).build()),
        );
        let mut output = String::new();
        while let Some(Ok(chunk)) = logs.next().await {
            output.push_str(&chunk.to_string());
        }
        Ok(Ran { exit_code, output })
    };
    let ran = tokio::time::timeout(bound, run).await;
    let _ = docker
        .remove_container(
            &id,
            // With its anonymous volumes: an image may declare one (redis's `/data`).
            Some(
                RemoveContainerOptionsBuilder::new()
                    .force(true)
                    .v(true)
                    .build(),
            ),
        )
        .await;
    ran.map_err(|_| drydock::Error::Timeout {
        what: format!("the caller container {}", command.join(" ")),
        bound,
    })?
}
