//! Starting one labelled container through testcontainers.

use std::{collections::HashMap, time::Duration};

use futures::StreamExt;
use testcontainers::{
    bollard::{
        models::PortBinding,
        query_parameters::{CreateImageOptionsBuilder, LogsOptionsBuilder},
    },
    core::{IntoContainerPort, WaitFor},
    runners::AsyncRunner,
    GenericImage, ImageExt,
};
use tracing::Instrument;

use super::Engine;
use crate::{
    error::{Error, Result},
    image::{override_var, ImageRef},
};

/// How long pulling a missing image may take before it is an error.
const PULL_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the engine may take to create and start a container (readiness is bounded apart).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// What a service wants from Docker: everything but identity, which the environment adds.
#[derive(Clone, Debug)]
pub(crate) struct ContainerPlan {
    pub service: &'static str,
    pub image: ImageRef,
    pub env: Vec<(String, String)>,
    pub cmd: Vec<String>,
    /// Container ports to publish, each on a free host port of the bind address.
    pub ports: Vec<u16>,
    /// `(host, container)` ports to publish as given (see `PlanContext::host_port`).
    pub fixed_ports: Vec<(u16, u16)>,
    /// Paths mounted as tmpfs, with their mount options: fast, and nothing survives as a volume.
    pub tmpfs: Vec<(&'static str, &'static str)>,
}

/// A container that is running (not necessarily ready) and how to reach it.
#[derive(Debug)]
pub(crate) struct StartedContainer {
    pub id: String,
    /// The container's name, which resolves on the environment's network.
    pub name: String,
    pub host: String,
    ports: HashMap<u16, u16>,
}

impl StartedContainer {
    /// The host port a container port was published on.
    pub fn host_port(&self, container_port: u16) -> u16 {
        // Every planned port was mapped in `start`, so the lookup cannot miss for planned ports.
        self.ports
            .get(&container_port)
            .copied()
            .unwrap_or(container_port)
    }
}

/// Starts `plan` as container `name` on `network`, carrying `labels`.
pub(crate) async fn start(
    engine: &Engine,
    plan: ContainerPlan,
    name: String,
    network: &str,
    labels: HashMap<String, String>,
) -> Result<StartedContainer> {
    ensure_image(engine, &plan).await?;
    let start_failed = |cause: String| Error::StartFailed {
        service: plan.service,
        image: plan.image.to_string(),
        cause,
    };

    let mut image = GenericImage::new(plan.image.repository(), plan.image.tag())
        .with_wait_for(WaitFor::Nothing);
    let bindings: Vec<(u16, Option<u16>)> = plan
        .ports
        .iter()
        .map(|port| (*port, None))
        .chain(
            plan.fixed_ports
                .iter()
                .map(|(host, port)| (*port, Some(*host))),
        )
        .collect();
    for (port, _) in &bindings {
        image = image.with_exposed_port(port.tcp());
    }
    let bind_ip = engine.bind_ip().to_string();
    let ports = bindings.clone();
    let tmpfs: HashMap<String, String> = plan
        .tmpfs
        .iter()
        .map(|(path, options)| (path.to_string(), options.to_string()))
        .collect();
    let mut request = image
        .with_container_name(name.clone())
        .with_network(network)
        .with_labels(labels)
        .with_startup_timeout(START_TIMEOUT)
        .with_host_config_modifier(move |host_config| {
            // Publish on the bind address only (loopback by default), never on 0.0.0.0.
            host_config.publish_all_ports = Some(false);
            host_config.port_bindings = Some(
                ports
                    .iter()
                    .map(|(port, host)| {
                        let binding = PortBinding {
                            host_ip: Some(bind_ip.clone()),
                            host_port: Some(host.map(|h| h.to_string()).unwrap_or_default()),
                        };
                        (format!("{port}/tcp"), Some(vec![binding]))
                    })
                    .collect(),
            );
            if !tmpfs.is_empty() {
                host_config.tmpfs = Some(tmpfs.clone());
            }
        });
    for (key, value) in &plan.env {
        request = request.with_env_var(key, value);
    }
    if !plan.cmd.is_empty() {
        request = request.with_cmd(plan.cmd.iter());
    }

    let handle = request
        .start()
        .await
        .map_err(|e| start_failed(e.to_string()))?;
    let id = handle.id().to_string();
    let published = handle.ports().await;
    // drydock removes containers by label, from a runtime of its own (see `cleanup`). The handle's
    // own Drop would remove the container a second time through a client whose connections
    // belong to the caller's runtime, which may be the very current-thread runtime that is
    // blocked in our drop: so the handle is released without running it.
    std::mem::forget(handle);
    let published = published.map_err(|e| start_failed(format!("reading published ports: {e}")))?;
    let mut mapped = HashMap::new();
    for (port, _) in &bindings {
        let host_port = published
            .map_to_host_port_ipv4(port.tcp())
            .ok_or_else(|| start_failed(format!("port {port} was not published")))?;
        mapped.insert(*port, host_port);
    }
    Ok(StartedContainer {
        id,
        name,
        host: engine.host().to_string(),
        ports: mapped,
    })
}

