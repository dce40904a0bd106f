//! Users' own containers: any image, described the way testcontainers describes one, run with
//! drydock's lifecycle (labels, keeper, removal), readiness and network.
//!
//! The description is taken from a testcontainers `Image` (or a `ContainerRequest` built with
//! `ImageExt`) when the container is added, so it can cross to a shared environment's keeper:
//! image, tag, environment, command, entrypoint, exposed ports, working directory and user.
//! Readiness comes from the image's own wait conditions where they can be carried
//! (`WaitFor::Nothing`, `Duration`, `Healthcheck`) and from [`Readiness`] probes you give; an
//! image that waits for a log line or an HTTP answer needs the probe said again with
//! [`Container::ready_when`], since testcontainers keeps those conditions private.
//!
//! A container has no slices: every test of a shared environment reaches the same server. A
//! bucket, an index or a tube per test is a [`Service`] of your own (see the module docs of
//! [`crate::service`]).

use std::{collections::BTreeMap, fmt, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use testcontainers::{
    core::{ContainerPort, WaitFor},
    ContainerRequest, Image,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::Router;
use super::{
    Common, ContainerPlan, Lease, PlanContext, Service, Sharing, SliceId, StartedContainer,
};
use crate::{
    error::{BoxError, Error, Result},
    image::ImageRef,
};

/// How a container shows it is ready; every condition given must hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Readiness {
    /// A server accepts connections on this container port and keeps them open.
    Tcp {
        /// The container port.
        port: u16,
    },
    /// `GET path` on this container port answers `status`.
    Http {
        /// The container port.
        port: u16,
        /// The path, e.g. `/health`.
        path: String,
        /// The expected status code.
        status: u16,
    },
    /// This command, run in the container, exits with 0.
    Command(Vec<String>),
    /// The container's log (stdout or stderr) contains this text.
    Log(String),
    /// The image's health check reports `healthy`.
    Healthy,
}

impl Readiness {
    /// A TCP server on `port`.
    pub fn tcp(port: u16) -> Self {
        Readiness::Tcp { port }
    }

    /// `GET path` on `port` answers 200.
    pub fn http(port: u16, path: impl Into<String>) -> Self {
        Readiness::Http {
            port,
            path: path.into(),
            status: 200,
        }
    }

    /// `cmd` run in the container exits with 0.
    pub fn command<S: Into<String>>(cmd: impl IntoIterator<Item = S>) -> Self {
        Readiness::Command(cmd.into_iter().map(Into::into).collect())
    }

    /// The log contains `text`.
    pub fn log(text: impl Into<String>) -> Self {
        Readiness::Log(text.into())
    }
}

/// A container of your own in an environment: a sibling service, your application's image,
/// MinIO, Elasticsearch, … Added with [`EnvBuilder::with_container`](crate::EnvBuilder::with_container).
///
/// ```
/// use drydock::{Container, Env, Readiness};
/// use testcontainers::{core::ContainerPort, GenericImage, ImageExt};
///
/// let queue = Container::from_image(
///     "queue",
///     GenericImage::new("drydock.local/beanstalkd", "1")
///         .with_exposed_port(ContainerPort::Tcp(11300))
///         .with_env_var("TZ", "UTC"),
/// )
/// .ready_when(Readiness::tcp(11300));
/// let app = Container::from_image("app", GenericImage::new("my-app", "latest"))
///     .depends_on("queue")                 // starts once `queue` is ready
///     .env("QUEUE_ADDR", "queue:11300");   // other containers reach it by name
/// let env = Env::builder().with_container(queue).with_container(app);
/// # let _ = env;
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Container {
    /// Its name (`common.name`) is always set: a container of yours is known by it.
    common: Common,
    image: String,
    env: Vec<(String, String)>,
    cmd: Vec<String>,
    entrypoint: Option<Vec<String>>,
    ports: Vec<u16>,
    working_dir: Option<String>,
    user: Option<String>,
    readiness: Vec<Readiness>,
    settle: Option<Duration>,
    depends_on: Vec<String>,
    /// Wait conditions of the image that cannot be carried over, described.
    uncarried_waits: Vec<String>,
}

impl Container {
    /// A container named `name` (its name on the environment's network and in
    /// [`Services::container`](crate::Services::container)) described by a testcontainers image.
    pub fn from_image<I: Image>(
        name: impl Into<String>,
        image: impl Into<ContainerRequest<I>>,
    ) -> Self {
        let request: ContainerRequest<I> = image.into();
        let description = request.image();
        let mut ports: Vec<u16> = request
            .expose_ports()
            .iter()
            .cloned()
            .chain(
                request
                    .ports()
                    .into_iter()
                    .flatten()
                    .map(|m| m.container_port()),
            )
            .filter_map(|p| match p {
                ContainerPort::Tcp(port) => Some(port),
                _ => None,
            })
            .collect();
        ports.sort_unstable();
        ports.dedup();
        let mut readiness = Vec::new();
        let mut settle = None;
        let mut uncarried_waits = Vec::new();
        for condition in request.ready_conditions() {
            match condition {
                WaitFor::Nothing => {}
                WaitFor::Duration { length } => settle = Some(length),
                WaitFor::Healthcheck(_) => readiness.push(Readiness::Healthy),
                other => uncarried_waits.push(format!("{other:?}")),
            }
        }
        Container {
            common: Common {
                name: Some(name.into()),
                ..Common::default()
            },
            image: format!("{}:{}", description.name(), description.tag()),
            env: request
                .env_vars()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            cmd: request.cmd().map(|c| c.into_owned()).collect(),
            entrypoint: request.entrypoint().map(|e| vec![e.to_string()]),
            ports,
            working_dir: request.working_dir().map(str::to_string),
            user: request.user().map(str::to_string),
            readiness,
            settle,
            depends_on: Vec::new(),
            uncarried_waits,
        }
    }

    /// Ready when `condition` holds too (all conditions must hold).
    pub fn ready_when(mut self, condition: Readiness) -> Self {
        self.readiness.push(condition);
        self
    }

    /// Starts after `service` is ready.
    pub fn depends_on(mut self, service: impl Into<String>) -> Self {
        self.depends_on.push(service.into());
        self
    }

    /// Sets an environment variable of the container.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Publishes another container port.
    pub fn port(mut self, port: u16) -> Self {
        if !self.ports.contains(&port) {
            self.ports.push(port);
        }
        self
    }
}

impl Service for Container {
    const KIND: &'static str = "container";
    type Server = ContainerEndpoint;
    type Slicer = ();
    type Scope = ();
    type Handle = ContainerEndpoint;

    fn common(&self) -> &Common {
        &self.common
    }

    fn common_mut(&mut self) -> &mut Common {
        &mut self.common
    }

    fn default_image(&self) -> &str {
        &self.image
    }

    fn depends_on(&self) -> Vec<String> {
        self.depends_on.clone()
    }

    fn resolve_paths(&mut self, _: &std::path::Path) -> Result<()> {
        // Checked with the spec, before anything starts: a wait drydock cannot carry and no
        // probe in its place would start a container nobody knows to be ready.
        if !self.uncarried_waits.is_empty() && self.readiness.is_empty() {
            return Err(Error::Spec {
                service: self.name().to_string(),
                problem: format!(
                    "its image waits with {}, which drydock cannot carry into the environment",
                    self.uncarried_waits.join(", ")
                ),
                fix: "say when it is ready: `.ready_when(Readiness::log(\"…\"))`, \
                      `Readiness::tcp(port)`, `Readiness::http(port, \"/health\")` or \
                      `Readiness::command([..])`"
                    .into(),
            });
        }
        Ok(())
    }

    fn plan(&self, image: ImageRef, _: &mut PlanContext) -> Result<ContainerPlan> {
        let mut plan = ContainerPlan::new(image);
        plan.env = self.env.clone();
        plan.cmd = self.cmd.clone();
        plan.entrypoint = self.entrypoint.clone();
        plan.ports = self.ports.clone();
        plan.working_dir = self.working_dir.clone();
        plan.user = self.user.clone();
        Ok(plan)
    }

    fn server(&self, _: &ContainerPlan, container: &StartedContainer) -> Result<ContainerEndpoint> {
        Ok(ContainerEndpoint {
            name: self.name().to_string(),
            host: container.host().to_string(),
            ports: container.ports().iter().map(|(c, h)| (*c, *h)).collect(),
            direct: None,
        })
    }

    async fn probe(
        &self,
        server: &ContainerEndpoint,
        container: &StartedContainer,
    ) -> std::result::Result<(), BoxError> {
        for condition in &self.readiness {
            check(condition, server, container).await?;
        }
        Ok(())
    }

    async fn prepare(&self, _: &ContainerEndpoint, _: Sharing) -> Result<()> {
        // The image asked for a pause after start (`WaitFor::Duration`).
        if let Some(settle) = self.settle {
            tokio::time::sleep(settle).await;
        }
        Ok(())
    }

    async fn adopt(&self, _: &ContainerEndpoint) -> Result<Option<()>> {
        // No slices: nothing to take over but the container.
        Ok(Some(()))
    }

    fn owned_scope(_: &()) {}

    async fn cut(_: &Arc<()>, _: SliceId) -> Result<Lease<()>> {
        Ok(Lease::unguarded(()))
    }

    fn route(server: &ContainerEndpoint, router: &mut Router) -> Result<ContainerEndpoint> {
        let mut ports = BTreeMap::new();
        let mut host = server.host.clone();
        for (container_port, host_port) in &server.ports {
            let (proxy_host, proxy_port) = router.via_host_port(&server.host, *host_port)?;
            host = proxy_host;
            ports.insert(*container_port, proxy_port);
        }
        Ok(ContainerEndpoint {
            name: server.name.clone(),
            host,
            ports,
            direct: Some((server.host.clone(), server.ports.clone())),
        })
    }

    fn handle(server: &ContainerEndpoint, _: ()) -> ContainerEndpoint {
        server.clone()
    }

    fn vars(endpoint: &ContainerEndpoint) -> Vec<(String, String)> {
        let prefix = super::var_prefix(&endpoint.name);
        let mut vars = vec![(format!("{prefix}_HOST"), endpoint.host.clone())];
        if let Some((_, host_port)) = endpoint.ports.iter().next() {
            vars.push((format!("{prefix}_PORT"), host_port.to_string()));
        }
        for (container_port, host_port) in &endpoint.ports {
            vars.push((
                format!("{prefix}_PORT_{container_port}"),
                host_port.to_string(),
            ));
        }
        vars
    }

    /// Its variables already carry its name (`<NAME>_HOST`).
    fn vars_as(_: &str, endpoint: &ContainerEndpoint) -> Vec<(String, String)> {
        Self::vars(endpoint)
    }

    /// `DRYDOCK_IMAGE_<NAME>` only: each container of yours is an image of its own, so no
    /// variable of its kind (`container`) replaces them all.
    fn image_vars(&self) -> Vec<String> {
        vec![crate::image::override_var(self.name())]
    }

    fn diagnose(endpoint: &ContainerEndpoint) -> Vec<String> {
        endpoint
            .ports
            .iter()
            .map(|(c, h)| format!("port {c}: {}:{h}", endpoint.host))
            .collect()
    }
}

async fn check(
    condition: &Readiness,
    server: &ContainerEndpoint,
    container: &StartedContainer,
) -> std::result::Result<(), BoxError> {
    match condition {
        Readiness::Tcp { port } => {
            let address = server.address(*port)?;
            let mut stream = TcpStream::connect(&address)
                .await
                .map_err(|e| format!("connecting to {address} (port {port}): {e}"))?;
            // Docker's port proxy accepts even when nothing listens behind it, then closes: a
            // connection that stays open (or greets) has a server behind it.
            let mut byte = [0u8; 1];
            match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut byte)).await {
                Ok(Ok(0)) => Err(format!(
                    "{address} closed the connection: nothing listens on {port} yet"
                )
                .into()),
                Ok(Err(e)) => Err(e.into()),
                _ => Ok(()),
            }
        }
        Readiness::Http { port, path, status } => {
            let address = server.address(*port)?;
            let mut stream = TcpStream::connect(&address)
                .await
                .map_err(|e| format!("connecting to {address} (port {port}): {e}"))?;
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await?;
            let mut head = [0u8; 64];
            let n = stream.read(&mut head).await?;
            let line = String::from_utf8_lossy(&head[..n]);
            let answered: Option<u16> = line.split_whitespace().nth(1).and_then(|s| s.parse().ok());
            match answered {
                Some(code) if code == *status => Ok(()),
                Some(code) => Err(format!("GET {path} answered {code}, not {status}").into()),
                None => Err(format!("GET {path} got no HTTP answer").into()),
            }
        }
        Readiness::Command(cmd) => {
            let (code, output) = container.exec(cmd, Duration::from_secs(5)).await?;
            if code == 0 {
                Ok(())
            } else {
                Err(format!("`{}` exited with {code}: {}", cmd.join(" "), output.trim()).into())
            }
        }
        Readiness::Log(text) => {
            if container.log_tail(100_000).await.contains(text.as_str()) {
                Ok(())
            } else {
                Err(format!("the log does not show {text:?} yet").into())
            }
        }
        Readiness::Healthy => match container.health().await.as_deref() {
            Some("healthy") => Ok(()),
            other => Err(format!("health is {}", other.unwrap_or("unknown")).into()),
        },
    }
}

