//! [`StubServerBuilder`]: the options of an in-process server, and starting it.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use tokio::sync::watch;

use super::{pool, Local, StubServer, Transport};
use crate::{
    error::StubError,
    guard::{AdminCredentials, Upstreams},
    journal::DEFAULT_JOURNAL_LIMIT,
    namespace::Options,
    server::{self, runtime, Core},
    tls::Tls,
};

/// Options for an in-process server.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), drydock_stub::StubError> {
/// let server = drydock_stub::StubServer::builder()
///     .address("127.0.0.1:0".parse().unwrap())
///     .max_request_journal_entries(Some(1_000))
///     .start()
///     .await?;
/// # let _ = server;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `.start()`"]
pub struct StubServerBuilder {
    address: SocketAddr,
    threads: Option<usize>,
    verify_on_drop: bool,
    https: bool,
    https_address: Option<SocketAddr>,
    tls_hosts: Vec<String>,
    files: Option<PathBuf>,
    journal_limit: Option<usize>,
    admin: AdminAuth,
    allowed_upstreams: Option<Vec<String>>,
}

/// What the admin API of a server to start asks for.
#[derive(Clone, Debug, PartialEq)]
enum AdminAuth {
    /// Credentials made for this server (an in-process server's default).
    Generated,
    Given(AdminCredentials),
    Open,
}

impl Default for StubServerBuilder {
    fn default() -> Self {
        StubServerBuilder {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            threads: None,
            verify_on_drop: true,
            https: false,
            https_address: None,
            tls_hosts: Vec::new(),
            files: None,
            journal_limit: Some(DEFAULT_JOURNAL_LIMIT),
            admin: AdminAuth::Generated,
            allowed_upstreams: None,
        }
    }
}

impl StubServerBuilder {
    /// Where to listen (`127.0.0.1:0`, a free loopback port, by default).
    pub fn address(mut self, address: SocketAddr) -> Self {
        self.address = address;
        self
    }

