//! Stub HTTP services: the drydock-stub server in a container, for systems under test that run
//! in containers themselves and reach the stub by name on the environment's network.
//!
//! A test drives it with the same [`StubServer`] API as an in-process stub. In a shared
//! environment each slice gets a namespace of its own (`/__ns/<name>`), which starts with the
//! spec's mappings and keeps its stubs and journal apart from every other test's.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use drydock_stub::StubServer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    Common, ContainerPlan, Lease, PlanContext, Service, Sharing, SliceId, StartedContainer,
};
use super::{HostPort, Router};
use crate::{
    error::{BoxError, Error, Result},
    image::ImageRef,
    paths,
};

/// The port the stub server listens on inside its container.
pub const PORT: u16 = 8080;
/// Where the container serves HTTPS when asked ([`HttpStub::https`]).
pub const HTTPS_PORT: u16 = 8443;

/// A stub HTTP server to run in a container.
///
/// ```
/// use drydock::{Env, HttpStub};
///
/// let env = Env::builder().with_stub(HttpStub::default().mappings("tests/wiremock"));
/// # let _ = env;
/// ```
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HttpStub {
    common: Common,
    mappings: Option<PathBuf>,
    #[serde(default)]
    https: bool,
}

impl HttpStub {
    /// WireMock mappings every test starts with (a directory; see `drydock_stub::mappings`).
    /// They are read and checked before any container starts; their content is part of the
    /// environment's identity.
    pub fn mappings(mut self, dir: impl Into<PathBuf>) -> Self {
        self.mappings = Some(dir.into());
        self
    }

    /// The mappings, read and checked.
    /// Also serves HTTPS, with a certificate from a CA the server makes at start (valid for
    /// `localhost`, `127.0.0.1` and the container's name): [`StubEndpoint::https_url`], and
    /// [`StubEndpoint::certificate_authority`] for the client to trust — for clients and SDKs
    /// that insist on `https://`.
    ///
    /// ```no_run
    /// use drydock::{Env, HttpStub};
    ///
    /// # async fn demo() -> drydock::TestResult {
    /// let env = Env::builder().with_stub(HttpStub::default().https()).start().await?;
    /// let stub = env.stub()?;
    /// let ca = stub.certificate_authority().await?.expect("served over HTTPS");
    /// let pem = ca.pem(); // for `curl --cacert`, `SSL_CERT_FILE`; or `ca.reqwest_certificate()`
    /// let url = stub.https_url().expect("served over HTTPS");
    /// # let _ = (pem, url);
    /// # Ok(()) }
    /// ```
    pub fn https(mut self) -> Self {
        self.https = true;
        self
    }

    fn load_mappings(&self) -> Result<Vec<drydock_stub::Stub>> {
        match &self.mappings {
            Some(dir) => Ok(drydock_stub::mappings::load_dir(dir)?),
            None => Ok(Vec::new()),
        }
    }
}

/// What slices are cut from: the server's root, where the spec's mappings are mounted.
pub struct StubSlicer {
    root: StubEndpoint,
    sharing: Sharing,
}

impl Service for HttpStub {
    const KIND: &'static str = "stub";
    type Server = StubEndpoint;
    type Slicer = StubSlicer;
    type Scope = String;
    type Handle = StubEndpoint;

    fn common(&self) -> &Common {
        &self.common
    }

    fn common_mut(&mut self) -> &mut Common {
        &mut self.common
    }

    fn default_image(&self) -> &str {
        concat!("drydock/stub:", env!("CARGO_PKG_VERSION"))
    }