/// Makes sure the image is on this machine, pulling it (bounded) when it is not, so a missing
/// image is one clear error instead of testcontainers' pull-on-404 with an unbounded wait.
async fn ensure_image(engine: &Engine, plan: &ContainerPlan) -> Result<()> {
    let docker = engine.docker();
    let reference = plan.image.to_string();
    if docker.inspect_image(&reference).await.is_ok() {
        return Ok(());
    }
    let unavailable = |cause: String| Error::ImageUnavailable {
        service: plan.service,
        image: reference.clone(),
        env_var: override_var(plan.service),
        cause,
    };
    let options = CreateImageOptionsBuilder::new()
        .from_image(plan.image.repository())
        .tag(plan.image.tag())
        .build();
    let pull = async {
        let mut progress = docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            step.map_err(|e| unavailable(e.to_string()))?;
        }
        Ok(())
    };
    tokio::time::timeout(PULL_TIMEOUT, pull)
        .instrument(tracing::info_span!("pull", image = %reference))
        .await
        .map_err(|_| unavailable(format!("the pull did not finish within {PULL_TIMEOUT:?}")))?
}

/// The last `lines` lines the container wrote to stdout and stderr.
pub(crate) async fn log_tail(engine: &Engine, container_id: &str, lines: usize) -> String {
    let options = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .tail(&lines.to_string())
        .build();
    let mut stream = engine.docker().logs(container_id, Some(options));
    let mut text = String::new();
    let collect = async {
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), collect)
        .await
        .is_err()
    {
        text.push_str("\n(log read timed out)");
    }
    if text.trim().is_empty() {
        "(the container wrote nothing)".into()
    } else {
        text
    }
}

/// A free port on the bind address, for a service that must know its published port up front.
/// Free now; `port_taken` recognises the rare start that loses it to another process.
pub(crate) fn reserve_port(engine: &Engine) -> Result<u16> {
    let listener =
        std::net::TcpListener::bind((engine.bind_ip(), 0)).map_err(|e| Error::StartFailed {
            service: "docker",
            image: String::new(),
            cause: format!("no free port on {}: {e}", engine.bind_ip()),
        })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::StartFailed {
            service: "docker",
            image: String::new(),
            cause: format!("no free port on {}: {e}", engine.bind_ip()),
        })
}

/// Whether a start failed because its fixed host port was taken.
pub(crate) fn port_taken(error: &Error) -> bool {
    matches!(error, Error::StartFailed { cause, .. }
        if cause.contains("port is already allocated") || cause.contains("address already in use"))
}

/// Removes a container by name, ignoring absence (a failed start leaves it created).
pub(crate) async fn remove_container(engine: &Engine, name: &str) {
    let options = testcontainers::bollard::query_parameters::RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    let _ = engine.docker().remove_container(name, Some(options)).await;
}
