//! Creating, starting, inspecting and removing one labelled container, through the one client
//! drydock keeps (bollard, the engine API client testcontainers itself uses).
//!
//! testcontainers' `Image` is the description users bring (see
//! [`Container`](crate::service::container::Container)); creating and removing go through here,
//! so labels, loopback-only ports, registry credentials and removal by label hold for every
//! container, whoever described it.

use std::{collections::HashMap, time::Duration};

use futures::StreamExt;
use testcontainers::bollard::{
    exec::{CreateExecOptions, StartExecResults},
    models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig, PortBinding},
    query_parameters::{
        CreateContainerOptionsBuilder, CreateImageOptionsBuilder, LogsOptionsBuilder,
        RemoveContainerOptionsBuilder,
    },
};
use tracing::Instrument;

use super::Engine;
use crate::{
    error::{BoxError, Error, Result},
    image::override_var,
    service::{start::Placement, ContainerPlan, StartedContainer},
};

/// How long pulling a missing image may take before it is an error.
const PULL_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the engine may take to create and start a container (readiness is bounded apart).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Creates and starts `plan` as container `name` on the placement's network, carrying its labels.
pub(crate) async fn start(
    engine: &Engine,
    service: &str,
    plan: &ContainerPlan,
    name: &str,
    placement: &Placement,
) -> Result<StartedContainer> {
    ensure_image(engine, service, plan).await?;
    let start_failed = |source| Error::StartFailed {
        service: service.to_string(),
        image: plan.image.to_string(),
        source,
    };
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
    let bind_ip = engine.bind_ip().to_string();
    let host_config = HostConfig {
        // Publish on the bind address only (loopback by default), never on 0.0.0.0.
        publish_all_ports: Some(false),
        port_bindings: Some(
            bindings
                .iter()
                .map(|(port, host)| {
                    let binding = PortBinding {
                        host_ip: Some(bind_ip.clone()),
                        host_port: Some(host.map(|h| h.to_string()).unwrap_or_default()),
                    };
                    (format!("{port}/tcp"), Some(vec![binding]))
                })
                .collect(),
        ),
        tmpfs: (!plan.tmpfs.is_empty()).then(|| {
            plan.tmpfs
                .iter()
                .map(|path| (path.clone(), "rw".to_string()))
                .collect()
        }),
        network_mode: Some(placement.network.clone()),
        ..Default::default()
    };
    let mut aliases = vec![service.to_string()];
    aliases.extend(plan.aliases.iter().cloned());
    let body = ContainerCreateBody {
        image: Some(plan.image.to_string()),
        env: Some(plan.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        cmd: (!plan.cmd.is_empty()).then(|| plan.cmd.clone()),
        entrypoint: plan.entrypoint.clone(),
        working_dir: plan.working_dir.clone(),
        user: plan.user.clone(),
        exposed_ports: Some(
            bindings
                .iter()
                .map(|(port, _)| format!("{port}/tcp"))
                .collect(),
        ),
        labels: Some(placement.labels.clone()),
        host_config: Some(host_config),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                placement.network.clone(),
                EndpointSettings {
                    aliases: Some(aliases),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    };
    let docker = engine.docker();
    // After the image is there (a pull is not ordered), before the container is made.
    placement.gate.wait_for_leads().await;
    let create =
        async {
            let options = CreateContainerOptionsBuilder::new().name(name).build();
            let created = docker
                .create_container(Some(options), body)
                .await
                .map_err(start_failed)?;
            if let Err(e) = docker.start_container(&created.id, None).await {
                // Decided by the fact, not the engine's wording: a fixed port nobody can bind now
                // was taken between its reservation and this start.
                if let Some((port, _)) = plan.fixed_ports.iter().find(|(host, _)| {
                    std::net::TcpListener::bind((bind_ip.as_str(), *host)).is_err()
                }) {
                    return Err(Error::PortTaken {
                        service: service.to_string(),
                        port: *port,
                    });
                }
                return Err(start_failed(e));
            }
            Ok(created.id)
        };
    let id = tokio::time::timeout(START_TIMEOUT, create)
        .await
        .map_err(|_| Error::Timeout {
            what: format!("creating and starting the {service} container"),
            bound: START_TIMEOUT,
        })??;
    let ports = published_ports(engine, &id, service).await?;
    Ok(StartedContainer {
        engine: engine.clone(),
        service: service.to_string(),
        image: plan.image.to_string(),
        id,
        name: name.to_string(),
        host: engine.host().to_string(),
        ports,
    })
}

/// The host port of each published container port, as the engine says now.
pub(crate) async fn published_ports(
    engine: &Engine,
    id: &str,
    service: &str,
) -> Result<HashMap<u16, u16>> {
    let inspected = engine
        .docker()
        .inspect_container(id, None)
        .await
        .map_err(|e| Error::docker(format!("inspecting the {service} container"), e))?;
    let settings = inspected.network_settings.unwrap_or_default();
    let ports: HashMap<u16, u16> = ports_of(settings.ports).collect();
    // Fault proxies of this process (and of the slices it grants) may skip the published
    // port's own proxy when the container's bridge is on this machine.
    let bridge = settings
        .networks
        .unwrap_or_default()
        .into_values()
        .find_map(|n| {
            let gateway: std::net::IpAddr = n.gateway?.parse().ok()?;
            let address: std::net::IpAddr = n.ip_address?.parse().ok()?;
            Some((gateway, address))
        });
    match bridge {
        Some((gateway, address)) if super::host::is_local_bridge(engine, gateway) => {
            crate::fault::shortcut::learn(
                id,
                ports.iter().map(|(&container, &published)| {
                    (
                        format!("{}:{published}", engine.host()),
                        std::net::SocketAddr::new(address, container),
                    )
                }),
            );
        }
        _ => crate::fault::shortcut::learn(id, []),
    }
    Ok(ports)
}

/// Each published TCP port of an inspected container and its host port.
pub(crate) fn ports_of(
    published: Option<HashMap<String, Option<Vec<testcontainers::bollard::models::PortBinding>>>>,
) -> impl Iterator<Item = (u16, u16)> {
    published
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(key, bindings)| {
            let port: u16 = key.strip_suffix("/tcp")?.parse().ok()?;
            let host = bindings?
                .iter()
                .find_map(|b| b.host_port.as_ref()?.parse().ok())?;
            Some((port, host))
        })
}

/// Makes sure the image is on this machine, pulling it (bounded, with the registry's
/// credentials when the Docker config has them) when it is not.
async fn ensure_image(engine: &Engine, service: &str, plan: &ContainerPlan) -> Result<()> {
    let docker = engine.docker();
    let reference = plan.image.to_string();
    if docker.inspect_image(&reference).await.is_ok() {
        return Ok(());
    }
    let unavailable = |cause: String| Error::ImageUnavailable {
        service: service.to_string(),
        image: reference.clone(),
        env_var: override_var(service),
        cause,
    };
    let options = CreateImageOptionsBuilder::new()
        .from_image(plan.image.repository())
        .tag(plan.image.tag())
        .build();
    // Reading the Docker config may run a credential helper: blocking, and bounded there.
    let repository = plan.image.repository().to_string();
    let credentials = tokio::task::spawn_blocking(move || super::credentials_for(&repository))
        .await
        .ok()
        .flatten();
    let pull = async {
        let began = std::time::Instant::now();
        crate::progress::pull_started(&reference);
        let mut layers = crate::progress::PullProgress::new(&reference);
        let mut progress = docker.create_image(Some(options), None, credentials);
        while let Some(step) = progress.next().await {
            let step = step.map_err(|e| unavailable(e.to_string()))?;
            if let (Some(layer), Some(detail)) = (step.id, step.progress_detail) {
                layers.update(layer, detail.current, detail.total);
            }
        }
        crate::progress::pull_finished(&reference, began.elapsed());
        Ok(())
    };
    tokio::time::timeout(PULL_TIMEOUT, pull)
        .instrument(tracing::info_span!("pull", image = %reference))
        .await
        .map_err(|_| unavailable(format!("the pull did not finish within {PULL_TIMEOUT:?}")))?
}

/// The last `lines` lines the container wrote to stdout and stderr.
pub(crate) async fn log_tail(engine: &Engine, container_id: &str, lines: usize) -> String {
    log_tail_since(engine, container_id, lines, None).await
}

/// The last `lines` lines the container wrote at or after `since` (all of its log if `None`).
pub(crate) async fn log_tail_since(
    engine: &Engine,
    container_id: &str,
    lines: usize,
    since: Option<std::time::SystemTime>,
) -> String {
    let mut options = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .tail(&lines.to_string());
    if let Some(since) = since {
        // Docker counts in whole seconds: a second early rather than a line short.
        let seconds = since
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs().saturating_sub(1));
        options = options.since(i32::try_from(seconds).unwrap_or(i32::MAX));
    }
    let options = options.build();
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
        "(the container wrote nothing in that time)".into()
    } else {
        text
    }
}

