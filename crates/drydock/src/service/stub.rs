//! Stub HTTP services: the drydock-stub server in a container, for systems under test that run
//! in containers themselves and reach the stub by name on the environment's network.
//!
//! A test drives it with the same [`StubServer`] API as an in-process stub. In a shared
//! environment each slice gets a namespace of its own (`/__ns/<name>`), which starts with the
//! spec's mappings and keeps its stubs and journal apart from every other test's.

use std::{fmt, path::PathBuf, time::Duration};

use drydock_stub::StubServer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{PlanContext, Probe, Service};
use crate::{
    docker::{ContainerPlan, StartedContainer},
    error::Result,
    image::ImageRef,
    service::postgres::schema,
};

/// The port the stub server listens on inside its container.
pub const PORT: u16 = 8080;

/// A stub HTTP server to run in a container.
///
/// ```
/// use drydock::{Env, HttpStub};
///
/// let env = Env::builder().with_stub(HttpStub::default().mappings("tests/wiremock"));
/// # let _ = env;
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HttpStub {
    image: Option<String>,
    mappings: Option<PathBuf>,
    ready_timeout: Duration,
}

impl Default for HttpStub {
    fn default() -> Self {
        HttpStub {
            image: None,
            mappings: None,
            ready_timeout: Duration::from_secs(30),
        }
    }
}

impl HttpStub {
    /// Runs this image instead of `drydock/stub:<version>` (`DRYDOCK_IMAGE_STUB` still wins).
    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }

    /// WireMock mappings every test starts with (a directory; see `drydock_stub::mappings`).
    /// They are read and checked before any container starts; their content is part of the
    /// environment's identity.
    pub fn mappings(mut self, dir: impl Into<PathBuf>) -> Self {
        self.mappings = Some(dir.into());
        self
    }

    /// How long the server may take to answer its health check (30 s by default).
    pub fn ready_timeout(mut self, bound: Duration) -> Self {
        self.ready_timeout = bound;
        self
    }

    pub(crate) fn ready_bound(&self) -> Duration {
        self.ready_timeout
    }

    pub(crate) fn resolve_paths(&mut self) -> Result<()> {
        if let Some(dir) = &self.mappings {
            self.mappings = Some(schema::absolute(dir, "stub mappings directory")?);
        }
        Ok(())
    }

    /// The mappings, read and checked.
    fn load_mappings(&self) -> Result<Vec<drydock_stub::Stub>> {
        match &self.mappings {
            Some(dir) => Ok(drydock_stub::mappings::load_dir(dir)?),
            None => Ok(Vec::new()),
        }
    }

    /// A hash of the mappings as loaded, so changed files make another environment.
    pub(crate) fn fingerprint(&self) -> Result<String> {
        let stubs = serde_json::to_vec(&self.load_mappings()?).unwrap_or_default();
        Ok(hex::encode(&Sha256::digest(stubs)[..8]))
    }

    /// Mounts the spec's mappings on the server's root namespace.
    pub(crate) async fn install(&self, endpoint: &StubEndpoint) -> Result<()> {
        let stubs = self.load_mappings()?;
        if !stubs.is_empty() {
            endpoint.admin().await?.mount_all(stubs).await?;
        }
        Ok(())
    }
}

impl Service for HttpStub {
    const KIND: &'static str = "stub";
    type Access = ();
    type Server = StubEndpoint;

    fn default_image(&self) -> &'static str {
        concat!("drydock/stub:", env!("CARGO_PKG_VERSION"))
    }

    fn image_in_code(&self) -> Option<&str> {
        self.image.as_deref()
    }

    fn ready_timeout(&self) -> Duration {
        self.ready_timeout
    }

    fn plan(&self, image: ImageRef, _: &PlanContext) -> (ContainerPlan, ()) {
        let plan = ContainerPlan {
            service: Self::KIND,
            image,
            env: vec![
                ("DRYDOCK_STUB_BIND".into(), "0.0.0.0".into()),
                ("DRYDOCK_STUB_PORT".into(), PORT.to_string()),
            ],
            cmd: Vec::new(),
            ports: vec![PORT],
            fixed_ports: Vec::new(),
            tmpfs: Vec::new(),
        };
        (plan, ())
    }

    fn server(&self, _: (), container: &StartedContainer) -> StubEndpoint {
        StubEndpoint {
            host: container.host.clone(),
            port: container.host_port(PORT),
            container_name: container.name.clone(),
            namespace: String::new(),
        }
    }
}

/// Where a stub server (or one test's namespace of it) is reached.
///
/// ```no_run
/// use drydock::{Env, HttpStub};
/// use drydock_stub::{Response, Stub};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let env = Env::builder().with_stub(HttpStub::default()).start().await?;
/// let payments = env.stub()?.connect().await?;
/// payments.mount(Stub::post("/charges").respond(Response::status(201))).await?;
/// // From this process:
/// let url = env.stub()?.url();
/// // From a container on the environment's network:
/// let internal = env.stub()?.internal_url();
/// # let _ = (url, internal);
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StubEndpoint {
    host: String,
    port: u16,
    container_name: String,
    namespace: String,
}

impl StubEndpoint {
    fn suffix(&self) -> String {
        if self.namespace.is_empty() {
            String::new()
        } else {
            format!("/__ns/{}", self.namespace)
        }
    }

    /// The base URL for this process: `http://127.0.0.1:<port>[/__ns/<name>]`.
    pub fn url(&self) -> String {
        format!("http://{}:{}{}", self.host, self.port, self.suffix())
    }

    /// The base URL for containers on the environment's network: `http://<container>:8080[/__ns/<name>]`.
    pub fn internal_url(&self) -> String {
        format!("http://{}:{PORT}{}", self.container_name, self.suffix())
    }

    /// The namespace, for a slice's endpoint.
    pub fn namespace(&self) -> Option<&str> {
        (!self.namespace.is_empty()).then_some(self.namespace.as_str())
    }

    /// A handle to mount stubs, read the journal and verify. Dropping it verifies the
    /// expectations of its stubs (see [`StubServer`]).
    pub async fn connect(&self) -> Result<StubServer> {
        Ok(StubServer::connect(&self.url()).await?)
    }

    /// A handle for drydock's own use, which verifies nothing when dropped.
    pub(crate) async fn admin(&self) -> Result<StubServer> {
        Ok(self.connect().await?.verify_on_drop(false))
    }

    /// The same server, namespace `name`.
    pub(crate) fn in_namespace(&self, name: &str) -> StubEndpoint {
        StubEndpoint {
            namespace: name.to_string(),
            ..self.clone()
        }
    }

    /// Creates namespace `name` on the server (from the root's stubs).
    pub(crate) async fn create_namespace(&self, name: &str) -> Result<StubEndpoint> {
        self.admin().await?.namespace(name).await?;
        Ok(self.in_namespace(name))
    }

    /// Removes namespace `name`, its stubs and journal.
    pub(crate) async fn remove_namespace(&self, name: &str) -> Result<()> {
        Ok(self.admin().await?.remove_namespace(name).await?)
    }
}

impl fmt::Debug for StubEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StubEndpoint({})", self.url())
    }
}

impl Probe for StubEndpoint {
    async fn probe(&self) -> std::result::Result<(), String> {
        StubServer::connect(&self.url())
            .await
            .map(|server| drop(server.verify_on_drop(false)))
            .map_err(|e| e.to_string())
    }
}
