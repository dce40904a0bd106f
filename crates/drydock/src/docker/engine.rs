use std::{path::PathBuf, time::Duration};

use testcontainers::bollard::{Docker, API_DEFAULT_VERSION};

use super::host::{self, HostAddress};
use crate::error::{Error, Result};

/// How long an unanswered engine is waited for before the error: an engine either answers a ping
/// in milliseconds or is not there.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// Per-request timeout of the Docker client, in seconds.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// A connection to a Docker engine and the address its published ports are reached at.
///
/// ```no_run
/// # async fn demo() -> drydock::Result<()> {
/// let engine = drydock::docker::Engine::connect().await?;
/// println!("engine at {}, ports reached on {}", engine.endpoint(), engine.host());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Engine {
    docker: Docker,
    endpoint: String,
    address: HostAddress,
}

impl Engine {
    /// Finds the engine (`DOCKER_HOST`, then the usual sockets), checks that it answers, and
    /// resolves the host address for published ports. Fails within a few seconds when there is
    /// no engine, with an error listing every place it looked.
    pub async fn connect() -> Result<Self> {
        let candidates = endpoint_candidates();
        let looked_at = candidates
            .iter()
            .map(|c| c.describe())
            .collect::<Vec<_>>()
            .join(", ");
        let Some(chosen) = candidates.iter().find(|c| c.plausible()) else {
            return Err(Error::DockerUnavailable {
                endpoint: "nowhere".into(),
                looked_at,
                cause: "no DOCKER_HOST is set and none of the usual sockets exists".into(),
            });
        };
        let endpoint = chosen.url();
        let unavailable = |cause: String| Error::DockerUnavailable {
            endpoint: endpoint.clone(),
            looked_at: looked_at.clone(),
            cause,
        };
        let docker = connect_to(&endpoint).map_err(|e| unavailable(e.to_string()))?;
        let docker = tokio::time::timeout(PING_TIMEOUT, async {
            docker.ping().await?;
            docker.negotiate_version().await
        })
        .await
        .map_err(|_| unavailable(format!("no answer within {PING_TIMEOUT:?}")))?
        .map_err(|e| unavailable(e.to_string()))?;
        let address = host::resolve(&docker, &endpoint).await;
        tracing::debug!(%endpoint, host = %address.host, bind = %address.bind_ip, "docker engine answered");
        Ok(Engine {
            docker,
            endpoint,
            address,
        })
    }

    /// The bollard client, for calls testcontainers does not wrap.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The engine's address (`unix:///var/run/docker.sock`, `tcp://…`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The host name or address at which published ports are reached from this process.
    pub fn host(&self) -> &str {
        &self.address.host
    }

    /// The host address ports are published on (loopback unless the host resolution says otherwise).
    pub(crate) fn bind_ip(&self) -> &str {
        &self.address.bind_ip
    }
}

fn connect_to(
    endpoint: &str,
) -> std::result::Result<Docker, testcontainers::bollard::errors::Error> {
    if let Some(path) = endpoint.strip_prefix("unix://") {
        Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_host(endpoint)
    }
}

enum Candidate {
    DockerHost(String),
    Socket(PathBuf),
}

impl Candidate {
    fn plausible(&self) -> bool {
        match self {
            Candidate::DockerHost(_) => true,
            Candidate::Socket(path) => path.exists(),
        }
    }

    fn url(&self) -> String {
        match self {
            Candidate::DockerHost(url) => url.clone(),
            Candidate::Socket(path) => format!("unix://{}", path.display()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Candidate::DockerHost(url) => format!("DOCKER_HOST={url}"),
            Candidate::Socket(path) if path.exists() => format!("{}", path.display()),
            Candidate::Socket(path) => format!("{} (absent)", path.display()),
        }
    }
}

/// Where an engine may be, in testcontainers' order: `DOCKER_HOST` alone when set (an explicit
/// choice must not silently fall back), otherwise the system socket, then rootless and Desktop ones.
fn endpoint_candidates() -> Vec<Candidate> {
    if let Ok(url) = std::env::var("DOCKER_HOST") {
        if !url.trim().is_empty() {
            return vec![Candidate::DockerHost(url.trim().to_string())];
        }
    }
    let mut sockets = vec![PathBuf::from("/var/run/docker.sock")];
    if let Ok(dir) = std::env::var("XDG_RUNTIME_DIR") {
        sockets.push(PathBuf::from(dir).join("docker.sock"));
    }
    if let Ok(home) = std::env::var("HOME") {
        sockets.push(PathBuf::from(&home).join(".docker/run/docker.sock"));
        sockets.push(PathBuf::from(&home).join(".docker/desktop/docker.sock"));
    }
    sockets.into_iter().map(Candidate::Socket).collect()
}
