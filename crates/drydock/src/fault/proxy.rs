//! A fault proxy: a TCP listener on loopback that forwards to one upstream, through toxics.

use crate::sync::lock;
use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, Weak,
    },
};

use tokio::{net::TcpSocket, sync::watch, task::JoinHandle};

use super::{
    link,
    runtime::runtime,
    toxic::Toxic,
    traffic::{Counters, Traffic},
    Protocol,
};
use crate::error::{Error, Result};

/// A toxic in place, with an id that tells a re-added toxic of the same name from the old one.
#[derive(Clone, Debug)]
pub(crate) struct Placed {
    pub id: u64,
    pub toxic: Toxic,
}

pub(crate) struct Inner {
    pub name: String,
    pub listen: SocketAddr,
    pub upstream: Mutex<String>,
    pub toxics: watch::Sender<Arc<Vec<Placed>>>,
    pub enabled: watch::Sender<bool>,
    pub counters: Counters,
    pub protocol: Protocol,
    next_id: AtomicU64,
    /// One accept loop per listening address: the loopback one, and any network's.
    accept: Mutex<Vec<Acceptor>>,
    /// Every address the proxy listens on (bound again when the link comes back up).
    addresses: Mutex<Vec<SocketAddr>>,
}

struct Acceptor {
    task: JoinHandle<()>,
    /// The listening socket, to shut it down at once (its task ends a moment later).
    socket: socket2::Socket,
}

/// Stops the proxy when the last handle goes: open links hold the proxy's state, not this.
struct Owner(Arc<Inner>);

impl Drop for Owner {
    fn drop(&mut self) {
        stop_accepting(&self.0);
        // Every link watches this: they close with the proxy.
        self.0.enabled.send_replace(false);
    }
}

/// A TCP proxy with Toxiproxy's toxics, listening on `127.0.0.1` and forwarding to one
/// upstream. Cheap to clone (a handle); the proxy stops when the last handle is dropped.
///
/// ```no_run
/// use drydock::fault::{FaultProxy, Toxic};
/// use std::time::Duration;
///
/// # fn demo() -> drydock::Result<()> {
/// let proxy = FaultProxy::start("postgres", "127.0.0.1:5432")?;
/// println!("connect to {}", proxy.listen_addr());
/// let slow = proxy.add(Toxic::latency(Duration::from_millis(100)))?; // removed when dropped
/// let _down = proxy.down();                                          // refused until dropped
/// println!("{}", proxy.traffic());
/// # drop(slow); Ok(()) }
/// ```
#[derive(Clone)]
pub struct FaultProxy {
    pub(crate) inner: Arc<Inner>,
    _owner: Arc<Owner>,
}

impl FaultProxy {
    /// A proxy to `upstream` (`host:port`) on a free loopback port. Fails when nothing
    /// answers at `upstream`: a proxy to a dead address is a mistake to report, not to hide.
    pub fn start(name: impl Into<String>, upstream: impl Into<String>) -> Result<Self> {
        Self::start_on(name, "127.0.0.1:0", upstream)
    }

    /// A proxy listening on `listen` (e.g. for Toxiproxy's API, which names the address).
    /// Fails, as [`start`](Self::start) does, when nothing answers at `upstream`.
    pub fn start_on(
        name: impl Into<String>,
        listen: &str,
        upstream: impl Into<String>,
    ) -> Result<Self> {
        let (name, upstream) = (name.into(), upstream.into());
        check_upstream(&name, &upstream)?;
        Self::start_with(name, upstream, listen, Protocol::Raw)
    }

    pub(crate) fn start_with(
        name: String,
        upstream: String,
        listen: &str,
        protocol: Protocol,
    ) -> Result<Self> {
        let bad = |problem: String| Error::Fault {
            proxy: name.clone(),
            problem,
            fix: "give a free ip:port of this machine to listen on (port 0 picks one)".into(),
        };
        let wanted: SocketAddr = listen
            .parse()
            .map_err(|e| bad(format!("listen address {listen:?} is not ip:port: {e}")))?;
        let listener = bind(wanted).map_err(|e| bad(format!("cannot listen on {listen}: {e}")))?;
        let listen = listener
            .local_addr()
            .map_err(|e| bad(format!("cannot read the listen address: {e}")))?;
        let inner = Arc::new(Inner {
            name,
            listen,
            upstream: Mutex::new(upstream),
            toxics: watch::channel(Arc::new(Vec::new())).0,
            enabled: watch::channel(true).0,
            counters: Counters::default(),
            protocol,
            next_id: AtomicU64::new(0),
            accept: Mutex::new(Vec::new()),
            addresses: Mutex::new(vec![listen]),
        });
        accept_on(&inner, listener);
        Ok(FaultProxy {
            _owner: Arc::new(Owner(Arc::clone(&inner))),
            inner,
        })
    }

    /// The proxy's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Where clients connect.
    pub fn listen_addr(&self) -> SocketAddr {
        self.inner.listen
    }

    /// Where it forwards to.
    pub fn upstream(&self) -> String {
        lock(&self.inner.upstream).clone()
    }