/// A container of yours as tests reach it: its published ports.
#[derive(Clone, Serialize, Deserialize)]
pub struct ContainerEndpoint {
    name: String,
    host: String,
    ports: BTreeMap<u16, u16>,
    /// The container's own host and published ports, when `host`/`ports` are fault proxies'.
    #[serde(default)]
    direct: Option<(String, BTreeMap<u16, u16>)>,
}

impl ContainerEndpoint {
    /// The container itself, not through the fault proxies of the environment or slice this
    /// came from (faults do not apply; it outlives the slice).
    pub fn direct(&self) -> ContainerEndpoint {
        let mut direct = self.clone();
        if let Some((host, ports)) = direct.direct.take() {
            (direct.host, direct.ports) = (host, ports);
        }
        direct
    }

    /// The host this process reaches its ports at.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The host port `container_port` is published on.
    pub fn host_port(&self, container_port: u16) -> Result<u16> {
        self.ports
            .get(&container_port)
            .copied()
            .ok_or_else(|| Error::Spec {
                service: self.name.clone(),
                problem: format!("container port {container_port} is not published"),
                fix: format!(
                    "publish it: `.with_exposed_port(ContainerPort::Tcp({container_port}))` on the \
                     image, or `.port({container_port})` on the Container"
                ),
            })
    }

    /// `host:port` of `container_port`, for this process.
    pub fn address(&self, container_port: u16) -> Result<String> {
        Ok(format!("{}:{}", self.host, self.host_port(container_port)?))
    }

    /// `name:port`, for containers on the environment's network.
    pub fn internal_address(&self, container_port: u16) -> String {
        format!("{}:{container_port}", self.name)
    }
}

impl fmt::Debug for ContainerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ContainerEndpoint({} at {}, ports {:?})",
            self.name, self.host, self.ports
        )
    }
}
