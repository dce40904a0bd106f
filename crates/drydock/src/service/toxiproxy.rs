//! Toxiproxy in a container on the environment's network: for systems under test that run in
//! containers, and for suites that already drive Toxiproxy with a Toxiproxy client.
//!
//! The image is Toxiproxy's own (`ghcr.io/shopify/toxiproxy`), or drydock's implementation of
//! its API (`drydock proxy`, the stand-in image `drydock.local/toxiproxy:2`): the contract is
//! the same — the API on port 8474, proxies listening on the ports they are created with. Ports
//! 8666–8675 are published for proxies (the convention of Testcontainers' Toxiproxy modules).
//!
//! Tests that fault their own path to a service need none of this: every handle already goes
//! through a fault proxy of the test ([`crate::fault`]).

use std::{collections::BTreeMap, fmt, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::{
    Common, ContainerPlan, Lease, PlanContext, Service, Sharing, SliceId, StartedContainer,
};
use crate::{
    error::{BoxError, Error, Result},
    image::ImageRef,
};

/// The API's port in the container.
pub const API_PORT: u16 = 8474;
/// The first of the ports published for proxies.
pub const FIRST_PROXY_PORT: u16 = 8666;
/// How many proxy ports are published.
pub const PROXY_PORTS: u16 = 10;

/// A Toxiproxy server in a container.
///
/// ```
/// use drydock::{Env, Toxiproxy};
///
/// let env = Env::builder().with_service(Toxiproxy::default());
/// # let _ = env;
/// ```
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Toxiproxy {
    common: Common,
}

impl Service for Toxiproxy {
    const KIND: &'static str = "toxiproxy";
    type Server = ToxiproxyEndpoint;
    type Slicer = ();
    type Scope = ();
    type Handle = ToxiproxyEndpoint;

    fn common(&self) -> &Common {
        &self.common
    }

    fn common_mut(&mut self) -> &mut Common {
        &mut self.common
    }

    fn default_image(&self) -> &str {
        "ghcr.io/shopify/toxiproxy:2.12.0"
    }

    fn default_ready_timeout(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn plan(&self, image: ImageRef, _: &mut PlanContext) -> Result<ContainerPlan> {
        let mut plan = ContainerPlan::new(image).port(API_PORT);
        for port in FIRST_PROXY_PORT..FIRST_PROXY_PORT + PROXY_PORTS {
            plan = plan.port(port);
        }
        Ok(plan)
    }

    fn server(&self, _: &ContainerPlan, container: &StartedContainer) -> Result<ToxiproxyEndpoint> {
        Ok(ToxiproxyEndpoint {
            host: container.host().to_string(),
            api_port: container.host_port(API_PORT)?,
            proxy_ports: (FIRST_PROXY_PORT..FIRST_PROXY_PORT + PROXY_PORTS)
                .map(|p| Ok((p, container.host_port(p)?)))
                .collect::<Result<_>>()?,
        })
    }

    async fn probe(
        &self,
        server: &ToxiproxyEndpoint,
        _: &StartedContainer,
    ) -> std::result::Result<(), BoxError> {
        // GET /version: Toxiproxy's own health check.
        let address = format!("{}:{}", server.host, server.api_port);
        let mut stream = TcpStream::connect(&address).await?;
        stream
            .write_all(
                format!("GET /version HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        if answer.starts_with(b"HTTP/1.1 200") || answer.starts_with(b"HTTP/1.0 200") {
            Ok(())
        } else {
            Err(format!(
                "GET /version answered {:?}",
                String::from_utf8_lossy(&answer[..answer.len().min(40)])
            )
            .into())
        }
    }

    async fn prepare(&self, _: &ToxiproxyEndpoint, _: Sharing) -> Result<()> {
        Ok(())
    }

    fn owned_scope(_: &()) {}

    async fn cut(_: &Arc<()>, _: SliceId) -> Result<Lease<()>> {
        Ok(Lease::unguarded(()))
    }

    fn handle(server: &ToxiproxyEndpoint, _: ()) -> ToxiproxyEndpoint {
        server.clone()
    }

    fn vars(endpoint: &ToxiproxyEndpoint) -> Vec<(String, String)> {
        vec![("TOXIPROXY_URL".into(), endpoint.api_url())]
    }

    fn diagnose(endpoint: &ToxiproxyEndpoint) -> Vec<String> {
        vec![format!("proxies: curl -s {}/proxies", endpoint.api_url())]
    }
}

/// Where the Toxiproxy server is reached.
#[derive(Clone, Serialize, Deserialize)]
pub struct ToxiproxyEndpoint {
    host: String,
    api_port: u16,
    proxy_ports: BTreeMap<u16, u16>,
}

impl ToxiproxyEndpoint {
    /// The API's base URL for this process (`http://127.0.0.1:<port>`), for Toxiproxy clients.
    pub fn api_url(&self) -> String {
        format!("http://{}:{}", self.host, self.api_port)
    }

    /// Where a proxy created to listen on `0.0.0.0:<port>` (one of 8666–8675) is reached from
    /// this process.
    pub fn proxy_address(&self, port: u16) -> Result<String> {
        let published = self.proxy_ports.get(&port).ok_or_else(|| Error::Spec {
            service: Toxiproxy::KIND.into(),
            problem: format!("port {port} is not one of the published proxy ports"),
            fix: format!(
                "create the proxy to listen on 0.0.0.0:{FIRST_PROXY_PORT}..{}",
                FIRST_PROXY_PORT + PROXY_PORTS - 1
            ),
        })?;
        Ok(format!("{}:{published}", self.host))
    }

    /// Where containers on the environment's network reach a proxy on `port` (`toxiproxy:8666`).
    pub fn internal_address(&self, port: u16) -> String {
        format!("{}:{port}", Toxiproxy::KIND)
    }
}

impl fmt::Debug for ToxiproxyEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ToxiproxyEndpoint({})", self.api_url())
    }
}