    /// Where new connections go now: the container's own address on its bridge when the proxy
    /// can skip the published port's proxy (see the [module](super) docs), else
    /// [`upstream`](Self::upstream).
    pub fn connects_to(&self) -> String {
        let upstream = self.upstream();
        super::shortcut::lookup(&upstream).map_or(upstream, |address| address.to_string())
    }

    /// Forwards new connections to `upstream` from now on (a restarted container's new port).
    pub fn set_upstream(&self, upstream: impl Into<String>) {
        *lock(&self.inner.upstream) = upstream.into();
    }

    /// Adds `toxic` after those in place (toxics stack in order); it acts on open connections
    /// too. The guard removes it when dropped; [`ToxicGuard::keep`] leaves it in place.
    pub fn add(&self, toxic: Toxic) -> Result<ToxicGuard> {
        toxic.validate().map_err(|e| self.named(e))?;
        let name = toxic.name();
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut duplicate = false;
        self.inner.toxics.send_modify(|toxics| {
            if toxics.iter().any(|p| p.toxic.name() == name) {
                duplicate = true;
                return;
            }
            let mut next = (**toxics).clone();
            next.push(Placed { id, toxic });
            *toxics = Arc::new(next);
        });
        if duplicate {
            return Err(Error::Fault {
                proxy: self.inner.name.clone(),
                problem: format!("a toxic named {name} is already in place"),
                fix: "name the second one otherwise with .named(..), or drop the first guard"
                    .into(),
            });
        }
        Ok(ToxicGuard {
            proxy: Arc::downgrade(&self.inner),
            name,
            id,
            keep: false,
        })
    }

    /// Adds `toxic` on both streams: two toxics, `<name>_upstream` and `<name>_downstream`
    /// (Toxiproxy keeps one stream per toxic; a toxic on "both" is these two).
    pub fn add_both(&self, toxic: Toxic) -> Result<(ToxicGuard, ToxicGuard)> {
        let base = toxic
            .name
            .clone()
            .unwrap_or_else(|| toxic.kind.type_name().to_string());
        let up = self.add(toxic.clone().upstream().named(format!("{base}_upstream")))?;
        let down = self.add(toxic.downstream().named(format!("{base}_downstream")))?;
        Ok((up, down))
    }

    /// Replaces the toxic named `toxic.name()` (its place in the stack kept).
    pub fn update(&self, toxic: Toxic) -> Result<()> {
        toxic.validate().map_err(|e| self.named(e))?;
        let name = toxic.name();
        let mut found = false;
        self.inner.toxics.send_modify(|toxics| {
            let mut next = (**toxics).clone();
            if let Some(placed) = next.iter_mut().find(|p| p.toxic.name() == name) {
                placed.toxic = toxic;
                found = true;
            }
            *toxics = Arc::new(next);
        });
        if found {
            Ok(())
        } else {
            Err(self.no_such_toxic(&name))
        }
    }

    /// Removes the toxic named `name`.
    pub fn remove(&self, name: &str) -> Result<()> {
        if remove(&self.inner, name, None) {
            Ok(())
        } else {
            Err(self.no_such_toxic(name))
        }
    }

    /// Removes every toxic.
    pub fn clear(&self) {
        self.inner.toxics.send_replace(Arc::new(Vec::new()));
    }

    /// The toxics in place, in order.
    pub fn toxics(&self) -> Vec<Toxic> {
        self.inner
            .toxics
            .borrow()
            .iter()
            .map(|p| p.toxic.clone())
            .collect()
    }

    /// Takes the link down: new connections are refused and open ones cut, until the guard is
    /// dropped (or [`up`](Self::up) is called).
    pub fn down(&self) -> LinkDown {
        self.set_enabled(false);
        LinkDown {
            proxy: self.clone(),
        }
    }

    /// Brings the link back up.
    pub fn up(&self) {
        self.set_enabled(true);
    }

    /// Whether the link is up.
    pub fn is_enabled(&self) -> bool {
        *self.inner.enabled.borrow()
    }

    /// Up (`true`) or down.
    pub fn set_enabled(&self, enabled: bool) {
        if enabled == self.is_enabled() {
            return;
        }
        if enabled {
            self.inner.enabled.send_replace(true);
            let addresses = lock(&self.inner.addresses).clone();
            for address in addresses {
                // The old listening socket closes as its task ends: retry the bind briefly.
                let mut attempts = 0;
                loop {
                    match bind(address) {
                        Ok(listener) => break accept_on(&self.inner, listener),
                        Err(_) if attempts < 100 => {
                            attempts += 1;
                            std::thread::sleep(std::time::Duration::from_millis(10));
                        }
                        Err(e) => {
                            break tracing::warn!(proxy = %self.inner.name, %address, error = %e, "cannot listen again")
                        }
                    }
                }
            }
        } else {
            stop_accepting(&self.inner);
            self.inner.enabled.send_replace(false);
        }
    }