    /// Worker threads of a runtime of the server's own. By default a server runs on a runtime
    /// shared by the process's in-process servers (two threads of its own, started once), which
    /// makes starting one cheap; a server under heavy load can ask for threads of its own.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads.max(1));
        self
    }

    /// Whether dropping the handle verifies expectations (yes by default).
    pub fn verify_on_drop(mut self, verify: bool) -> Self {
        self.verify_on_drop = verify;
        self
    }

    /// Serves HTTPS instead of HTTP, with a certificate from a CA made for this server alone
    /// (see [`StubServer::certificate_authority`]).
    pub fn https(mut self) -> Self {
        self.https = true;
        self
    }

    /// Serves HTTPS on a second address as well as HTTP on the first (WireMock's
    /// `--https-port`); the CA is also served at `GET /__admin/tls/ca`.
    pub fn https_address(mut self, address: SocketAddr) -> Self {
        self.https_address = Some(address);
        self
    }

    /// More names the HTTPS certificate is valid for, besides `localhost`, `127.0.0.1` and `::1`
    /// (a container's name or network alias).
    pub fn tls_host(mut self, host: impl Into<String>) -> Self {
        self.tls_hosts.push(host.into());
        self
    }

    /// Where `bodyFileName` is read from for stubs mounted through the API (WireMock's
    /// `__files`). Mapping directories loaded with `load_dir` read their own `__files`.
    pub fn files(mut self, dir: impl Into<PathBuf>) -> Self {
        self.files = Some(dir.into());
        self
    }

    /// The most requests each namespace's journal keeps (WireMock's
    /// `--max-request-journal-entries`): older ones are dropped, and counted, to make room.
    /// 10 000 by default; `None` keeps every request. Expected call counts (`expect`) are
    /// counted apart and stay exact whatever the limit.
    pub fn max_request_journal_entries(mut self, limit: Option<usize>) -> Self {
        self.journal_limit = limit;
        self
    }

    /// The credentials the HTTP admin API (`/__admin/*`) asks for, as WireMock's
    /// `--admin-api-basic-auth`; `None` leaves it open to whoever reaches the port, as WireMock
    /// and wiremock-rs do by default.
    ///
    /// By default an in-process server makes credentials of its own
    /// ([`StubServer::admin_credentials`]): its port is on loopback, which every local user
    /// reaches, and the test's handle needs none (it calls the server directly). Stubbed
    /// endpoints never ask for credentials.
    pub fn admin_api_basic_auth(mut self, credentials: Option<AdminCredentials>) -> Self {
        self.admin = match credentials {
            Some(credentials) => AdminAuth::Given(credentials),
            None => AdminAuth::Open,
        };
        self
    }

    /// Proxy stubs, pass-through and recording forward only to these origins (URLs; their
    /// scheme, host and port count), and to those a handle or an authenticated admin call adds
    /// (`POST /__admin/upstreams`); anything else is refused with `403`. Without this, any
    /// upstream is reached, as WireMock does. An empty list allows none to start with.
    pub fn allowed_upstreams(mut self, urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.allowed_upstreams = Some(urls.into_iter().map(Into::into).collect());
        self
    }

    /// Starts the server on threads other than the caller's, so it serves whatever the test's
    /// runtime does (blocking clients included). The port is bound before this returns.
    ///
    /// A server with the default options comes from a pool of the process's earlier servers when
    /// one is free (as wiremock-rs does): reset to empty, on the same port, so a client's
    /// keep-alive connections to it stay usable. Set any option (e.g. `.address(..)`) for a
    /// server of its own.
    pub async fn start(self) -> Result<StubServer, StubError> {
        self.start_blocking()
    }

    /// [`start`](Self::start) for code without an async runtime.
    pub fn start_blocking(self) -> Result<StubServer, StubError> {
        let poolable = self.is_default();
        if poolable {
            if let Some((core, address, stop)) = pool::take() {
                tracing::debug!(%address, "stub server recycled from the pool");
                return Ok(self.handle(Local {
                    core,
                    address,
                    https: false,
                    https_address: None,
                    ca: None,
                    stop,
                    poolable,
                }));
            }
        }
        let bind = |address: SocketAddr| {
            let failed = |e: std::io::Error| StubError::Bind {
                address: address.to_string(),
                cause: e.to_string(),
            };
            let listener = std::net::TcpListener::bind(address).map_err(failed)?;
            listener.set_nonblocking(true).map_err(failed)?;
            let bound = listener.local_addr().map_err(failed)?;
            Ok::<_, StubError>((listener, bound))
        };
        let upstreams = match &self.allowed_upstreams {
            None => Upstreams::default(),
            Some(urls) => Upstreams::only(urls).map_err(|message| StubError::Admin {
                url: self.address.to_string(),
                operation: "starting with allowed upstreams".into(),
                message,
            })?,
        };
        let (listener, address) = bind(self.address)?;
        let second = self.https_address.map(bind).transpose()?;
        let tls = if self.https || second.is_some() {
            Some(Tls::generate(&self.tls_hosts)?)
        } else {
            None
        };
        let mut core = Core::new(Options {
            files: self.files.clone(),
            journal_limit: self.journal_limit,
        });
        core.ca = tls.as_ref().map(|t| t.ca.clone());
        core.admin = match &self.admin {
            AdminAuth::Generated => Some(AdminCredentials::generate()),
            AdminAuth::Given(credentials) => Some(credentials.clone()),
            AdminAuth::Open => None,
        };
        core.upstreams = upstreams;
        let core = Arc::new(core);
        let (stop, stopped) = watch::channel(false);

        let mut listeners = vec![(
            listener,
            if self.https {
                tls.as_ref().map(|t| t.acceptor.clone())
            } else {
                None
            },
        )];
        let https_address = second.as_ref().map(|(_, a)| *a);
        if let Some((second, _)) = second {
            listeners.push((second, tls.as_ref().map(|t| t.acceptor.clone())));
        }
        let serve = {
            let core = core.clone();
            async move {
                let mut loops = Vec::new();
                for (listener, acceptor) in listeners {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => loops.push(server::accept_loop(
                            listener,
                            core.clone(),
                            acceptor,
                            stopped.clone(),
                        )),
                        Err(e) => tracing::error!(error = %e, "stub server could not listen"),
                    }
                }
                futures::future::join_all(loops).await;
            }
        };
        let bind_error = |cause: String| StubError::Bind {
            address: self.address.to_string(),
            cause,
        };
        match self.threads {
            None => {
                runtime::shared().map_err(bind_error)?.spawn(serve);
            }
            Some(threads) => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .enable_all()
                    .build()
                    .map_err(|e| bind_error(e.to_string()))?;
                std::thread::Builder::new()
                    .name(format!("drydock-stub {address}"))
                    .spawn(move || runtime.block_on(serve))
                    .map_err(|e| bind_error(e.to_string()))?;
            }
        }
        tracing::debug!(%address, https = self.https, "stub server started");
        let local = Local {
            core,
            address,
            https: self.https,
            https_address,
            ca: tls.map(|t| t.ca),
            stop,
            poolable,
        };
        Ok(self.handle(local))
    }

    /// Whether this builder asks for nothing a pooled server might not have.
    fn is_default(&self) -> bool {
        let default = StubServerBuilder::default();
        self.address == default.address
            && self.threads.is_none()
            && !self.https
            && self.https_address.is_none()
            && self.files.is_none()
            && self.journal_limit == default.journal_limit
            && self.admin == default.admin
            && self.allowed_upstreams.is_none()
    }

    fn handle(&self, local: Local) -> StubServer {
        StubServer {
            transport: Transport::Local(Arc::new(local)),
            namespace: String::new(),
            verify_on_drop: self.verify_on_drop,
            save_to: Mutex::new(None),
        }
    }
}
