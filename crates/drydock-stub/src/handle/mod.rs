//! [`StubServer`]: one handle for a stub server in this process or anywhere reachable over HTTP.
//!
//! In process, every operation is a typed call on the server's namespace (no JSON, no HTTP);
//! remotely, the same operation is an admin request ([`remote`]). The admin router answers those
//! requests by calling the same typed operations, so both ways behave alike.

mod builder;
mod pool;
mod remote;

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;

pub use builder::StubServerBuilder;
use remote::Remote;

use crate::{
    error::StubError,
    guard::AdminCredentials,
    journal::{JournalStats, ServeEvent},
    mappings,
    model::{RequestPattern, Stub},
    namespace::{lock, valid_name, Namespace, Scenario, Settings},
    record::{OnMiss, Recording},
    request::LoggedRequest,
    server::{admin, Core},
    tls::CertificateAuthority,
    verify::{NearMiss, Unmatched},
};

/// A stub server: started in this process ([`StubServer::start`], a fraction of a millisecond,
/// its own port) or reached over HTTP ([`StubServer::connect`], e.g. the drydock-stub container).
/// Both have the same methods and the same behaviour.
///
/// A handle is bound to one namespace (the root unless made with [`namespace`](Self::namespace)).
/// When it is dropped it verifies the expectations of that namespace and panics with the report
/// if they are not met (unless the thread is already panicking, or
/// [`verify_on_drop(false)`](Self::verify_on_drop)); an in-process server stops with its last
/// handle.
///
/// ```
/// use drydock_stub::{Response, Stub, StubServer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = StubServer::start().await?;
/// server
///     .mount(Stub::get("/health").respond(Response::ok().body("up")).expect(1))
///     .await?;
/// let body = reqwest::get(format!("{}/health", server.url())).await?.text().await?;
/// assert_eq!(body, "up");
/// server.verify().await?;
/// # Ok(()) }
/// ```
pub struct StubServer {
    transport: Transport,
    namespace: String,
    verify_on_drop: bool,
    /// Where `stop_recording` saves, set by `start_recording`.
    save_to: Mutex<Option<PathBuf>>,
}

#[derive(Clone)]
enum Transport {
    Local(Arc<Local>),
    Remote(Remote),
}

/// An in-process server; dropping the last reference stops it and its connections, or (for a
/// server with the default options) resets it and gives it back to the pool.
struct Local {
    core: Arc<Core>,
    address: SocketAddr,
    https: bool,
    https_address: Option<SocketAddr>,
    ca: Option<CertificateAuthority>,
    stop: watch::Sender<bool>,
    /// Whether it goes back to the pool when dropped.
    poolable: bool,
}

impl Drop for Local {
    fn drop(&mut self) {
        if self.poolable {
            let (stop, _) = watch::channel(false);
            let stop = std::mem::replace(&mut self.stop, stop);
            if let Err(stop) = pool::give_back(self.core.clone(), self.address, stop) {
                let _ = stop.send(true);
            }
            return;
        }
        let _ = self.stop.send(true);
    }
}

/// WireMock's near-miss entry as the admin API writes it, with drydock's checks.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NearMissEntry {
    request: LoggedRequest,
    near_miss: Option<NearMiss>,
}

impl StubServer {
    /// Starts an in-process server on a free loopback port.
    pub async fn start() -> Result<Self, StubError> {
        StubServer::builder().start().await
    }

    /// Options for an in-process server.
    pub fn builder() -> StubServerBuilder {
        StubServerBuilder::default()
    }

    /// A handle to a server reached over HTTP: `http://host:port`, or a namespace of it,
    /// `http://host:port/__ns/<name>`. Fails unless the server answers its health check.
    ///
    /// A server whose admin API asks for credentials is given them in the URL,
    /// `http://user:password@host:port` (drydock's `STUB_ADMIN_URL`): the handle sends them with
    /// every admin request and keeps them out of [`url`](Self::url) and of its errors.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), drydock_stub::StubError> {
    /// let server = drydock_stub::StubServer::connect("http://127.0.0.1:8080").await?;
    /// let guarded = drydock_stub::StubServer::connect("http://drydock:s3cret@127.0.0.1:8081").await?;
    /// # let _ = (server, guarded);
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StubError> {
        let (url, credentials) = split_credentials(url.trim_end_matches('/'));
        let (root, namespace) = match url.split_once("/__ns/") {
            Some((root, name)) => (root.to_string(), name.to_string()),
            None => (url.to_string(), String::new()),
        };
        let server = StubServer {
            transport: Transport::Remote(Remote::new(&root, credentials)?),
            namespace,
            verify_on_drop: true,
            save_to: Mutex::new(None),
        };
        server.remote_call::<Value>("GET", "/health", None).await?;
        Ok(server)
    }