    fn default_ready_timeout(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn identity(&self) -> Result<serde_json::Value> {
        // The mappings as loaded, so changed files make another environment.
        let stubs = serde_json::to_vec(&self.load_mappings()?).unwrap_or_default();
        Ok(serde_json::json!({
            "spec": serde_json::to_value(self).map_err(|e| super::spec_error(Self::KIND, e))?,
            "mappings": hex::encode(&Sha256::digest(stubs)[..8]),
        }))
    }

    fn files(&self) -> Vec<PathBuf> {
        self.mappings.iter().cloned().collect()
    }

    fn resolve_paths(&mut self, base: &Path) -> Result<()> {
        if let Some(dir) = &self.mappings {
            self.mappings = Some(paths::resolve(base, dir, "stub mappings directory")?);
        }
        Ok(())
    }

    fn plan(&self, image: ImageRef, context: &mut PlanContext) -> Result<ContainerPlan> {
        let plan = ContainerPlan::new(image)
            .env("DRYDOCK_STUB_BIND", "0.0.0.0")
            .env("DRYDOCK_STUB_PORT", PORT.to_string())
            .port(PORT);
        Ok(if self.https {
            plan.env("DRYDOCK_STUB_HTTPS_PORT", HTTPS_PORT.to_string())
                .env("DRYDOCK_STUB_TLS_HOSTS", context.container_name.clone())
                .port(HTTPS_PORT)
        } else {
            plan
        })
    }

    fn server(&self, _: &ContainerPlan, container: &StartedContainer) -> Result<StubEndpoint> {
        let https = if self.https {
            Some((
                container.host().to_string(),
                container.host_port(HTTPS_PORT)?,
            ))
        } else {
            None
        };
        Ok(StubEndpoint {
            host: container.host().to_string(),
            port: container.host_port(PORT)?,
            container_name: container.name().to_string(),
            namespace: String::new(),
            direct: None,
            https,
            https_direct: None,
        })
    }

    async fn probe(
        &self,
        server: &StubEndpoint,
        _: &StartedContainer,
    ) -> std::result::Result<(), BoxError> {
        let handle = StubServer::connect(&server.url()).await?;
        drop(handle.verify_on_drop(false));
        Ok(())
    }

    async fn prepare(&self, server: &StubEndpoint, sharing: Sharing) -> Result<StubSlicer> {
        // Mounted on the root: every slice's namespace starts from the root's stubs.
        let stubs = self.load_mappings()?;
        if !stubs.is_empty() {
            server.admin().await?.mount_all(stubs).await?;
        }
        Ok(StubSlicer {
            root: server.clone(),
            sharing,
        })
    }

    fn owned_scope(_: &StubSlicer) -> String {
        String::new()
    }

    async fn cut(slicer: &Arc<StubSlicer>, slice: SliceId) -> Result<Lease<String>> {
        if slicer.sharing == Sharing::Owned {
            return Ok(Lease::unguarded(String::new()));
        }
        let name = slice.name();
        slicer.root.admin().await?.namespace(&name).await?;
        Ok(Lease::new(
            name.clone(),
            SliceNamespace {
                root: slicer.root.clone(),
                name,
            },
        ))
    }

    fn route(server: &StubEndpoint, router: &mut Router) -> Result<StubEndpoint> {
        let mut routed = server.routed(router)?;
        // HTTPS through a proxy of its own: TLS passes through untouched, faults apply.
        if let Some((host, port)) = &server.https {
            routed.https = Some(router.via_host_port(host, *port)?);
            routed.https_direct = Some((host.clone(), *port));
        }
        Ok(routed)
    }

    fn handle(server: &StubEndpoint, namespace: String) -> StubEndpoint {
        StubEndpoint {
            namespace,
            ..server.clone()
        }
    }

    fn vars(stub: &StubEndpoint) -> Vec<(String, String)> {
        let mut vars = vec![("STUB_URL".into(), stub.url())];
        if let Some(url) = stub.https_url() {
            vars.push(("STUB_HTTPS_URL".into(), url));
        }
        vars
    }

    fn diagnose(stub: &StubEndpoint) -> Vec<String> {
        vec![
            format!("namespace: {:?}", stub.namespace().unwrap_or("")),
            format!("journal: curl -s {}/__admin/requests", stub.url()),
            format!(
                "near misses: curl -s {}/__admin/requests/unmatched",
                stub.url()
            ),
        ]
    }

    /// What the stub received, and each broken expectation and unmatched request with its
    /// nearest stubs (the report [`StubServer::verify`] gives).
    async fn explain(stub: &StubEndpoint) -> Vec<String> {
        let server = match stub.admin().await {
            Ok(server) => server,
            Err(e) => return vec![format!("journal: unreadable ({e})")],
        };
        let mut lines = vec![match server.requests().await {
            Ok(requests) => format!("journal: {} request(s) received", requests.len()),
            Err(e) => format!("journal: unreadable ({e})"),
        }];
        match server.verify().await {
            Ok(()) => lines.push("every expectation met, no unmatched request".to_owned()),
            Err(report) => lines.extend(report.to_string().lines().map(|l| format!("| {l}"))),
        }
        lines
    }
}

/// A slice's namespace, removed with its stubs and journal (in the background) when the lease ends.
struct SliceNamespace {
    root: StubEndpoint,
    name: String,
}

impl Drop for SliceNamespace {
    fn drop(&mut self) {
        let (root, name) = (self.root.clone(), std::mem::take(&mut self.name));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let removed = async {
                root.admin()
                    .await?
                    .remove_namespace(&name)
                    .await
                    .map_err(Error::from)
            };
            if let Err(e) = removed.await {
                eprintln!("drydock keeper: removing stub namespace {name}: {e}");
            }
        });
    }
}

/// Where a stub server is reached: its root (`""`, an owned environment's) or one test's
/// namespace of it (a slice's). The same type either way.
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
    /// The server itself, when `host`/`port` are a fault proxy's.
    #[serde(default)]
    direct: Option<(String, u16)>,
    /// Where HTTPS is served for this process, if it is ([`HttpStub::https`]).
    #[serde(default)]
    https: Option<(String, u16)>,
    /// The server's own HTTPS address, when `https` is a fault proxy's.
    #[serde(default)]
    https_direct: Option<(String, u16)>,
}

impl HostPort for StubEndpoint {
    fn address_mut(&mut self) -> (&mut String, &mut u16, &mut Option<(String, u16)>) {
        (&mut self.host, &mut self.port, &mut self.direct)
    }
}

impl StubEndpoint {
    /// The server itself, not through the fault proxy of the environment or slice this came
    /// from (faults do not apply; it outlives the slice).
    pub fn direct(&self) -> StubEndpoint {
        let mut direct = self.unrouted();
        if let Some(https) = direct.https_direct.take() {
            direct.https = Some(https);
        }
        direct
    }

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

    /// The HTTPS base URL for this process, `https://127.0.0.1:<port>[/__ns/<name>]`, when the
    /// stub serves HTTPS ([`HttpStub::https`]).
    pub fn https_url(&self) -> Option<String> {
        self.https
            .as_ref()
            .map(|(host, port)| format!("https://{host}:{port}{}", self.suffix()))
    }

    /// The HTTPS base URL for containers on the environment's network (the certificate names
    /// the container), when the stub serves HTTPS.
    pub fn internal_https_url(&self) -> Option<String> {
        self.https.as_ref().map(|_| {
            format!(
                "https://{}:{HTTPS_PORT}{}",
                self.container_name,
                self.suffix()
            )
        })
    }

    /// The CA whose certificate the stub serves HTTPS with: trust it (and only it) in the
    /// client. `None` when the stub serves no HTTPS.
    pub async fn certificate_authority(
        &self,
    ) -> Result<Option<drydock_stub::CertificateAuthority>> {
        Ok(self.admin().await?.fetch_certificate_authority().await?)
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
}

impl fmt::Debug for StubEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StubEndpoint({})", self.url())
    }
}