    /// Listens on `ip` too (a free port), with the same toxics and traffic: for a Docker
    /// network's gateway address, so containers on that network reach the service through
    /// this proxy. Returns the address they connect to.
    pub fn listen_also(&self, ip: std::net::IpAddr) -> Result<SocketAddr> {
        let listener = bind(SocketAddr::new(ip, 0)).map_err(|e| Error::Fault {
            proxy: self.inner.name.clone(),
            problem: format!("cannot listen on {ip}: {e}"),
            fix: "give an address of this machine".into(),
        })?;
        let address = listener.local_addr().map_err(|e| Error::Fault {
            proxy: self.inner.name.clone(),
            problem: format!("cannot read the listen address on {ip}: {e}"),
            fix: "give an address of this machine".into(),
        })?;
        lock(&self.inner.addresses).push(address);
        if self.is_enabled() {
            accept_on(&self.inner, listener);
        }
        Ok(address)
    }

    /// What crossed the proxy so far.
    pub fn traffic(&self) -> Traffic {
        self.inner.counters.snapshot()
    }

    fn named(&self, error: Error) -> Error {
        match error {
            Error::Fault { problem, fix, .. } => Error::Fault {
                proxy: self.inner.name.clone(),
                problem,
                fix,
            },
            other => other,
        }
    }

    fn no_such_toxic(&self, name: &str) -> Error {
        let known: Vec<String> = self.toxics().iter().map(Toxic::name).collect();
        Error::Fault {
            proxy: self.inner.name.clone(),
            problem: format!("no toxic named {name} (in place: {})", known.join(", ")),
            fix: "name one of the toxics in place".into(),
        }
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("name", &self.inner.name)
            .field("listen", &self.inner.listen)
            .field("upstream", &self.upstream())
            .field(
                "toxics",
                &self.toxics().iter().map(Toxic::name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Removes a toxic when dropped.
#[must_use = "the toxic is removed when this guard is dropped"]
pub struct ToxicGuard {
    proxy: Weak<Inner>,
    name: String,
    id: u64,
    keep: bool,
}

impl ToxicGuard {
    /// The toxic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Leaves the toxic in place after the guard (until removed by name, or the proxy ends).
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for ToxicGuard {
    fn drop(&mut self) {
        if let (false, Some(inner)) = (self.keep, self.proxy.upgrade()) {
            remove(&inner, &self.name, Some(self.id));
        }
    }
}

/// The link is down while this lives.
#[must_use = "the link comes back up when this guard is dropped"]
pub struct LinkDown {
    proxy: FaultProxy,
}

impl Drop for LinkDown {
    fn drop(&mut self) {
        self.proxy.up();
    }
}

/// Whether something accepts connections at `upstream`, within a second.
fn check_upstream(name: &str, upstream: &str) -> Result<()> {
    use std::net::ToSocketAddrs;
    let bad = |problem: String| Error::Fault {
        proxy: name.to_string(),
        problem,
        fix: "start the server before the proxy, or correct the upstream host:port".into(),
    };
    let addresses: Vec<SocketAddr> = upstream
        .to_socket_addrs()
        .map_err(|e| {
            bad(format!(
                "upstream {upstream:?} is not a reachable host:port: {e}"
            ))
        })?
        .collect();
    let mut last = None;
    for address in &addresses {
        match std::net::TcpStream::connect_timeout(address, std::time::Duration::from_secs(1)) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(bad(format!(
        "nothing accepts connections at upstream {upstream} ({})",
        last.map_or_else(|| "no address".to_string(), |e| e.to_string())
    )))
}

/// Removes the toxic `name` (only the one placed as `id`, when given).
fn remove(inner: &Inner, name: &str, id: Option<u64>) -> bool {
    let mut found = false;
    inner.toxics.send_modify(|toxics| {
        let mut next = (**toxics).clone();
        next.retain(|p| {
            let hit = p.toxic.name() == name && id.is_none_or(|id| id == p.id);
            found |= hit;
            !hit
        });
        *toxics = Arc::new(next);
    });
    found
}

/// A listener that can be bound again on the same address when the link comes back up.
fn bind(address: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let _guard = runtime().enter();
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

/// Refuses new connections now: the listening socket is shut down at once (its task, which
/// owns it, ends on the proxies' runtime a moment later).
fn stop_accepting(inner: &Inner) {
    for acceptor in lock(&inner.accept).drain(..) {
        let _ = acceptor.socket.shutdown(std::net::Shutdown::Both);
        acceptor.task.abort();
    }
}

fn accept_on(inner: &Arc<Inner>, listener: tokio::net::TcpListener) {
    let Ok(socket) = socket2::SockRef::from(&listener).try_clone() else {
        tracing::warn!(proxy = %inner.name, "cannot keep a handle on the listening socket");
        return;
    };
    let weak = Arc::downgrade(inner);
    let task = runtime().spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                // A shut-down listener fails every accept: stop.
                if !weak.upgrade().is_some_and(|inner| *inner.enabled.borrow()) {
                    return;
                }
                // Out of descriptors, say: do not spin.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let Some(inner) = weak.upgrade() else { return };
            tokio::spawn(link::run(inner, client));
        }
    });
    lock(&inner.accept).push(Acceptor { task, socket });
}
