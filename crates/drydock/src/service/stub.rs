//! Stub HTTP services: the drydock-stub server in a container, for systems under test that run
//! in containers themselves and reach the stub by name on the environment's network.
//!
//! A test drives it with the same [`StubServer`] API as an in-process stub. In a shared
//! environment each slice gets a namespace of its own (`/__ns/<name>`), which starts with the
//! spec's mappings and keeps its stubs and journal apart from every other test's.
//!
//! The container's port is published on loopback, which every local user reaches, and every
//! container on the network reaches it too. So its admin API asks for credentials generated per
//! environment (WireMock's `--admin-api-basic-auth`; user `drydock`), which the handles here send
//! by themselves, and it forwards (proxy stubs, pass-through, recording) only to the upstreams
//! the test configured: those of [`HttpStub::allow_upstream`], the proxies of the mapping files,
//! and those a test's handle adds when it mounts a proxy stub or starts a recording (through the
//! authenticated admin API; nobody else can widen the list). Stubbed endpoints stay open: the
//! system under test calls them with nothing but `STUB_URL`.

use crate::sync::lock;
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

/// The variable of the stub binary that sets the admin API's credentials (`user:password`).
const ADMIN_AUTH_VAR: &str = "DRYDOCK_STUB_ADMIN_API_BASIC_AUTH";

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
    /// Upstreams proxy stubs and recordings may reach from the start.
    #[serde(default)]
    upstreams: Vec<String>,
}

impl HttpStub {
    /// An upstream (`http://payments:8080`: scheme, host and port count) the stub may forward
    /// to, for proxy stubs, pass-through and recording: the stub reaches nothing else but the
    /// proxies of its mapping files and the upstreams a test's handle adds when it mounts a
    /// proxy stub or starts a recording. Anything else is refused with `403` naming the
    /// upstream — no request to an address the test never named (server-side request forgery).
    ///
    /// ```
    /// use drydock::{Env, HttpStub};
    ///
    /// let env = Env::builder().with_stub(HttpStub::default().allow_upstream("http://payments:8080"));
    /// # let _ = env;
    /// ```
    pub fn allow_upstream(mut self, url: impl Into<String>) -> Self {
        self.upstreams.push(url.into());
        self
    }

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
    /// One admin handle for every slice's namespace: its HTTP client keeps its connection,
    /// so a namespace costs one request, not a client, a connection and a health check.
    admin: tokio::sync::OnceCell<Arc<StubServer>>,
    /// Namespaces created ahead of the slices that take them: a cut takes one, and another
    /// is created meanwhile, as the PostgreSQL clone pool does.
    ready: std::sync::Mutex<Vec<String>>,
    /// Unique to this slicer (`slice-ns-<id>-<n>`): a slicer prepared anew after a restart, or
    /// by a keeper that adopted the server, never names a namespace as an earlier one did.
    id: String,
    next: std::sync::atomic::AtomicU64,
}

/// How many namespaces a shared stub keeps created ahead.
const NAMESPACES_AHEAD: usize = 4;

impl StubSlicer {
    async fn admin(&self) -> Result<Arc<StubServer>> {
        self.admin
            .get_or_try_init(|| async { Ok(Arc::new(self.root.admin().await?)) })
            .await
            .cloned()
    }

    fn new(root: StubEndpoint, sharing: Sharing) -> Self {
        StubSlicer {
            root,
            sharing,
            admin: tokio::sync::OnceCell::new(),
            ready: std::sync::Mutex::new(Vec::new()),
            id: crate::secret::short_id(),
            next: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The lease on namespace `name`: removed, with its stubs and journal, when it ends.
    fn namespace_of(self: &Arc<Self>, name: String) -> Lease<String> {
        Lease::new(
            name.clone(),
            SliceNamespace {
                slicer: Arc::clone(self),
                name,
            },
        )
    }

    /// Creates a namespace on the server, named uniquely (see [`StubSlicer::id`]).
    async fn create_namespace(&self) -> Result<String> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("slice-ns-{}-{n}", self.id);
        self.admin().await?.namespace(&name).await?;
        Ok(name)
    }

    /// Creates namespaces until [`NAMESPACES_AHEAD`] are ready; a failure is left to the cut
    /// that finds none ready (it creates its own, and reports).
    async fn fill(self: Arc<Self>) {
        if !lock(&self.ready).is_empty() {
            super::quiet::after_attach().await;
        }
        while lock(&self.ready).len() < NAMESPACES_AHEAD {
            match self.create_namespace().await {
                Ok(name) => lock(&self.ready).push(name),
                Err(_) => return,
            }
        }
    }
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
        for upstream in &self.upstreams {
            let host = upstream
                .strip_prefix("http://")
                .or_else(|| upstream.strip_prefix("https://"));
            if host.is_none_or(|h| h.is_empty() || h.starts_with('/')) {
                return Err(Error::Spec {
                    service: self.name().to_string(),
                    problem: format!("allow_upstream({upstream:?}) is not an http(s) URL"),
                    fix: "give the upstream's base URL, e.g. allow_upstream(\"http://payments:8080\")"
                        .into(),
                });
            }
        }
        let upstreams = if self.upstreams.is_empty() {
            "none".to_string()
        } else {
            self.upstreams.join(",")
        };
        let plan = ContainerPlan::new(image)
            .env("DRYDOCK_STUB_BIND", "0.0.0.0")
            .env("DRYDOCK_STUB_PORT", PORT.to_string())
            // A generated password: loopback is shared by every local user.
            .env(ADMIN_AUTH_VAR, {
                let credentials = drydock_stub::AdminCredentials::generate();
                format!("{}:{}", credentials.user(), credentials.password())
            })
            .env("DRYDOCK_STUB_ALLOWED_UPSTREAMS", upstreams)
            .port(PORT);
        Ok(if self.https {
            plan.env("DRYDOCK_STUB_HTTPS_PORT", HTTPS_PORT.to_string())
                .env("DRYDOCK_STUB_TLS_HOSTS", context.container_name.clone())
                .port(HTTPS_PORT)
        } else {
            plan
        })
    }