    /// The credentials the server's HTTP admin API asks for: an in-process server's own
    /// (generated unless the builder said otherwise), or those a remote handle was given.
    /// `None` when it asks for none.
    pub fn admin_credentials(&self) -> Option<AdminCredentials> {
        match &self.transport {
            Transport::Local(local) => local.core.admin.clone(),
            Transport::Remote(remote) => remote.credentials.clone(),
        }
    }

    /// [`url`](Self::url) with the admin credentials in it, `http://user:password@host:port`:
    /// for another process or tool that drives the admin API (reqwest, curl and
    /// [`connect`](Self::connect) send them as basic credentials). It holds the password: keep
    /// it out of logs.
    pub fn admin_url(&self) -> String {
        let url = self.url();
        match (self.admin_credentials(), url.split_once("://")) {
            (Some(credentials), Some((scheme, rest))) => format!(
                "{scheme}://{}:{}@{rest}",
                credentials.user(),
                credentials.password()
            ),
            _ => url,
        }
    }

    /// Whether dropping this handle verifies expectations.
    pub fn verify_on_drop(mut self, verify: bool) -> Self {
        self.verify_on_drop = verify;
        self
    }

    /// The base URL requests go to: `http://127.0.0.1:<port>` (`https://` for an HTTPS server),
    /// with `/__ns/<name>` for a namespace. Append the path: `format!("{}/orders", server.url())`.
    pub fn url(&self) -> String {
        let root = match &self.transport {
            Transport::Local(local) => {
                let scheme = if local.https { "https" } else { "http" };
                format!("{scheme}://{}", local.address)
            }
            Transport::Remote(remote) => remote.root.clone(),
        };
        self.with_namespace(root)
    }

    /// The HTTPS URL of a server that serves HTTPS on a second port
    /// ([`https_address`](StubServerBuilder::https_address)), or of an HTTPS server.
    pub fn https_url(&self) -> Option<String> {
        match &self.transport {
            Transport::Local(local) if local.https => Some(self.url()),
            Transport::Local(local) => local
                .https_address
                .map(|a| self.with_namespace(format!("https://{a}"))),
            Transport::Remote(_) => None,
        }
    }

    fn with_namespace(&self, root: String) -> String {
        if self.namespace.is_empty() {
            root
        } else {
            format!("{root}/__ns/{}", self.namespace)
        }
    }

    /// The socket address of an in-process server.
    pub fn address(&self) -> Option<SocketAddr> {
        match &self.transport {
            Transport::Local(local) => Some(local.address),
            Transport::Remote(_) => None,
        }
    }

    /// The CA that signed an in-process HTTPS server's certificate: trust it to call the server.
    /// For a remote server, see [`fetch_certificate_authority`](Self::fetch_certificate_authority).
    pub fn certificate_authority(&self) -> Option<CertificateAuthority> {
        match &self.transport {
            Transport::Local(local) => local.ca.clone(),
            Transport::Remote(_) => None,
        }
    }

    /// The CA of the server's HTTPS certificate, from wherever the server runs (for a remote one,
    /// `GET /__admin/tls/ca` over plain HTTP); `None` when it serves no HTTPS.
    pub async fn fetch_certificate_authority(
        &self,
    ) -> Result<Option<CertificateAuthority>, StubError> {
        match &self.transport {
            Transport::Local(local) => Ok(local.ca.clone()),
            Transport::Remote(remote) => {
                let reply: Value = remote.call("", "GET", "/tls/ca", None).await?;
                Ok(reply["pem"].as_str().map(CertificateAuthority::from_pem))
            }
        }
    }

    /// This handle's namespace (empty for the root).
    pub fn namespace_name(&self) -> &str {
        &self.namespace
    }