/// Runs `cmd` in the container; its exit code and output, within `timeout`.
pub(crate) async fn exec(
    engine: &Engine,
    container_id: &str,
    cmd: &[String],
    timeout: Duration,
) -> std::result::Result<(i64, String), BoxError> {
    let docker = engine.docker();
    let run = async {
        let created = docker
            .create_exec(
                container_id,
                CreateExecOptions {
                    cmd: Some(cmd.to_vec()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await?;
        let mut output = String::new();
        if let StartExecResults::Attached {
            output: mut out, ..
        } = docker.start_exec(&created.id, None).await?
        {
            while let Some(chunk) = out.next().await {
                output.push_str(&String::from_utf8_lossy(&chunk?.into_bytes()));
            }
        }
        let code = docker
            .inspect_exec(&created.id)
            .await?
            .exit_code
            .unwrap_or(-1);
        Ok::<_, BoxError>((code, output))
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| format!("`{}` did not finish within {timeout:?}", cmd.join(" ")))?
}

/// The container's health status (`healthy`, `starting`, …) when its image has a health check.
pub(crate) async fn health(engine: &Engine, container_id: &str) -> Option<String> {
    let state = engine
        .docker()
        .inspect_container(container_id, None)
        .await
        .ok()?
        .state?;
    state.health?.status.map(|s| s.to_string())
}

/// The exit code when the container has stopped; `None` while it runs (or cannot be inspected,
/// in which case the probe's own bound still applies).
pub(crate) async fn exit_code(engine: &Engine, id: &str) -> Option<i64> {
    let state = engine
        .docker()
        .inspect_container(id, None)
        .await
        .ok()?
        .state?;
    if state.running == Some(true) || state.restarting == Some(true) {
        return None;
    }
    Some(state.exit_code.unwrap_or(-1))
}

/// A free port on the bind address, for a service that must know its published port up front.
pub(crate) fn reserve_port(bind_ip: &str) -> Result<u16> {
    let unavailable = |e: std::io::Error| Error::Spec {
        service: "docker".into(),
        problem: format!("no free port on the bind address {bind_ip}: {e}"),
        fix: "check DRYDOCK_BIND_IP, or free some ports".into(),
    };
    let listener = std::net::TcpListener::bind((bind_ip, 0)).map_err(unavailable)?;
    listener.local_addr().map(|a| a.port()).map_err(unavailable)
}

/// Removes a container by name, ignoring absence (a failed start leaves it created).
pub(crate) async fn remove_container(engine: &Engine, name: &str) {
    let options = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    let _ = engine.docker().remove_container(name, Some(options)).await;
}

/// The gateway address of `network`: the host as its containers reach it.
pub(crate) async fn network_gateway(engine: &Engine, network: &str) -> Result<std::net::IpAddr> {
    let inspected = engine
        .docker()
        .inspect_network(
            network,
            None::<testcontainers::bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .map_err(|e| Error::docker(format!("inspecting network {network}"), e))?;
    inspected
        .ipam
        .and_then(|ipam| ipam.config)
        .into_iter()
        .flatten()
        .find_map(|config| config.gateway?.parse().ok())
        .ok_or_else(|| Error::Spec {
            service: network.to_string(),
            problem: "the network has no IPv4 gateway to reach this process at".into(),
            fix: "use a bridge network (drydock's own are)".into(),
        })
}