    fn server(&self, plan: &ContainerPlan, container: &StartedContainer) -> Result<StubEndpoint> {
        let admin_password = plan
            .env_value(ADMIN_AUTH_VAR)
            .and_then(|pair| pair.split_once(':'))
            .map(|(_, password)| password.to_string())
            .unwrap_or_default();
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
            admin_password,
        })
    }

    async fn probe(
        &self,
        server: &StubEndpoint,
        _: &StartedContainer,
    ) -> std::result::Result<(), BoxError> {
        // Its health check asks for the credentials too: ready means they work.
        let handle = server.admin().await?;
        drop(handle);
        Ok(())
    }

    async fn prepare(&self, server: &StubEndpoint, sharing: Sharing) -> Result<StubSlicer> {
        // Mounted on the root: every slice's namespace starts from the root's stubs.
        let stubs = self.load_mappings()?;
        if !stubs.is_empty() {
            server.admin().await?.mount_all(stubs).await?;
        }
        Ok(StubSlicer::new(server.clone(), sharing))
    }

    /// The server a keeper that died started: the spec's mappings are on its root already, and
    /// new namespaces are named apart from the ones tests still hold.
    async fn adopt(&self, server: &StubEndpoint) -> Result<Option<StubSlicer>> {
        Ok(Some(StubSlicer::new(server.clone(), Sharing::Shared)))
    }

    /// A namespace a test holds from a keeper that died: removed when the lease ends.
    fn reclaim(slicer: &Arc<StubSlicer>, name: &String) -> Option<Lease<String>> {
        Some(StubSlicer::namespace_of(slicer, name.clone()))
    }

    fn owned_scope(_: &StubSlicer) -> String {
        String::new()
    }

    async fn cut(slicer: &Arc<StubSlicer>, _: SliceId) -> Result<Lease<String>> {
        if slicer.sharing == Sharing::Owned {
            return Ok(Lease::unguarded(String::new()));
        }
        let ready = lock(&slicer.ready).pop();
        let name = match ready {
            Some(name) => name,
            None => slicer.create_namespace().await?,
        };
        tokio::spawn(Arc::clone(slicer).fill());
        Ok(StubSlicer::namespace_of(slicer, name))
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
        let mut vars = vec![
            ("STUB_URL".into(), stub.url()),
            ("STUB_ADMIN_URL".into(), stub.admin_url()),
        ];
        if let Some(url) = stub.https_url() {
            vars.push(("STUB_HTTPS_URL".into(), url));
        }
        vars
    }

    fn diagnose(stub: &StubEndpoint) -> Vec<String> {
        let admin = if crate::secret::shown() {
            stub.admin_url()
        } else {
            crate::secret::mask_userinfo(&stub.admin_url())
        };
        let mut lines = vec![
            format!("namespace: {:?}", stub.namespace().unwrap_or("")),
            format!("journal: curl -s {admin}/__admin/requests"),
            format!("near misses: curl -s {admin}/__admin/requests/unmatched"),
        ];
        if !crate::secret::shown() {
            lines.push("(admin password masked: DRYDOCK_SHOW_SECRETS=1 shows it)".into());
        }
        lines
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
    slicer: Arc<StubSlicer>,
    name: String,
}

impl Drop for SliceNamespace {
    fn drop(&mut self) {
        let (slicer, name) = (Arc::clone(&self.slicer), std::mem::take(&mut self.name));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            super::quiet::after_attach().await;
            let removed = match slicer.admin().await {
                Ok(admin) => admin
                    .remove_namespace(&name)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = removed {
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
    /// The admin API's generated password (user `drydock`). Never log it: `Debug` leaves it out.
    #[serde(default)]
    admin_password: String,
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

    /// [`url`](Self::url) with the admin API's credentials, `http://drydock:<password>@…`
    /// (`STUB_ADMIN_URL`): for a process or tool of the test's that drives the admin API
    /// (`StubServer::connect`, reqwest and curl send them as basic credentials; a WireMock client
    /// takes [`admin_credentials`](Self::admin_credentials)). It holds the password: keep it out
    /// of logs.
    pub fn admin_url(&self) -> String {
        match (self.admin_credentials(), self.url().split_once("://")) {
            (Some(credentials), Some((scheme, rest))) => format!(
                "{scheme}://{}:{}@{rest}",
                credentials.user(),
                credentials.password()
            ),
            (_, _) => self.url(),
        }
    }

    /// The credentials the admin API asks for (HTTP basic, user `drydock` and a password
    /// generated per environment); `None` for a server started without them.
    pub fn admin_credentials(&self) -> Option<drydock_stub::AdminCredentials> {
        (!self.admin_password.is_empty()).then(|| {
            drydock_stub::AdminCredentials::new(
                drydock_stub::ADMIN_USER,
                self.admin_password.clone(),
            )
        })
    }

    /// The namespace, for a slice's endpoint.
    pub fn namespace(&self) -> Option<&str> {
        (!self.namespace.is_empty()).then_some(self.namespace.as_str())
    }

    /// A handle to mount stubs, read the journal and verify. Dropping it verifies the
    /// expectations of its stubs (see [`StubServer`]).
    /// It sends the admin credentials by itself.
    pub async fn connect(&self) -> Result<StubServer> {
        Ok(StubServer::connect(&self.admin_url()).await?)
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