    /// A handle to namespace `name` of the same server, created from the root's stubs if new.
    /// Its stubs, journal and scenarios are its own; its [`url`](Self::url) routes to it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), drydock_stub::StubError> {
    /// let server = drydock_stub::StubServer::start().await?;
    /// let tenant = server.namespace("test-42").await?;
    /// assert!(tenant.url().ends_with("/__ns/test-42"));
    /// # Ok(()) }
    /// ```
    pub async fn namespace(&self, name: &str) -> Result<StubServer, StubError> {
        if !valid_name(name) {
            return Err(StubError::Admin {
                url: self.url(),
                operation: "creating a namespace".into(),
                message: format!(
                    "{name:?} is not a namespace name: use letters, digits, '-', '_' and '.'"
                ),
            });
        }
        match &self.transport {
            Transport::Local(local) => {
                local.core.namespaces.get_or_create(name);
            }
            Transport::Remote(remote) => {
                remote
                    .call::<Value>("", "POST", "/namespaces", Some(json!({ "name": name })))
                    .await?;
            }
        }
        Ok(self.sibling(self.transport.clone(), name, self.verify_on_drop))
    }

    /// Removes namespace `name` with its stubs and journal.
    pub async fn remove_namespace(&self, name: &str) -> Result<(), StubError> {
        match &self.transport {
            Transport::Local(local) => {
                if local.core.namespaces.remove(name) {
                    Ok(())
                } else {
                    Err(self.local_error(
                        "removing a namespace",
                        format!("no namespace is named {name:?}"),
                    ))
                }
            }
            Transport::Remote(remote) => remote
                .call::<Value>("", "DELETE", &format!("/namespaces/{name}"), None)
                .await
                .map(drop),
        }
    }

    /// Adds a stub and returns its id (a stub with the id of a mounted one replaces it).
    ///
    /// A proxy stub's upstream is added to the server's allowed upstreams: the test configured
    /// it (see [`StubServerBuilder::allowed_upstreams`]).
    pub async fn mount(&self, stub: Stub) -> Result<String, StubError> {
        self.allow_upstreams(std::slice::from_ref(&stub)).await?;
        if let Some(result) = self.local(|space| space.mount(stub.clone())) {
            return result;
        }
        let stub: Stub = self
            .remote_call("POST", "/mappings", Some(json!(stub)))
            .await?;
        Ok(stub.id.unwrap_or_default())
    }

    /// Adds several stubs: all of them, or none if one is invalid.
    pub async fn mount_all(
        &self,
        stubs: impl IntoIterator<Item = Stub>,
    ) -> Result<Vec<String>, StubError> {
        let stubs: Vec<Stub> = stubs.into_iter().collect();
        self.allow_upstreams(&stubs).await?;
        if let Some(result) = self.local(|space| space.mount_all(stubs.clone())) {
            return result;
        }
        let reply: Value = self
            .remote_call(
                "POST",
                "/mappings/import",
                Some(json!({ "mappings": stubs })),
            )
            .await?;
        self.decode(reply["ids"].clone(), "POST /__admin/mappings/import")
    }

    /// Mounts every WireMock mapping under `dir` (see [`mappings`](crate::mappings) for the
    /// layout and the supported subset). The files are read here, also for a remote server.
    /// The stubs are marked `persistent`, so [`reset`](Self::reset) keeps them, as WireMock keeps
    /// the stubs of its mapping files.
    pub async fn load_dir(&self, dir: impl AsRef<Path>) -> Result<Vec<String>, StubError> {
        let stubs = mappings::load_dir(dir)?;
        self.mount_all(stubs).await
    }

    /// Removes one stub.
    pub async fn remove(&self, id: &str) -> Result<(), StubError> {
        if let Some(result) = self.local(|space| space.remove(id)) {
            return result;
        }
        self.remote_call::<Value>("DELETE", &format!("/mappings/{id}"), None)
            .await
            .map(drop)
    }

    /// The mounted stubs, in matching order.
    pub async fn stubs(&self) -> Result<Vec<Stub>, StubError> {
        if let Some(result) = self.local(|space| Ok(space.stubs())) {
            return result;
        }
        let reply: Value = self.remote_call("GET", "/mappings", None).await?;
        self.decode(reply["mappings"].clone(), "GET /__admin/mappings")
    }

    /// As WireMock's reset: removes every stub except those loaded from mapping files
    /// ([`load_dir`](Self::load_dir), `--mappings`, or marked `persistent`), and forgets the
    /// journal, scenario states, recordings and settings.
    pub async fn reset(&self) -> Result<(), StubError> {
        if let Some(result) = self.local(|space| {
            space.reset();
            Ok(())
        }) {
            return result;
        }
        self.remote_call::<Value>("POST", "/reset", None)
            .await
            .map(drop)
    }

