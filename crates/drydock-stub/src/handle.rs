//! [`StubServer`]: one handle for a stub server in this process or anywhere reachable over HTTP.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::{
    error::StubError,
    mappings,
    model::{RequestPattern, Stub},
    namespace::{valid_name, Settings},
    record::{OnMiss, Recording},
    request::LoggedRequest,
    server::{self, admin, Core},
    verify::{Unmatched, VerificationFailure},
};

/// How long one admin request to a remote server may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A stub server: started in this process ([`StubServer::start`], about a millisecond, its own
/// port) or reached over HTTP ([`StubServer::connect`], e.g. the drydock-stub container). Both
/// have the same methods and the same behaviour, because both go through the same admin API.
///
/// A handle is bound to one namespace (the root unless made with [`namespace`](Self::namespace)).
/// When it is dropped it verifies the expectations of that namespace and panics with the report
/// if they are not met (unless the thread is already panicking, or
/// [`verify_on_drop(false)`](Self::verify_on_drop)); an in-process server stops with its last
/// handle.
///
/// ```
/// use drydock_stub::{Response, Stub, StubServer, Times};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = StubServer::start().await?;
/// server
///     .mount(Stub::get("/health").respond(Response::ok().body("up")).expect(Times::Exactly(1)))
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
    Remote {
        client: reqwest::Client,
        /// The server's root URL, without a namespace.
        root: String,
    },
}

/// An in-process server; dropping the last reference stops it.
struct Local {
    core: Arc<Core>,
    address: SocketAddr,
    shutdown: Mutex<Option<oneshot::Sender<()>>>,
}

impl Drop for Local {
    fn drop(&mut self) {
        if let Some(stop) = self
            .shutdown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = stop.send(());
        }
    }
}

/// Options for an in-process server.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), drydock_stub::StubError> {
/// let server = drydock_stub::StubServer::builder()
///     .address("127.0.0.1:0".parse().unwrap())
///     .threads(2)
///     .start()
///     .await?;
/// # let _ = server;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `.start()`"]
pub struct StubServerBuilder {
    address: SocketAddr,
    threads: usize,
    verify_on_drop: bool,
}

impl Default for StubServerBuilder {
    fn default() -> Self {
        StubServerBuilder {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            threads: 1,
            verify_on_drop: true,
        }
    }
}

impl StubServerBuilder {
    /// Where to listen (`127.0.0.1:0`, a free loopback port, by default).
    pub fn address(mut self, address: SocketAddr) -> Self {
        self.address = address;
        self
    }

    /// Worker threads serving requests (1 by default, which suits a test's own server).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Whether dropping the handle verifies expectations (yes by default).
    pub fn verify_on_drop(mut self, verify: bool) -> Self {
        self.verify_on_drop = verify;
        self
    }

    /// Starts the server on a thread of its own, so it serves whatever the test's runtime does
    /// (blocking clients included). The port is bound before this returns.
    pub async fn start(self) -> Result<StubServer, StubError> {
        self.start_blocking()
    }

