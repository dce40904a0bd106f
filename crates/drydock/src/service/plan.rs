//! What a service asks of Docker (a [`ContainerPlan`]) and what it gets back (a
//! [`StartedContainer`]).

use std::{collections::HashMap, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    docker::{self, Engine},
    error::{BoxError, Error, Result},
    image::ImageRef,
};

/// The container a service runs: everything but identity (name, labels, network), which the
/// environment adds.
///
/// ```
/// use drydock::{service::ContainerPlan, ImageRef};
///
/// let plan = ContainerPlan::new("redis:7-alpine".parse::<ImageRef>()?)
///     .cmd(["--save", ""])
///     .port(6379)
///     .tmpfs("/data");
/// assert_eq!(plan.ports, [6379]);
/// # Ok::<(), drydock::Error>(())
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ContainerPlan {
    /// The image.
    pub image: ImageRef,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// The command (the image's when empty).
    pub cmd: Vec<String>,
    /// The entrypoint (the image's when `None`).
    pub entrypoint: Option<Vec<String>>,
    /// Container ports to publish, each on a free host port of the bind address (loopback).
    pub ports: Vec<u16>,
    /// `(host, container)` ports to publish as given (see [`PlanContext::reserve_host_port`]).
    pub fixed_ports: Vec<(u16, u16)>,
    /// Paths mounted as tmpfs: fast, and nothing survives as a volume.
    pub tmpfs: Vec<String>,
    /// More names the container answers to on the environment's network.
    pub aliases: Vec<String>,
    /// The working directory (the image's when `None`).
    pub working_dir: Option<String>,
    /// The user to run as (the image's when `None`).
    pub user: Option<String>,
}

impl ContainerPlan {
    /// A plan that runs `image` as it is.
    pub fn new(image: ImageRef) -> Self {
        ContainerPlan {
            image,
            env: Vec::new(),
            cmd: Vec::new(),
            entrypoint: None,
            ports: Vec::new(),
            fixed_ports: Vec::new(),
            tmpfs: Vec::new(),
            aliases: Vec::new(),
            working_dir: None,
            user: None,
        }
    }

    /// Sets an environment variable.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// The value of an environment variable of the plan.
    pub fn env_value(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets the command.
    pub fn cmd<S: Into<String>>(mut self, cmd: impl IntoIterator<Item = S>) -> Self {
        self.cmd = cmd.into_iter().map(Into::into).collect();
        self
    }

    /// Publishes a container port on a free host port.
    pub fn port(mut self, port: u16) -> Self {
        self.ports.push(port);
        self
    }

    /// Publishes container port `container` on host port `host`.
    pub fn fixed_port(mut self, host: u16, container: u16) -> Self {
        self.fixed_ports.push((host, container));
        self
    }

    /// Mounts a tmpfs at `path`.
    pub fn tmpfs(mut self, path: impl Into<String>) -> Self {
        self.tmpfs.push(path.into());
        self
    }
}

/// What a plan may need to know before its container exists.
#[derive(Debug)]
pub struct PlanContext {
    pub(crate) container_name: String,
    pub(crate) host: String,
    pub(crate) bind_ip: String,
    pub(crate) sharing: super::Sharing,
}

impl PlanContext {
    /// The container's name, which resolves on the environment's network.
    pub fn container_name(&self) -> &str {
        &self.container_name
    }

    /// Where this process reaches published ports.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether the service runs for one test or is shared by a run.
    pub fn sharing(&self) -> super::Sharing {
        self.sharing
    }

    /// A free host port, for a service that must know its published port up front (Kafka
    /// advertises it); publish it with [`ContainerPlan::fixed_port`]. Should another process
    /// take it before the container starts, the start is retried with another.
    pub fn reserve_host_port(&mut self) -> Result<u16> {
        docker::reserve_port(&self.bind_ip)
    }
}

/// A container that runs (not necessarily ready yet), and how to reach it.
#[derive(Clone, Debug)]
pub struct StartedContainer {
    pub(crate) engine: Engine,
    pub(crate) service: String,
    pub(crate) image: String,
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) host: String,
    pub(crate) ports: HashMap<u16, u16>,
}

impl StartedContainer {
    /// The container's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The container's name, which resolves on the environment's network.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host this process reaches published ports at.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The host port `container_port` is published on.
    pub fn host_port(&self, container_port: u16) -> Result<u16> {
        self.ports
            .get(&container_port)
            .copied()
            .ok_or_else(|| Error::PortNotPublished {
                service: self.service.clone(),
                image: self.image.clone(),
                port: container_port,
            })
    }

    /// Every published container port and its host port.
    pub fn ports(&self) -> &HashMap<u16, u16> {
        &self.ports
    }

    /// The last `lines` lines the container wrote.
    pub async fn log_tail(&self, lines: usize) -> String {
        docker::log_tail(&self.engine, &self.id, lines).await
    }

    /// Runs `cmd` in the container and returns its exit code and output, bounded by `timeout`.
    pub async fn exec(
        &self,
        cmd: &[String],
        timeout: Duration,
    ) -> std::result::Result<(i64, String), BoxError> {
        docker::exec(&self.engine, &self.id, cmd, timeout).await
    }

    /// The same container, its published ports read again (they move when it restarts).
    pub(crate) async fn reinspect(&self) -> Result<StartedContainer> {
        let ports = docker::published_ports(&self.engine, &self.id, &self.service).await?;
        Ok(StartedContainer {
            ports: self
                .ports
                .keys()
                .filter_map(|p| ports.get(p).map(|h| (*p, *h)))
                .collect(),
            ..self.clone()
        })
    }

    /// The container's health status, when its image defines a health check.
    pub async fn health(&self) -> Option<String> {
        docker::health(&self.engine, &self.id).await
    }
}