    /// Every request received, oldest first.
    pub async fn requests(&self) -> Result<Vec<LoggedRequest>, StubError> {
        Ok(self
            .serve_events()
            .await?
            .into_iter()
            .map(|event| event.request)
            .collect())
    }

    /// Every request received with how it was served (WireMock's serve events), oldest first.
    pub async fn serve_events(&self) -> Result<Vec<ServeEvent>, StubError> {
        if let Some(result) = self.local(|space| Ok(space.serve_events())) {
            return result;
        }
        let reply: Value = self.remote_call("GET", "/requests", None).await?;
        let mut events: Vec<ServeEvent> =
            self.decode(reply["requests"].clone(), "GET /__admin/requests")?;
        // The admin API lists them newest first, as WireMock does.
        events.reverse();
        for event in &mut events {
            event.request.was_matched = event.was_matched;
            event.request.stub_id = event.stub_mapping.as_ref().and_then(|s| s.id.clone());
        }
        Ok(events)
    }

    /// The journal's size, limit, and how many requests the limit dropped.
    pub async fn journal_stats(&self) -> Result<JournalStats, StubError> {
        if let Some(result) = self.local(|space| Ok(space.journal_stats())) {
            return result;
        }
        let reply: Value = self.remote_call("GET", "/requests", None).await?;
        self.decode(reply["meta"].clone(), "GET /__admin/requests")
    }

    /// Forgets the requests received so far (and the calls counted for expectations).
    pub async fn clear_requests(&self) -> Result<(), StubError> {
        if let Some(result) = self.local(|space| {
            space.clear_journal();
            Ok(())
        }) {
            return result;
        }
        self.remote_call::<Value>("DELETE", "/requests", None)
            .await
            .map(drop)
    }

    /// The requests no stub matched, each with its nearest stubs and what did not match;
    /// `to_string()` renders the report.
    pub async fn unmatched(&self) -> Result<Vec<Unmatched>, StubError> {
        if let Some(result) = self.local(|space| Ok(space.unmatched())) {
            return result;
        }
        let reply: Value = self.remote_call("GET", "/requests/unmatched", None).await?;
        let requests: Vec<LoggedRequest> =
            self.decode(reply["requests"].clone(), "GET /__admin/requests/unmatched")?;
        let reply: Value = self
            .remote_call("GET", "/requests/unmatched/near-misses", None)
            .await?;
        let entries: Vec<NearMissEntry> = self.decode(
            reply["nearMisses"].clone(),
            "GET /__admin/requests/unmatched/near-misses",
        )?;
        Ok(requests
            .into_iter()
            .map(|request| Unmatched {
                near_misses: entries
                    .iter()
                    .filter(|e| e.request.id == request.id)
                    .filter_map(|e| e.near_miss.clone())
                    .collect(),
                request,
            })
            .collect())
    }

    /// How many received requests match `pattern`.
    pub async fn count(&self, pattern: &RequestPattern) -> Result<u64, StubError> {
        if let Some(result) = self.local(|space| space.count(pattern)) {
            return result;
        }
        let reply: Value = self
            .remote_call("POST", "/requests/count", Some(json!(pattern)))
            .await?;
        Ok(reply["count"].as_u64().unwrap_or(0))
    }

    /// The received requests that match `pattern`, oldest first (WireMock's `findAll`).
    pub async fn find(&self, pattern: &RequestPattern) -> Result<Vec<LoggedRequest>, StubError> {
        if let Some(result) = self.local(|space| space.find(pattern)) {
            return result;
        }
        let reply: Value = self
            .remote_call("POST", "/requests/find", Some(json!(pattern)))
            .await?;
        self.decode(reply["requests"].clone(), "POST /__admin/requests/find")
    }

    /// Checks every expectation now; the error shows each broken one and every unmatched
    /// request with its nearest stub and the differences.
    pub async fn verify(&self) -> Result<(), StubError> {
        if let Some(result) = self.local(|space| space.verify().map_err(StubError::Verification)) {
            return result;
        }
        self.remote_call::<Value>("GET", "/verify", None)
            .await
            .map(drop)
    }