    /// [`start`](Self::start) for code without an async runtime.
    pub fn start_blocking(self) -> Result<StubServer, StubError> {
        let bind_error = |e: std::io::Error| StubError::Bind {
            address: self.address.to_string(),
            cause: e.to_string(),
        };
        let listener = std::net::TcpListener::bind(self.address).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let address = listener.local_addr().map_err(bind_error)?;
        let runtime = if self.threads == 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(self.threads)
                .enable_all()
                .build()
        }
        .map_err(bind_error)?;
        let core = Arc::new(Core::new());
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = core.clone();
        std::thread::Builder::new()
            .name(format!("drydock-stub {address}"))
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => {
                            server::accept_loop(listener, serving, async {
                                let _ = stopped.await;
                            })
                            .await
                        }
                        Err(e) => tracing::error!(error = %e, "stub server could not listen"),
                    }
                });
            })
            .map_err(bind_error)?;
        tracing::debug!(%address, "stub server started");
        Ok(StubServer {
            transport: Transport::Local(Arc::new(Local {
                core,
                address,
                shutdown: Mutex::new(Some(stop)),
            })),
            namespace: String::new(),
            verify_on_drop: self.verify_on_drop,
            save_to: Mutex::new(None),
        })
    }
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
    /// ```no_run
    /// # async fn demo() -> Result<(), drydock_stub::StubError> {
    /// let server = drydock_stub::StubServer::connect("http://127.0.0.1:8080").await?;
    /// # let _ = server;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StubError> {
        let url = url.trim_end_matches('/');
        let (root, namespace) = match url.split_once("/__ns/") {
            Some((root, name)) => (root.to_string(), name.to_string()),
            None => (url.to_string(), String::new()),
        };
        let client = reqwest::Client::builder()
            .timeout(ADMIN_TIMEOUT)
            .build()
            .map_err(|e| StubError::Admin {
                url: root.clone(),
                operation: "building an HTTP client".into(),
                message: e.to_string(),
            })?;
        let server = StubServer {
            transport: Transport::Remote { client, root },
            namespace,
            verify_on_drop: true,
            save_to: Mutex::new(None),
        };
        server.call::<Value>("GET", "/health", None).await?;
        Ok(server)
    }

    /// Whether dropping this handle verifies expectations.
    pub fn verify_on_drop(mut self, verify: bool) -> Self {
        self.verify_on_drop = verify;
        self
    }

    /// The base URL requests go to: `http://127.0.0.1:<port>`, with `/__ns/<name>` for a
    /// namespace. Append the path: `format!("{}/orders", server.url())`.
    pub fn url(&self) -> String {
        let root = match &self.transport {
            Transport::Local(local) => format!("http://{}", local.address),
            Transport::Remote { root, .. } => root.clone(),
        };
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
            Transport::Remote { .. } => None,
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
        self.sibling(self.transport.clone(), "", false)
            .call::<Value>("POST", "/namespaces", Some(json!({ "name": name })))
            .await?;
        Ok(self.sibling(self.transport.clone(), name, self.verify_on_drop))
    }

    /// Removes namespace `name` with its stubs and journal.
    pub async fn remove_namespace(&self, name: &str) -> Result<(), StubError> {
        self.sibling(self.transport.clone(), "", false)
            .call::<Value>("DELETE", &format!("/namespaces/{name}"), None)
            .await
            .map(drop)
    }

    /// Adds a stub and returns its id (a stub with the id of a mounted one replaces it).
    pub async fn mount(&self, stub: Stub) -> Result<String, StubError> {
        let stub: Stub = self.call("POST", "/mappings", Some(json!(stub))).await?;
        Ok(stub.id.unwrap_or_default())
    }

    /// Adds several stubs: all of them, or none if one is invalid.
    pub async fn mount_all(
        &self,
        stubs: impl IntoIterator<Item = Stub>,
    ) -> Result<Vec<String>, StubError> {
        let stubs: Vec<Stub> = stubs.into_iter().collect();
        let reply: Value = self
            .call(
                "POST",
                "/mappings/import",
                Some(json!({ "mappings": stubs })),
            )
            .await?;
        Ok(serde_json::from_value(reply["ids"].clone()).unwrap_or_default())
    }

    /// Mounts every WireMock mapping under `dir` (see [`mappings`](crate::mappings) for the
    /// layout and the supported subset). The files are read here, also for a remote server.
    pub async fn load_dir(&self, dir: impl AsRef<Path>) -> Result<Vec<String>, StubError> {
        let stubs = mappings::load_dir(dir)?;
        self.mount_all(stubs).await
    }

    /// Removes one stub.
    pub async fn remove(&self, id: &str) -> Result<(), StubError> {
        self.call::<Value>("DELETE", &format!("/mappings/{id}"), None)
            .await
            .map(drop)
    }

    /// The mounted stubs, in matching order.
    pub async fn stubs(&self) -> Result<Vec<Stub>, StubError> {
        let reply: Value = self.call("GET", "/mappings", None).await?;
        self.decode(reply["mappings"].clone(), "GET /__admin/mappings")
    }

    /// Removes every stub, the journal, scenario states, recordings and settings.
    pub async fn reset(&self) -> Result<(), StubError> {
        self.call::<Value>("POST", "/reset", None).await.map(drop)
    }

    /// Every request received, in order.
    pub async fn requests(&self) -> Result<Vec<LoggedRequest>, StubError> {
        let reply: Value = self.call("GET", "/requests", None).await?;
        self.decode(reply["requests"].clone(), "GET /__admin/requests")
    }

    /// Forgets the requests received so far.
    pub async fn clear_requests(&self) -> Result<(), StubError> {
        self.call::<Value>("DELETE", "/requests", None)
            .await
            .map(drop)
    }

    /// The requests no stub matched, each with its nearest stubs and what did not match;
    /// `to_string()` renders the report.
    pub async fn unmatched(&self) -> Result<Vec<Unmatched>, StubError> {
        let reply: Value = self
            .call("GET", "/requests/unmatched/near-misses", None)
            .await?;
        self.decode(
            reply["nearMisses"].clone(),
            "GET /__admin/requests/unmatched/near-misses",
        )
    }

    /// How many received requests match `pattern` (build one with `Stub::…().request`).
    pub async fn count(&self, pattern: &RequestPattern) -> Result<u64, StubError> {
        let reply: Value = self
            .call("POST", "/requests/count", Some(json!(pattern)))
            .await?;
        Ok(reply["count"].as_u64().unwrap_or(0))
    }

    /// Checks every expectation now; the error shows each broken one and every unmatched
    /// request with its nearest stub and the differences.
    pub async fn verify(&self) -> Result<(), StubError> {
        self.call::<Value>("GET", "/verify", None).await.map(drop)
    }

    /// Each scenario's state.
    pub async fn scenarios(&self) -> Result<HashMap<String, String>, StubError> {
        let reply: Value = self.call("GET", "/scenarios", None).await?;
        let mut states = HashMap::new();
        for scenario in reply["scenarios"].as_array().into_iter().flatten() {
            if let (Some(name), Some(state)) =
                (scenario["name"].as_str(), scenario["state"].as_str())
            {
                states.insert(name.to_string(), state.to_string());
            }
        }
        Ok(states)
    }

    /// Puts every scenario back in its starting state.
    pub async fn reset_scenarios(&self) -> Result<(), StubError> {
        self.call::<Value>("POST", "/scenarios/reset", None)
            .await
            .map(drop)
    }

    /// Delays applied to every response of the namespace.
    pub async fn settings(&self, settings: Settings) -> Result<(), StubError> {
        self.call::<Value>("POST", "/settings", Some(json!(settings)))
            .await
            .map(drop)
    }

    /// What to do with requests no stub matches (by default: `404` with the near-miss report).
    pub async fn on_miss(&self, on_miss: OnMiss) -> Result<(), StubError> {
        if let OnMiss::Record(recording) = &on_miss {
            *self.save_to.lock().unwrap_or_else(|e| e.into_inner()) = recording.save_to.clone();
        }
        self.call::<Value>("PUT", "/on-miss", Some(json!(on_miss)))
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
        let reply: Value = self.call("POST", "/recordings/stop", None).await?;
        let stubs: Vec<Stub> =
            self.decode(reply["mappings"].clone(), "POST /__admin/recordings/stop")?;
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

    fn decode<T: DeserializeOwned>(&self, value: Value, operation: &str) -> Result<T, StubError> {
        serde_json::from_value(value).map_err(|e| StubError::Admin {
            url: self.url(),
            operation: operation.into(),
            message: format!("unexpected answer: {e}"),
        })
    }

    /// One admin request: `path` is below `/__admin`, in this handle's namespace.
    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, StubError> {
        let operation = format!("{method} {}/__admin{path}", self.prefix());
        let (status, reply) = match &self.transport {
            Transport::Local(local) => {
                let bytes = body.map(|b| b.to_string()).unwrap_or_default();
                let url = format!("/__admin{path}");
                let reply =
                    admin::dispatch(&local.core, &self.namespace, method, &url, bytes.as_bytes());
                (reply.status.as_u16(), reply.body)
            }
            Transport::Remote { client, .. } => {
                let url = format!("{}/__admin{path}", self.url());
                let method =
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
                let mut request = client.request(method, &url);
                if let Some(body) = body {
                    request = request
                        .header("content-type", "application/json")
                        .body(body.to_string());
                }
                let failed = |message: String| StubError::Admin {
                    url: self.url(),
                    operation: operation.clone(),
                    message,
                };
                let response = request.send().await.map_err(|e| failed(e.to_string()))?;
                let status = response.status().as_u16();
                let bytes = response.bytes().await.map_err(|e| failed(e.to_string()))?;
                let reply = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                    json!({"errors": [{"title": "Not JSON", "detail": String::from_utf8_lossy(&bytes)}]})
                });
                (status, reply)
            }
        };
        if (200..300).contains(&status) {
            return self.decode(reply, &operation);
        }
        if status == 409 {
            if let Ok(failure) =
                serde_json::from_value::<VerificationFailure>(reply["verification"].clone())
            {
                return Err(StubError::Verification(failure));
            }
        }
        if status == 404 && reply["errors"][0]["title"] == "No such stub" {
            let id = path.rsplit('/').next().unwrap_or_default();
            return Err(StubError::NoSuchStub(id.to_string()));
        }
        let detail = reply["errors"][0]["detail"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| reply.to_string());
        Err(StubError::Admin {
            url: self.url(),
            operation,
            message: format!("{status}: {detail}"),
        })
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

    fn prefix(&self) -> String {
        if self.namespace.is_empty() {
            String::new()
        } else {
            format!("/__ns/{}", self.namespace)
        }
    }

    /// Verification for `Drop`, which cannot await: in place for an in-process server, on a
    /// thread with a runtime of its own (bounded) for a remote one.
    fn verify_now(&self) -> Result<(), StubError> {
        match &self.transport {
            Transport::Local(local) => {
                let reply =
                    admin::dispatch(&local.core, &self.namespace, "GET", "/__admin/verify", b"");
                match serde_json::from_value::<VerificationFailure>(
                    reply.body["verification"].clone(),
                ) {
                    Ok(failure) if reply.status.as_u16() == 409 => {
                        Err(StubError::Verification(failure))
                    }
                    _ => Ok(()),
                }
            }
            Transport::Remote { root, .. } => {
                // A client of its own: the handle's pooled connections are driven by the
                // caller's runtime, which is blocked in this drop until the check returns.
                let client = reqwest::Client::builder()
                    .timeout(ADMIN_TIMEOUT)
                    .build()
                    .map_err(|e| StubError::Admin {
                        url: self.url(),
                        operation: "verifying on drop".into(),
                        message: e.to_string(),
                    })?;
                let transport = Transport::Remote {
                    client,
                    root: root.clone(),
                };
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