    /// Each scenario's state.
    pub async fn scenarios(&self) -> Result<HashMap<String, String>, StubError> {
        Ok(self
            .scenario_list()
            .await?
            .into_iter()
            .map(|s| (s.name, s.state))
            .collect())
    }

    /// Each scenario with its state, possible states and stubs, as WireMock lists them.
    pub async fn scenario_list(&self) -> Result<Vec<Scenario>, StubError> {
        if let Some(result) = self.local(|space| Ok(space.scenarios())) {
            return result;
        }
        let reply: Value = self.remote_call("GET", "/scenarios", None).await?;
        self.decode(reply["scenarios"].clone(), "GET /__admin/scenarios")
    }

    /// Puts every scenario back in its starting state.
    pub async fn reset_scenarios(&self) -> Result<(), StubError> {
        if let Some(result) = self.local(|space| {
            space.reset_scenarios();
            Ok(())
        }) {
            return result;
        }
        self.remote_call::<Value>("POST", "/scenarios/reset", None)
            .await
            .map(drop)
    }

    /// Delays applied to every response of the namespace.
    pub async fn settings(&self, settings: Settings) -> Result<(), StubError> {
        if let Some(result) = self.local(|space| {
            space.settings = settings.clone();
            Ok(())
        }) {
            return result;
        }
        self.remote_call::<Value>("POST", "/settings", Some(json!(settings)))
            .await
            .map(drop)
    }

    /// What to do with requests no stub matches (by default: `404` with the near-miss report).
    ///
    /// The upstream of pass-through and recording is added to the server's allowed upstreams:
    /// the test configured it.
    pub async fn on_miss(&self, on_miss: OnMiss) -> Result<(), StubError> {
        if let OnMiss::Record(recording) = &on_miss {
            *self.save_to.lock().unwrap_or_else(|e| e.into_inner()) = recording.save_to.clone();
        }
        let upstream = match &on_miss {
            OnMiss::Fail => None,
            OnMiss::PassThrough { target_base_url } => Some(target_base_url.clone()),
            OnMiss::Record(recording) => Some(recording.target_base_url.clone()),
        };
        if let Some(upstream) = upstream {
            // A URL that is not http(s) is refused below, saying so.
            if admin::check_target(&on_miss).is_ok() {
                self.allow_origins(&[upstream]).await?;
            }
        }
        if let Some(result) = self.local(|space| {
            admin::check_target(&on_miss).map_err(|message| StubError::Admin {
                url: String::new(),
                operation: "setting what happens on a miss".into(),
                message,
            })?;
            space.on_miss = on_miss.clone();
            Ok(())
        }) {
            return result;
        }
        self.remote_call::<Value>("PUT", "/on-miss", Some(json!(on_miss)))
            .await
            .map(drop)
    }

    /// Starts recording: requests no stub matches are forwarded to the upstream and each
    /// exchange is kept as a stub, secrets scrubbed. Same as `on_miss(OnMiss::Record(…))`.
    pub async fn start_recording(&self, recording: Recording) -> Result<(), StubError> {
        self.on_miss(OnMiss::Record(recording)).await
    }

    /// Stops recording and returns the recorded stubs, also written as mapping files to the
    /// recording's `save_to` directory when it has one.
    pub async fn stop_recording(&self) -> Result<Vec<Stub>, StubError> {
        let stubs = match self.local(|space| Ok(space.stop_recording())) {
            Some(result) => result?,
            None => {
                let reply: Value = self.remote_call("POST", "/recordings/stop", None).await?;
                self.decode(reply["mappings"].clone(), "POST /__admin/recordings/stop")?
            }
        };
        let dir = self
            .save_to
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(dir) = dir {
            mappings::save_dir(dir, &stubs)?;
        }
        Ok(stubs)
    }

    /// Adds the upstreams of `stubs`' proxies to the server's allow-list.
    async fn allow_upstreams(&self, stubs: &[Stub]) -> Result<(), StubError> {
        let upstreams: Vec<String> = stubs
            .iter()
            .filter_map(|s| s.response.proxy_base_url.clone())
            .collect();
        self.allow_origins(&upstreams).await
    }

    /// Adds upstreams to the server's allow-list: directly in process, through the
    /// authenticated admin API remotely. A URL that is not http(s) is left for the operation
    /// to refuse (it names the field).
    async fn allow_origins(&self, upstreams: &[String]) -> Result<(), StubError> {
        let upstreams: Vec<String> = upstreams
            .iter()
            .filter(|u| crate::guard::origin(u).is_ok())
            .cloned()
            .collect();
        if upstreams.is_empty() {
            return Ok(());
        }
        match &self.transport {
            Transport::Local(local) => {
                for upstream in &upstreams {
                    let _ = local.core.upstreams.allow(upstream);
                }
                Ok(())
            }
            Transport::Remote(remote) => remote.allow_upstreams(&upstreams).await,
        }
    }

    /// Runs a typed operation on this handle's namespace of an in-process server; `None` for a
    /// remote one.
    fn local<T>(
        &self,
        operation: impl FnOnce(&mut Namespace) -> Result<T, StubError>,
    ) -> Option<Result<T, StubError>> {
        let Transport::Local(local) = &self.transport else {
            return None;
        };
        Some(match local.core.namespaces.get(&self.namespace) {
            Some(space) => operation(&mut lock(&space)),
            None => Err(self.local_error(
                "using a namespace",
                format!(
                    "namespace {:?} does not exist (it was removed)",
                    self.namespace
                ),
            )),
        })
    }

    fn local_error(&self, operation: &str, message: String) -> StubError {
        StubError::Admin {
            url: self.url(),
            operation: operation.into(),
            message,
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        value: Value,
        operation: &str,
    ) -> Result<T, StubError> {
        serde_json::from_value(value).map_err(|e| StubError::Admin {
            url: self.url(),
            operation: operation.into(),
            message: format!("unexpected answer: {e}"),
        })
    }

    async fn remote_call<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, StubError> {
        match &self.transport {
            Transport::Remote(remote) => remote.call(&self.namespace, method, path, body).await,
            Transport::Local(_) => Err(self.local_error(
                "an admin call",
                "an in-process server is called directly".into(),
            )),
        }
    }

    /// Another handle on the same server: its own namespace, recording and drop behaviour.
    fn sibling(&self, transport: Transport, namespace: &str, verify_on_drop: bool) -> StubServer {
        StubServer {
            transport,
            namespace: namespace.to_string(),
            verify_on_drop,
            save_to: Mutex::new(None),
        }
    }

    /// Verification for `Drop`, which cannot await: in place for an in-process server, on a
    /// thread with a runtime of its own (bounded) for a remote one.
    fn verify_now(&self) -> Result<(), StubError> {
        match &self.transport {
            Transport::Local(_) => self
                .local(|space| space.verify().map_err(StubError::Verification))
                .unwrap_or(Ok(())),
            Transport::Remote(remote) => {
                // A client of its own: the handle's pooled connections are driven by the
                // caller's runtime, which is blocked in this drop until the check returns.
                let transport = Transport::Remote(remote.fresh()?);
                let handle = self.sibling(transport, &self.namespace, false);
                std::thread::scope(|scope| {
                    scope
                        .spawn(|| {
                            let runtime = tokio::runtime::Builder::new_current_thread()
                                .enable_all()
                                .build()
                                .map_err(|e| StubError::Admin {
                                    url: handle.url(),
                                    operation: "verifying on drop".into(),
                                    message: e.to_string(),
                                })?;
                            runtime.block_on(handle.verify())
                        })
                        .join()
                        .unwrap_or(Ok(()))
                })
            }
        }
    }
}

/// `http://user:password@host…` split into the URL without them and the credentials.
fn split_credentials(url: &str) -> (String, Option<AdminCredentials>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return (url.to_string(), None);
    };
    let credentials = match rest[..at].split_once(':') {
        Some((user, password)) => AdminCredentials::new(user, password),
        None => AdminCredentials::new(&rest[..at], ""),
    };
    (format!("{scheme}://{}", &rest[at + 1..]), Some(credentials))
}

impl Drop for StubServer {
    fn drop(&mut self) {
        if !self.verify_on_drop || std::thread::panicking() {
            return;
        }
        match self.verify_now() {
            Ok(()) => {}
            Err(StubError::Verification(failure)) => panic!("{failure}"),
            // The server is gone or unreachable: there is nothing left to verify against.
            Err(e) => tracing::warn!(error = %e, "could not verify stub expectations on drop"),
        }
    }
}

impl std::fmt::Debug for StubServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StubServer")
            .field("url", &self.url())
            .finish()
    }
}
